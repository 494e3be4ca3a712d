"""Slash commands, autocomplete, context menus, buttons, deadlines and double acknowledgement."""

from __future__ import annotations

import asyncio

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord, Perm
from tests.fakediscord.harness import World, run_client
from tests.fakediscord.testing import RecordingBot

TOPICS = ["python", "discord", "databases", "deployment"]


class Confirm(discord.ui.View):
    @discord.ui.button(label="Confirm", custom_id="confirm", style=discord.ButtonStyle.primary)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[Confirm]) -> None:
        await interaction.response.edit_message(content=f"confirmed by {interaction.user.name}", view=None)


class Feedback(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[Feedback] = discord.ui.TextInput(label="Your feedback", custom_id="text")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.text.value}", ephemeral=True)


class Picker(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.picked: list[str] = []

    @discord.ui.select(custom_id="topic", options=[discord.SelectOption(label=t, value=t) for t in TOPICS])
    async def topic(self, interaction: discord.Interaction, select: discord.ui.Select[Picker]) -> None:
        self.picked = list(select.values)
        await interaction.response.defer()  # type 6: acknowledge without changing the message


class CommandBot(RecordingBot):
    def __init__(self) -> None:
        super().__init__()
        blog = app_commands.Group(name="blog", description="Blog commands")

        @blog.command(name="search", description="Search posts")
        @app_commands.describe(query="What to look for")
        async def search(interaction: discord.Interaction, query: str, limit: int = 3) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0)  # pretend to work
            await interaction.followup.send(f"{limit} results for {query}")
            await interaction.followup.send("and one more thing", ephemeral=True)

        @search.autocomplete("query")
        async def query_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=t, value=t) for t in TOPICS if t.startswith(current)]

        @app_commands.command(name="announce", description="Announce into a channel")
        @app_commands.default_permissions(manage_guild=True)
        async def announce(interaction: discord.Interaction, channel: discord.TextChannel, role: discord.Role,
                           who: discord.Member) -> None:
            await channel.send(f"for {role.name} and {who.name}", allowed_mentions=discord.AllowedMentions.none())
            await interaction.response.send_message(f"announced in {channel.name}", ephemeral=True)

        @app_commands.command(name="ping", description="Answer with a button")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pong", view=Confirm())

        @app_commands.command(name="slow", description="Answers too late")
        async def slow(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.3)
            try:
                await interaction.response.send_message("late")
            except discord.NotFound as error:
                self.late_error = error

        @app_commands.context_menu(name="Quote")
        async def quote(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(f"> {message.content}")

        @app_commands.command(name="feedback", description="Opens a form")
        async def feedback(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(Feedback())

        @app_commands.command(name="pick", description="Choose a topic")
        async def pick(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("choose", view=self.picker)

        self.picker = Picker()
        for command in (blog, announce, ping, slow, quote, feedback, pick):
            self.tree.add_command(command)
        self.late_error: discord.NotFound | None = None

    async def setup_hook(self) -> None:
        self.add_view(Confirm(timeout=None))
        await self.tree.sync()


async def test_slash_command_with_defer_and_followups(emulator: FakeDiscord, world: World) -> None:
    async with run_client(emulator, CommandBot()):
        assert set(emulator.commands()) == {"blog", "announce", "ping", "slow", "Quote", "feedback", "pick"}
        handle = emulator.invoke("blog search", world.alice, world.announcements, {"query": "python", "limit": 5})
        assert await handle.response() == 5
        original = await handle.wait_original()
        assert original.content == "5 results for python"
        assert original.interaction_metadata["user"]["id"] == str(world.alice.id)
        followups = await handle.wait_followups(2)
        assert followups[1].content == "and one more thing" and followups[1].ephemeral
        visible = [m.content for m in emulator.messages(world.announcements)]
        assert visible == ["5 results for python"]  # the ephemeral one is not in the channel


async def test_typed_options_with_resolved_channel_role_and_member(emulator: FakeDiscord, world: World) -> None:
    async with run_client(emulator, CommandBot()):
        handle = emulator.invoke("announce", world.owner, world.announcements,
                                 {"channel": world.news, "role": world.readers, "who": world.bob})
        assert await handle.answer_text() == "announced in news"
        assert handle.original is not None and handle.original.ephemeral
        assert emulator.messages(world.news)[-1].content == "for Readers and bob"
        with pytest.raises(PermissionError):
            emulator.invoke("announce", world.alice, world.announcements,
                            {"channel": world.news, "role": world.readers, "who": world.bob})
        granted = emulator.invoke("announce", world.alice, world.announcements,
                                  {"channel": world.news, "role": world.readers, "who": world.bob},
                                  permissions=int(Perm.MANAGE_GUILD | Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES))
        assert await granted.response() == 4


async def test_autocomplete_returns_choices(emulator: FakeDiscord, world: World) -> None:
    async with run_client(emulator, CommandBot()):
        handle = emulator.autocomplete("blog search", world.alice, world.announcements, focused="query", value="d")
        choices = await handle.wait_choices()
        assert [c["name"] for c in choices] == ["discord", "databases", "deployment"]


async def test_button_click_updates_the_message(emulator: FakeDiscord, world: World) -> None:
    async with run_client(emulator, CommandBot()):
        handle = emulator.invoke("ping", world.alice, world.announcements)
        message = await handle.wait_original()
        assert message.components[0]["components"][0]["custom_id"] == "confirm"
        click = emulator.click(message, "confirm", world.bob)
        assert await click.response() == 7
        assert emulator.message(message.id).content == "confirmed by bob"
        assert emulator.message(message.id).components == []


async def test_message_context_menu(emulator: FakeDiscord, world: World) -> None:
    async with run_client(emulator, CommandBot()):
        target = emulator.send_message(world.announcements, world.alice, "quotable")
        handle = emulator.invoke_message_command("Quote", target, world.bob)
        assert await handle.answer_text() == "> quotable"


async def test_unregistered_commands_and_deadline(emulator: FakeDiscord, world: World) -> None:
    emulator.interaction_deadline = 0.1
    bot = CommandBot()
    async with run_client(emulator, bot):
        with pytest.raises(LookupError):
            emulator.invoke("missing", world.alice, world.announcements)
        emulator.invoke("slow", world.alice, world.announcements)
        await emulator.wait_until(lambda: bot.late_error is not None)
        assert bot.late_error is not None and bot.late_error.code == 10062


async def test_double_acknowledgement_is_40060(emulator: FakeDiscord, world: World) -> None:
    async with run_client(emulator, CommandBot()):
        handle = emulator.invoke("ping", world.alice, world.announcements)
        await handle.response()
        url = f"{emulator.api_base}/interactions/{handle.id}/{handle.record.token}/callback"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"type": 4, "data": {"content": "again"}}) as response:
                body = await response.json()
        assert response.status == 400 and body["code"] == 40060


async def test_command_registration_is_validated(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        bad = [{"name": "Bad Name", "description": "x", "type": 1},
               {"name": "ok", "description": "", "type": 1,
                "options": [{"name": "a", "description": "a", "type": 3},
                            {"name": "b", "description": "b", "type": 3, "required": True}]}]
        with pytest.raises(discord.HTTPException) as error:
            await bot.http.bulk_upsert_global_commands(emulator.application_id, bad)
        assert error.value.code == 50035
        text = error.value.text
        assert "0.name" in text and "1.description" in text and "1.options.1.required" in text


async def test_modal_and_select_menu(emulator: FakeDiscord, world: World) -> None:
    bot = CommandBot()
    async with run_client(emulator, bot):
        opened = emulator.invoke("feedback", world.alice, world.announcements)
        assert await opened.response() == 9
        assert opened.response_data is not None and opened.response_data["title"] == "Feedback"
        submitted = emulator.submit_modal(opened, world.alice, {"text": "great blog"})
        assert await submitted.answer_text() == "thanks: great blog"
        menu = await emulator.invoke("pick", world.bob, world.announcements).wait_original()
        chosen = emulator.select(menu, "topic", ["discord"], world.bob)
        assert await chosen.response() == 6
        assert bot.picker.picked == ["discord"]
        assert emulator.message(menu.id).content == "choose"
