"""Reactions: add/remove own, remove a user's, remove all, remove one emoji, list users."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..models import Message, Perm
from .common import json_response, no_content, snowflake_arg

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    state = emu.state
    base = prefix + "/channels/{channel_id}/messages/{message_id}/reactions"

    def target(request: web.Request) -> Message:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        state.require(channel, state.bot_user_id, Perm.READ_MESSAGE_HISTORY)
        return state.message(channel.id, snowflake_arg(request, "message_id"))

    async def add_own(request: web.Request) -> web.Response:
        message = target(request)
        key, _ = state.emoji_key(request.match_info["emoji"])
        if key not in message.reactions:
            state.require(state.channel(message.channel_id), state.bot_user_id, Perm.ADD_REACTIONS)
        state.add_reaction(message, state.bot_user_id, request.match_info["emoji"])
        return no_content()

    async def remove_own(request: web.Request) -> web.Response:
        message = target(request)
        state.remove_reaction(message, state.bot_user_id, request.match_info["emoji"])
        return no_content()

    async def remove_user(request: web.Request) -> web.Response:
        message = target(request)
        state.require(state.channel(message.channel_id), state.bot_user_id, Perm.MANAGE_MESSAGES)
        state.remove_reaction(message, snowflake_arg(request, "user_id"), request.match_info["emoji"])
        return no_content()

    async def list_users(request: web.Request) -> web.Response:
        message = target(request)
        key, _ = state.emoji_key(request.match_info["emoji"])
        limit = int(request.query.get("limit", "25"))
        after = int(request.query.get("after", "0"))
        users = sorted(u for u in message.reactions.get(key, []) if u > after)[:limit]
        return json_response([state.user_json(u) for u in users])

    async def remove_all(request: web.Request) -> web.Response:
        message = target(request)
        state.require(state.channel(message.channel_id), state.bot_user_id, Perm.MANAGE_MESSAGES)
        state.remove_all_reactions(message)
        return no_content()

    async def remove_emoji(request: web.Request) -> web.Response:
        message = target(request)
        state.require(state.channel(message.channel_id), state.bot_user_id, Perm.MANAGE_MESSAGES)
        state.remove_emoji_reactions(message, request.match_info["emoji"])
        return no_content()

    router.add_put(base + "/{emoji}/@me", add_own)
    router.add_delete(base + "/{emoji}/@me", remove_own)
    router.add_delete(base + "/{emoji}/{user_id}", remove_user)
    router.add_get(base + "/{emoji}", list_users)
    router.add_delete(base + "/{emoji}", remove_emoji)
    router.add_delete(base, remove_all)
