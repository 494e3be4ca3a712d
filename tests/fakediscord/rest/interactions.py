"""Interaction callbacks and webhook follow-ups (``/webhooks/{application_id}/{token}``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .. import errors
from ..interactions import EPHEMERAL, LOADING, callback, response_message
from ..models import InteractionRecord, Message
from ..validation import validate_message
from .common import json_response, no_content, read_payload, snowflake_arg

if TYPE_CHECKING:
    from ..emulator import FakeDiscord

TOKEN_LIFETIME = 15 * 60


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    state = emu.state

    async def interaction_callback(request: web.Request) -> web.Response:
        record = state.interactions.get(snowflake_arg(request, "interaction_id"))
        if record is None or record.token != request.match_info["token"]:
            raise errors.unknown_interaction()
        body, files = await read_payload(request, emu)
        result = callback(emu, record, body, files)
        return json_response(result)

    def by_token(request: web.Request) -> InteractionRecord:
        if snowflake_arg(request, "application_id") != state.application_id:
            raise errors.unknown_webhook()
        record = state.interactions_by_token.get(request.match_info["token"])
        if record is None:
            raise errors.unknown_webhook()
        import time

        if time.monotonic() > record.created_at + TOKEN_LIFETIME:
            raise errors.APIError(401, 50027, "Invalid Webhook Token")
        return record

    def target(record: InteractionRecord, which: str) -> Message:
        if which == "@original":
            if record.response_type is None or record.original_message_id is None:
                raise errors.unknown_message()
            return state.messages[record.original_message_id]
        mid = int(which) if which.isdigit() else 0
        if mid not in record.followup_ids and mid != record.original_message_id:
            raise errors.unknown_message()
        message = state.messages[mid]
        if message.deleted:
            raise errors.unknown_message()
        return message

    async def followup(request: web.Request) -> web.StreamResponse:
        if int(request.match_info["application_id"]) in emu.webhooks:
            return await emu.channel_webhook_routes["POST"](request)
        record = by_token(request)
        if record.response_type is None:
            raise errors.unknown_webhook()
        payload, files = await read_payload(request, emu)
        original = state.messages.get(record.original_message_id or 0)
        if original is not None and original.flags & LOADING and record.response_type == 5:
            # The first follow-up after a "thinking" defer replaces the loading message, as on Discord.
            validate_message(payload, has_files=bool(files))
            changes = emu.edit_changes(original, payload, files)
            changes["flags"] = original.flags & ~LOADING
            state.edit_message(original, changes)
            record.followup_ids.append(original.id)
            state.changed()
            return json_response(emu.rest_message_json(original))
        message = response_message(emu, record, payload, files)
        message.flags = int(payload.get("flags") or 0) & (EPHEMERAL | 4 | 4096)
        message.ephemeral = bool(message.flags & EPHEMERAL)
        state.add_message(message)
        record.followup_ids.append(message.id)
        state.changed()
        if request.query.get("wait", "false").lower() not in ("true", "1"):
            return no_content()
        return json_response(emu.rest_message_json(message))

    async def get_message(request: web.Request) -> web.Response:
        record = by_token(request)
        return json_response(emu.rest_message_json(target(record, request.match_info["message_id"])))

    async def edit_message(request: web.Request) -> web.Response:
        record = by_token(request)
        message = target(record, request.match_info["message_id"])
        payload, files = await read_payload(request, emu)
        validate_message(payload, require_body=False)
        changes = emu.edit_changes(message, payload, files)
        if message.flags & LOADING:
            changes["flags"] = message.flags & ~LOADING
        state.edit_message(message, changes)
        return json_response(emu.rest_message_json(message))

    async def delete_message(request: web.Request) -> web.StreamResponse:
        if int(request.match_info["application_id"]) in emu.webhooks:
            return await emu.channel_webhook_routes["DELETE"](request)
        record = by_token(request)
        message = target(record, request.match_info["message_id"])
        state.delete_message(message)
        return no_content()

    router.add_post(prefix + "/interactions/{interaction_id}/{token}/callback", interaction_callback)
    base = prefix + "/webhooks/{application_id}/{token}"
    router.add_post(base, followup)
    router.add_get(base + "/messages/{message_id}", get_message)
    router.add_patch(base + "/messages/{message_id}", edit_message)
    router.add_delete(base + "/messages/{message_id}", delete_message)
