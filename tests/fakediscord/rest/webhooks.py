"""Channel webhooks: create, list, execute (``wait``, ``thread_id``) and delete a webhook's message."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import errors
from ..errors import APIError
from ..models import Channel, Perm, Webhook
from .common import json_response, no_content, read_payload, snowflake_arg
from .messages import build_message

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    state = emu.state

    def webhook_json(hook: Webhook, *, with_token: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(hook.id), "type": 1, "name": hook.name, "avatar": None, "channel_id": str(hook.channel_id),
            "guild_id": str(hook.guild_id), "application_id": str(hook.application_id) if hook.application_id else None,
            "user": state.user_json(hook.user_id),
        }
        if with_token:
            data["token"] = hook.token
            data["url"] = f"{emu.http_base}/api/webhooks/{hook.id}/{hook.token}"
        return data

    def managed_channel(request: web.Request) -> Channel:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        state.require(channel, state.bot_user_id, Perm.MANAGE_WEBHOOKS)
        return channel

    async def create(request: web.Request) -> web.Response:
        channel = managed_channel(request)
        payload, _ = await read_payload(request, emu)
        name = str(payload.get("name") or "")
        if not 1 <= len(name) <= 80:
            raise APIError(400, 50035, "Invalid Form Body")
        hook = Webhook(state.new_id(), secrets.token_urlsafe(48), channel.id, channel.guild_id, name,
                       state.bot_user_id, application_id=emu.application_id)
        emu.webhooks[hook.id] = hook
        state.changed()
        return json_response(webhook_json(hook))

    async def list_channel(request: web.Request) -> web.Response:
        channel = managed_channel(request)
        return json_response([webhook_json(hook) for hook in emu.webhooks.values() if hook.channel_id == channel.id])

    def by_token(request: web.Request) -> Webhook:
        hook = emu.webhooks.get(snowflake_arg(request, "application_id"))
        if hook is None or not secrets.compare_digest(hook.token, request.match_info["token"]):
            raise errors.unknown_webhook()
        return hook

    def target(request: web.Request, hook: Webhook) -> Channel:
        thread_id = request.query.get("thread_id")
        if thread_id is None:
            return state.channel(hook.channel_id)
        thread = state.channel(int(thread_id))
        if not thread.is_thread or thread.parent_id != hook.channel_id:
            raise errors.unknown_channel()
        return thread

    async def execute(request: web.Request) -> web.StreamResponse:
        hook = by_token(request)
        channel = target(request, hook)
        payload, files = await read_payload(request, emu)
        username = str(payload.get("username") or "")
        if any(word in username.lower() for word in ("discord", "clyde")):  # Discord's rule for webhook names
            raise APIError(400, 50035, "Invalid Form Body", {"username": {"_errors": [
                {"code": "USERNAME_INVALID_CONTAINS", "message": "Username cannot contain \"discord\""}]}})
        if channel.is_thread:
            meta = channel.metadata
            if meta is not None and meta.locked:
                raise APIError(403, 160005, "Thread is locked")
            if meta is not None and meta.archived:
                state.update_thread(channel, archived=False)
        message = build_message(emu, channel, {k: v for k, v in payload.items() if k not in ("username", "avatar_url")},
                                files, hook.id, webhook_id=hook.id)
        avatar_url = payload.get("avatar_url")
        message.webhook_author = {
            "id": str(hook.id), "username": str(payload.get("username") or hook.name), "discriminator": "0000",
            "avatar": None, "bot": True, "global_name": None, "public_flags": 0, "flags": 0, "banner": None,
            "accent_color": None, "avatar_decoration_data": None, "collectibles": None, "primary_guild": None,
        }
        emu.webhook_avatars[message.id] = avatar_url
        state.add_message(message)
        if request.query.get("wait") in ("true", "1"):
            return json_response(emu.rest_message_json(message))
        return no_content()

    async def delete_message(request: web.Request) -> web.Response:
        hook = by_token(request)
        channel = target(request, hook)
        message = state.message(channel.id, snowflake_arg(request, "message_id"))
        if message.webhook_id != hook.id:
            raise errors.unknown_message()
        state.delete_message(message)
        return no_content()

    router.add_post(prefix + "/channels/{channel_id}/webhooks", create)
    router.add_get(prefix + "/channels/{channel_id}/webhooks", list_channel)
    # /webhooks/{id}/{token} is also the interactions' follow-up route (rest/interactions.py), which
    # hands the request here when the id is a channel webhook's.
    emu.channel_webhook_routes = {"POST": execute, "DELETE": delete_message}
