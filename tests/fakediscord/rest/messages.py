"""Messages: create (JSON or multipart), read, history, edit, delete, bulk delete, typing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import errors
from ..errors import APIError, FormErrors
from ..models import MESSAGEABLE_TYPES, Channel, Message, Perm
from ..snowflake import snowflake_time
from ..validation import validate_message
from .common import (
    attachments_from,
    json_response,
    no_content,
    normalise_embeds,
    number_components,
    read_payload,
    snowflake_arg,
)

if TYPE_CHECKING:
    from ..emulator import FakeDiscord

TWO_WEEKS = 14 * 24 * 3600


def build_message(emu: FakeDiscord, channel: Channel, payload: dict[str, Any], files: list[dict[str, Any]],
                  author_id: int, **extra: Any) -> Message:
    """A new Message from a create payload (validated), not yet stored."""
    validate_message(payload, has_files=bool(files))
    state = emu.state
    message = Message(
        id=state.new_id(), channel_id=channel.id, guild_id=channel.guild_id, author_id=author_id,
        content=payload.get("content") or "", embeds=normalise_embeds(payload.get("embeds")),
        components=number_components(payload.get("components")), tts=bool(payload.get("tts")),
        flags=int(payload.get("flags") or 0) & (4 | 64 | 4096), nonce=payload.get("nonce"),
        allowed_mentions=payload.get("allowed_mentions", emu.default_allowed_mentions),
        attachments=attachments_from(emu, channel.id, payload, files), **extra,
    )
    reference = payload.get("message_reference")
    if reference:
        ref_channel = int(reference.get("channel_id") or channel.id)
        ref_id = int(reference["message_id"])
        target = state.messages.get(ref_id)
        if target is None or target.deleted or target.channel_id != ref_channel:
            if reference.get("fail_if_not_exists", True):
                form = FormErrors()
                form.add(("message_reference",), "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
                form.raise_if_any()
        else:
            message.type = 19
            message.message_reference = {"type": 0, "message_id": str(ref_id), "channel_id": str(ref_channel),
                                         "guild_id": str(channel.guild_id)}
    stickers = payload.get("sticker_ids") or []
    message.sticker_items = [{"id": str(s), "name": f"sticker{s}", "format_type": 1} for s in stickers]
    return message


def check_can_post(emu: FakeDiscord, channel: Channel, user_id: int) -> None:
    state = emu.state
    if channel.type not in MESSAGEABLE_TYPES:
        raise APIError(400, 50008, "Cannot send messages in a non-text channel")
    if channel.is_thread:
        state.require(channel, user_id, Perm.SEND_MESSAGES_IN_THREADS)
        state.ensure_thread_open(channel, user_id)
    else:
        state.require(channel, user_id, Perm.SEND_MESSAGES)


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    state = emu.state
    def bot() -> int:
        return state.bot_user_id

    def readable(request: web.Request) -> Channel:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        state.require(channel, bot(), Perm.READ_MESSAGE_HISTORY)
        return channel

    async def create(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        payload, files = await read_payload(request, emu)
        check_can_post(emu, channel, bot())
        if payload.get("embeds") and not state.permissions(channel, bot()) & Perm.EMBED_LINKS:
            payload = {**payload, "embeds": []}
        if files:
            state.require(channel, bot(), Perm.ATTACH_FILES)
        message = build_message(emu, channel, payload, files, bot())
        state.add_message(message)
        return json_response(emu.rest_message_json(message))

    async def history(request: web.Request) -> web.Response:
        channel = readable(request)
        query = request.query
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            form = FormErrors()
            form.add(("limit",), "NUMBER_TYPE_MAX" if limit > 100 else "NUMBER_TYPE_MIN",
                     "int value should be between 1 and 100")
            form.raise_if_any()
        messages = state.history(channel.id)  # oldest first
        if "around" in query:
            around = int(query["around"])
            older = [m for m in messages if m.id < around][-(limit // 2):] if limit // 2 else []
            newer = [m for m in messages if m.id >= around][: limit - len(older)]
            chosen = older + newer
        elif "after" in query:
            after = int(query["after"])
            chosen = [m for m in messages if m.id > after][:limit]
        else:
            before = int(query["before"]) if "before" in query else None
            candidates = [m for m in messages if before is None or m.id < before]
            chosen = candidates[-limit:]
        chosen.sort(key=lambda m: m.id, reverse=True)
        return json_response([emu.rest_message_json(m) for m in chosen])

    async def get(request: web.Request) -> web.Response:
        channel = readable(request)
        message = state.message(channel.id, snowflake_arg(request, "message_id"))
        if message.ephemeral:
            raise errors.unknown_message()
        return json_response(emu.rest_message_json(message))

    async def edit(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        message = state.message(channel.id, snowflake_arg(request, "message_id"))
        payload, files = await read_payload(request, emu)
        if message.author_id != bot():
            allowed = set(payload) <= {"flags"}
            if not allowed:
                raise APIError(403, 50005, "Cannot edit a message authored by another user")
            state.require(channel, bot(), Perm.MANAGE_MESSAGES)
        validate_message(payload, require_body=False)
        changes = emu.edit_changes(message, payload, files)
        state.edit_message(message, changes)
        return json_response(emu.rest_message_json(message))

    async def delete(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        message = state.message(channel.id, snowflake_arg(request, "message_id"))
        if message.author_id != bot():
            state.require(channel, bot(), Perm.MANAGE_MESSAGES)
        state.delete_message(message)
        return no_content()

    async def bulk_delete(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        payload, _ = await read_payload(request, emu)
        state.require(channel, bot(), Perm.MANAGE_MESSAGES)
        ids = [int(m) for m in payload.get("messages") or []]
        form = FormErrors()
        if not 2 <= len(ids) <= 100:
            form.add(("messages",), "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.")
        form.raise_if_any()
        cutoff = time.time() - TWO_WEEKS
        for mid in ids:
            message = state.messages.get(mid)
            if message is None or message.deleted or message.channel_id != channel.id:
                raise errors.unknown_message()
            if snowflake_time(mid).timestamp() < cutoff:
                raise APIError(400, 50034, "You can only bulk delete messages that are under 14 days old.")
        state.bulk_delete(channel, ids)
        return no_content()

    async def typing(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        state.require(channel, bot(), Perm.SEND_MESSAGES)
        return no_content()

    async def attachment(request: web.Request) -> web.StreamResponse:
        data = emu.files.get(int(request.match_info["attachment_id"]))
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")

    router.add_get(prefix + "/channels/{channel_id}/messages", history)
    router.add_post(prefix + "/channels/{channel_id}/messages", create)
    router.add_post(prefix + "/channels/{channel_id}/messages/bulk-delete", bulk_delete)
    router.add_post(prefix + "/channels/{channel_id}/typing", typing)
    router.add_get(prefix + "/channels/{channel_id}/messages/{message_id}", get)
    router.add_patch(prefix + "/channels/{channel_id}/messages/{message_id}", edit)
    router.add_delete(prefix + "/channels/{channel_id}/messages/{message_id}", delete)
    router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", attachment)
