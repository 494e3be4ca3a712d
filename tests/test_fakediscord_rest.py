"""The emulator's REST API as discord.py uses it: messages, history, threads, forums, reactions, limits."""

from __future__ import annotations

import io
import time

import discord
import pytest

from tests.fakediscord import APIError, FakeDiscord, Perm
from tests.fakediscord.harness import World, run_client
from tests.fakediscord.testing import RecordingBot


async def test_send_with_attachment_reply_and_embed(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        human = emulator.send_message(world.announcements, world.alice, "question?")
        original = await channel.fetch_message(human.id)
        embed = discord.Embed(title="Post", description="Body").add_field(name="a", value="b")
        sent = await original.reply("answer", embed=embed, file=discord.File(io.BytesIO(b"data"), "notes.txt"),
                                    mention_author=False)
        stored = emulator.message(sent.id)
        assert stored.type == 19 and stored.message_reference["message_id"] == str(human.id)
        assert stored.embeds[0]["title"] == "Post"
        assert stored.attachments[0]["filename"] == "notes.txt" and stored.attachments[0]["size"] == 4
        assert await sent.attachments[0].read() == b"data"
        assert stored.mentions == []  # mention_author=False: alice not pinged
        assert stored.allowed_mentions is not None and stored.allowed_mentions["replied_user"] is False


async def test_allowed_mentions_decide_who_is_pinged(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        text = f"@everyone <@{world.alice.id}> <@&{world.readers.id}>"
        quiet = await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        loud = await channel.send(text, allowed_mentions=discord.AllowedMentions.all())
        q, lo = emulator.message(quiet.id), emulator.message(loud.id)
        assert (q.mentions, q.mention_roles, q.mention_everyone) == ([], [], False)
        assert q.allowed_mentions == {"parse": []}
        assert (lo.mentions, lo.mention_roles, lo.mention_everyone) == ([world.alice.id], [world.readers.id], True)


async def test_history_pagination_is_newest_first(emulator: FakeDiscord, world: World) -> None:
    sent = [emulator.send_message(world.announcements, world.alice, f"m{n}") for n in range(7)]
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        newest = [m.content async for m in channel.history(limit=3)]
        assert newest == ["m6", "m5", "m4"]
        before = [m.content async for m in channel.history(limit=10, before=discord.Object(sent[3].id))]
        assert before == ["m2", "m1", "m0"]
        after = [m.content async for m in channel.history(limit=2, after=discord.Object(sent[3].id),
                                                           oldest_first=True)]
        assert after == ["m4", "m5"]
        around = [m.content async for m in channel.history(limit=3, around=discord.Object(sent[3].id))]
        assert sorted(around) == ["m2", "m3", "m4"]
    assert all(r.status == 200 for r in emulator.requests("GET /channels/{id}/messages"))


async def test_edit_delete_and_bulk_delete_are_dispatched(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        mine = await channel.send("draft")
        await mine.edit(content="final")
        assert emulator.message(mine.id).content == "final" and emulator.message(mine.id).edited_timestamp
        human = [emulator.send_message(world.announcements, world.alice, f"h{n}") for n in range(3)]
        emulator.edit_message(human[0], "h0 edited")
        emulator.delete_message(human[1])
        await channel.delete_messages([discord.Object(human[2].id), mine])
        await emulator.wait_until(lambda: bot.kinds("bulk_delete") and bot.kinds("delete"))
        edits = [e for e in bot.kinds("edit") if e.message_id == human[0].id]
        assert edits and edits[-1].data["content"] == "h0 edited"
        assert emulator.messages(world.announcements) == [emulator.message(human[0].id)]


async def test_validation_errors_look_like_discords(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert too_long.value.code == 50035 and "content" in too_long.value.text
        embed = discord.Embed(title="t" * 257)
        with pytest.raises(discord.HTTPException) as bad_embed:
            await channel.send(embed=embed)
        assert bad_embed.value.code == 50035 and "embeds.0.title" in bad_embed.value.text
        fields = discord.Embed(description="d" * 4096)
        for _ in range(2):
            fields.add_field(name="n", value="v" * 1024)
        with pytest.raises(discord.HTTPException) as total:
            await channel.send(embed=fields)
        assert total.value.code == 50035
        with pytest.raises(discord.NotFound) as missing:
            await channel.fetch_message(12345678901234567)
        assert missing.value.code == 10008
        with pytest.raises(discord.NotFound) as unknown_channel:
            await bot.http.send_message(12345678901234567, params=discord.http.handle_message_parameters("x"))
        assert unknown_channel.value.code == 10003


async def test_channel_denials_give_50013(emulator: FakeDiscord, world: World) -> None:
    emulator.deny(world.announcements, Perm.SEND_MESSAGES)
    emulator.deny(world.news, Perm.CREATE_PUBLIC_THREADS)
    bot = RecordingBot()
    async with run_client(emulator, bot):
        with pytest.raises(discord.Forbidden) as denied:
            await bot.get_channel(world.announcements.id).send("hi")
        assert denied.value.code == 50013
        news = bot.get_channel(world.news.id)
        message = await news.send("post")
        with pytest.raises(discord.Forbidden):
            await message.create_thread(name="discussion")
        emulator.deny(world.news, Perm.VIEW_CHANNEL)
        with pytest.raises(discord.Forbidden) as hidden:
            await news.send("again")
        assert hidden.value.code == 50001


async def test_threads_from_messages_and_archiving(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        news = bot.get_channel(world.news.id)
        post = await news.send("New post")
        thread = await post.create_thread(name="New post", auto_archive_duration=10080)
        assert thread.id == post.id and emulator.channel(thread.id).type == 10  # news thread
        assert emulator.message(post.id).thread_id == thread.id
        emulator.send_message(thread.id, world.alice, "first comment")
        await emulator.wait_until(lambda: "first comment" in bot.contents())
        await thread.edit(archived=True)
        assert emulator.channel(thread.id).metadata.archived
        # a human posting into an archived (not locked) thread reopens it
        emulator.send_message(thread.id, world.bob, "reopen")
        assert not emulator.channel(thread.id).metadata.archived
        await thread.edit(archived=True, locked=True)
        with pytest.raises(APIError) as locked:
            emulator.send_message(thread.id, world.bob, "no")
        assert locked.value.code == 50083
        emulator.rename_thread(thread.id, "Renamed")
        await emulator.wait_until(lambda: any(t.data["name"] == "Renamed" for t in bot.kinds("thread_update")))
        archived = [t async for t in news.archived_threads()]
        assert [t.id for t in archived] == [thread.id]
        with pytest.raises(discord.HTTPException) as bad_name:
            await (await news.send("x")).create_thread(name="n" * 101)
        assert bad_name.value.code == 50035


async def test_forum_posts_with_tags_and_require_tag(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        forum = bot.get_channel(world.forum.id)
        python = next(t for t in forum.available_tags if t.name == "python")
        created = await forum.create_thread(name="A post", content="Read it", applied_tags=[python])
        thread, message = created.thread, created.message
        assert thread.id == message.id
        assert emulator.channel(thread.id).applied_tags == [python.id]
        assert emulator.messages(thread.id)[0].content == "Read it"
        strict = bot.get_channel(world.strict_forum.id)
        with pytest.raises(discord.HTTPException) as no_tag:
            await strict.create_thread(name="Untagged", content="x")
        assert no_tag.value.code == 40067
        post, _ = emulator.create_forum_post(world.forum, "Human post", world.alice, "hello", tags=["news"])
        await emulator.wait_until(lambda: any(t.id == post.id for t in bot.kinds("thread_create")))
        await thread.add_user(discord.Object(world.alice.id))
        assert world.alice.id in emulator.channel(thread.id).member_ids
        await thread.join()
        assert emulator.bot.id in emulator.channel(thread.id).member_ids


async def test_reactions_every_variant(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        message = await channel.send("react here")
        await message.add_reaction("👍")
        emulator.add_reaction(message.id, world.alice, "👍")
        emulator.add_reaction(message.id, world.bob, "🎉")
        assert emulator.message(message.id).reactions == {"👍": [emulator.bot.id, world.alice.id],
                                                           "🎉": [world.bob.id]}
        await message.remove_reaction("👍", discord.Object(world.alice.id))
        await message.remove_reaction("👍", bot.user)
        await message.clear_reaction("🎉")
        emulator.add_reaction(message.id, world.alice, "🔥")
        emulator.remove_all_reactions(message.id)
        emulator.add_reaction(message.id, world.alice, "✅")
        emulator.remove_reaction(message.id, world.alice, "✅")
        await emulator.wait_until(lambda: bot.kinds("reaction_clear") and len(bot.kinds("reaction_remove")) == 3
                                  and bot.kinds("reaction_clear_emoji"))
        assert len(bot.kinds("reaction_add")) == 5
        assert emulator.message(message.id).reactions == {}


async def test_rate_limit_headers_and_a_burst_of_429s(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        emulator.rate_limit_next(3, route="POST /channels/{id}/messages", retry_after=0.05)
        started = time.monotonic()
        await channel.send("eventually")
        assert time.monotonic() - started >= 0.15
        limited = emulator.requests("POST /channels/{channel_id}/messages", status=429)
        assert len(limited) == 3
        assert [m.content for m in emulator.messages(world.announcements)] == ["eventually"]
        emulator.rate_limit_next(1, retry_after=0.05, global_=True)
        await channel.send("after global")
        emulator.set_rate_limit("POST /channels/{id}/messages", limit=2, window=0.3)
        for n in range(4):
            await channel.send(f"n{n}")
        # 3 forced + 1 global: the real bucket never answered 429 because discord.py waited on the headers
        assert len(emulator.requests("POST /channels/{id}/messages", status=429)) == 4
        ok = emulator.requests("POST /channels/{id}/messages", status=200)
        assert len(ok) == 6


async def test_bot_posting_into_archived_threads(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        channel = bot.get_channel(world.announcements.id)
        starter = await channel.send("post")
        thread = await starter.create_thread(name="post")
        emulator.archive_thread(thread.id)
        await thread.send("reopens it")
        assert not emulator.channel(thread.id).metadata.archived
        emulator.lock_thread(thread.id)
        emulator.archive_thread(thread.id)
        with pytest.raises(discord.HTTPException) as archived:
            await thread.send("refused")
        assert archived.value.code == 50083
        assert [m.content for m in emulator.messages(thread.id)] == ["reopens it"]


async def test_custom_emoji_reactions(emulator: FakeDiscord, world: World) -> None:
    bot = RecordingBot()
    async with run_client(emulator, bot):
        message = await bot.get_channel(world.announcements.id).send("custom")
        await message.add_reaction(discord.PartialEmoji(name="alpha", id=123456789012345678))
        emulator.add_reaction(message.id, world.alice, "<a:party:223456789012345678>")
        assert set(emulator.message(message.id).reactions) == {"alpha:123456789012345678",
                                                               "party:223456789012345678"}
        await emulator.wait_until(lambda: len(bot.kinds("reaction_add")) == 2)
        names = sorted(str(p.emoji.name) for p in bot.kinds("reaction_add"))
        assert names == ["alpha", "party"]
        assert [p.emoji.animated for p in bot.kinds("reaction_add") if p.emoji.name == "party"] == [True]
