"""Our slash command registrations (lookup and admin) against Discord's OpenAPI spec, when present."""

from __future__ import annotations

from bot.app import ConversationBot
from bot.config import Settings
from tests.fakediscord.openapi import _pointer, require_checker


async def test_lookup_command_payloads_match_discord_spec() -> None:
    checker = require_checker()
    bot = ConversationBot(Settings(discord_token="x" * 30), None, extensions=(), sync_mode="never")  # type: ignore[arg-type]
    await bot.load_extension("cogs.lookup")
    await bot.load_extension("cogs.admin")
    await bot.load_extension("cogs.server_settings")
    payload = [command.to_dict(bot.tree) for command in bot.tree.get_commands()]
    assert {command["name"] for command in payload} == {"post", "comments", "stats", "feed", "settings"}
    pointer = _pointer("paths", "/applications/{application_id}/commands", "put", "requestBody", "content",
                       "application/json", "schema")
    validator = checker._validator(pointer)
    assert validator is not None
    problems = [f"{list(error.absolute_path)}: {error.message[:200]}" for error in validator.iter_errors(payload)]
    assert problems == []
    feed = next(command for command in payload if command["name"] == "feed")
    assert int(feed["default_member_permissions"]) == 1 << 5  # Manage Server
    add = next(option for option in feed["options"] if option["name"] == "add")
    channel = next(option for option in add["options"] if option["name"] == "channel")
    assert sorted(channel["channel_types"]) == [0, 5, 15]
