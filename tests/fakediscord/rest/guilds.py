"""Guilds, their channels, roles and members; reading and deleting single channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import APIError, missing_access
from ..models import Perm
from .common import json_response, snowflake_arg

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    state = emu.state

    def bot_guild(request: web.Request):  # type: ignore[no-untyped-def]
        guild = state.guild(snowflake_arg(request, "guild_id"))
        if state.bot_user_id not in guild.members:
            raise missing_access()
        return guild

    async def get_guild(request: web.Request) -> web.Response:
        guild = bot_guild(request)
        data = state.guild_json(guild)
        if request.query.get("with_counts") == "true":
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = 0
        return json_response(data)

    async def channels(request: web.Request) -> web.Response:
        guild = bot_guild(request)
        return json_response([state.channel_json(c) for c in state.channels.values()
                              if c.guild_id == guild.id and not c.is_thread and not c.deleted])

    async def roles(request: web.Request) -> web.Response:
        guild = bot_guild(request)
        return json_response([state.role_json(r) for r in guild.roles.values()])

    async def member(request: web.Request) -> web.Response:
        guild = bot_guild(request)
        uid = snowflake_arg(request, "user_id")
        if uid not in guild.members:
            raise APIError(404, 10007, "Unknown Member")
        return json_response(state.member_json(guild.id, uid))

    async def members(request: web.Request) -> web.Response:
        guild = bot_guild(request)
        limit = int(request.query.get("limit", "1"))
        after = int(request.query.get("after", "0"))
        ids = sorted(uid for uid in guild.members if uid > after)[:limit]
        return json_response([state.member_json(guild.id, uid) for uid in ids])

    async def active_threads(request: web.Request) -> web.Response:
        guild = bot_guild(request)
        threads = [c for c in state.channels.values() if c.guild_id == guild.id and c.is_thread
                   and not c.deleted and not (c.metadata and c.metadata.archived)
                   and state.permissions(c, state.bot_user_id) & Perm.VIEW_CHANNEL]
        return json_response({"threads": [state.channel_json(t) for t in threads],
                              "members": [{"id": str(t.id), "user_id": str(state.bot_user_id),
                                           "join_timestamp": t.metadata.create_timestamp if t.metadata else "",
                                           "flags": 0} for t in threads if state.bot_user_id in t.member_ids],
                              "has_more": False})

    async def get_channel(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        if not state.permissions(channel, state.bot_user_id) & Perm.VIEW_CHANNEL:
            raise missing_access()
        return json_response(state.channel_json(channel))

    router.add_get(prefix + "/guilds/{guild_id}", get_guild)
    router.add_get(prefix + "/guilds/{guild_id}/channels", channels)
    router.add_get(prefix + "/guilds/{guild_id}/roles", roles)
    router.add_get(prefix + "/guilds/{guild_id}/members", members)
    router.add_get(prefix + "/guilds/{guild_id}/members/{user_id}", member)
    router.add_get(prefix + "/guilds/{guild_id}/threads/active", active_threads)
    router.add_get(prefix + "/channels/{channel_id}", get_channel)
