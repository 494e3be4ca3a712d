"""Threads and forum posts: create, PATCH (archive, lock, rename, tags), delete, members, archived lists."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import errors
from ..errors import APIError, FormErrors
from ..models import Channel, ChannelType, Message, Perm
from ..validation import validate_auto_archive, validate_thread_name
from .common import json_response, no_content, read_payload, snowflake_arg
from .messages import build_message

if TYPE_CHECKING:
    from ..emulator import FakeDiscord

REQUIRE_TAG = 1 << 4


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    state = emu.state
    def bot() -> int:
        return state.bot_user_id

    def thread_payload(payload: dict[str, Any]) -> None:
        validate_thread_name(payload.get("name"))
        form = FormErrors()
        validate_auto_archive(payload.get("auto_archive_duration"), form)
        form.raise_if_any()

    async def from_message(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        message = state.message(channel.id, snowflake_arg(request, "message_id"))
        payload, _ = await read_payload(request, emu)
        if channel.type not in (ChannelType.TEXT, ChannelType.NEWS):
            raise APIError(400, 50024, "Cannot execute action on this channel type")
        state.require(channel, bot(), Perm.CREATE_PUBLIC_THREADS, Perm.READ_MESSAGE_HISTORY)
        thread_payload(payload)
        if message.thread_id is not None:
            raise APIError(400, 160004, "A thread has already been created for this message")
        thread = state.create_thread(channel, name=payload["name"], owner_id=bot(), thread_id=message.id,
                                     auto_archive_duration=payload.get("auto_archive_duration") or 4320)
        message.thread_id = thread.id
        state.dispatch("MESSAGE_UPDATE", state.message_event_json(message), 1 << 9, channel.guild_id)
        return json_response(state.channel_json(thread), status=201)

    async def create(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        payload, files = await read_payload(request, emu)
        if channel.type == ChannelType.FORUM:
            return await forum_post(channel, payload, files)
        if channel.type not in (ChannelType.TEXT, ChannelType.NEWS):
            raise APIError(400, 50024, "Cannot execute action on this channel type")
        kind = ChannelType(payload.get("type") or ChannelType.PRIVATE_THREAD)
        if channel.type == ChannelType.NEWS and kind == ChannelType.PUBLIC_THREAD:
            kind = ChannelType.NEWS_THREAD
        needed = Perm.CREATE_PRIVATE_THREADS if kind == ChannelType.PRIVATE_THREAD else Perm.CREATE_PUBLIC_THREADS
        state.require(channel, bot(), needed)
        thread_payload(payload)
        thread = state.create_thread(channel, name=payload["name"], owner_id=bot(), type=kind,
                                     auto_archive_duration=payload.get("auto_archive_duration") or 4320,
                                     invitable=payload.get("invitable", True))
        if kind != ChannelType.PRIVATE_THREAD:
            notice = Message(id=state.new_id(), channel_id=channel.id, guild_id=channel.guild_id,
                             author_id=bot(), content=thread.name, type=18, allowed_mentions={"parse": []},
                             message_reference={"type": 0, "channel_id": str(thread.id),
                                                "guild_id": str(channel.guild_id)})
            state.add_message(notice)
        return json_response(state.channel_json(thread), status=201)

    async def forum_post(forum: Channel, payload: dict[str, Any], files: list[dict[str, Any]]) -> web.Response:
        state.require(forum, bot(), Perm.SEND_MESSAGES)
        thread_payload(payload)
        tags = [int(t) for t in payload.get("applied_tags") or []]
        known = {int(t["id"]) for t in forum.available_tags}
        form = FormErrors()
        if len(tags) > 5:
            form.add(("applied_tags",), "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        for index, tag in enumerate(tags):
            if tag not in known:
                form.add(("applied_tags", index), "FORUM_TAG_UNKNOWN", "Unknown tag")
        if "message" not in payload:
            form.add(("message",), "BASE_TYPE_REQUIRED", "This field is required")
        form.raise_if_any()
        if forum.flags & REQUIRE_TAG and not tags:
            raise APIError(400, 40067, "A tag is required to create a forum post in this channel")
        starter_id = state.new_id()
        thread = Channel(id=starter_id, type=ChannelType.PUBLIC_THREAD, guild_id=forum.guild_id, name="")
        state.channels[thread.id] = thread  # placeholder so the message can be validated into it
        try:
            message = build_message(emu, thread, payload["message"], files, bot())
        finally:
            del state.channels[thread.id]
        message.id = starter_id
        thread = state.create_thread(forum, name=payload["name"], owner_id=bot(), thread_id=starter_id,
                                     type=ChannelType.PUBLIC_THREAD, applied_tags=tags,
                                     auto_archive_duration=payload.get("auto_archive_duration") or 4320)
        message.channel_id = thread.id
        state.add_message(message)
        data = state.channel_json(thread)
        data["message"] = emu.rest_message_json(message)
        return json_response(data, status=201)

    async def patch_channel(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        payload, _ = await read_payload(request, emu)
        if not channel.is_thread:
            state.require(channel, bot(), Perm.MANAGE_CHANNELS)
            if "name" in payload:
                form = FormErrors()
                form.length(("name",), payload["name"], 1, 100)
                form.raise_if_any()
                channel.name = payload["name"]
            if "topic" in payload:
                channel.topic = payload["topic"]
            state.dispatch("CHANNEL_UPDATE", state.channel_json(channel), 1, channel.guild_id)
            return json_response(state.channel_json(channel))
        perms = state.permissions(channel, bot())
        manage = bool(perms & Perm.MANAGE_THREADS)
        meta = channel.metadata
        assert meta is not None
        if "name" in payload:
            validate_thread_name(payload["name"])
        form = FormErrors()
        validate_auto_archive(payload.get("auto_archive_duration"), form)
        form.raise_if_any()
        is_owner = channel.owner_id == bot()
        if not manage:
            if "locked" in payload and payload["locked"] != meta.locked:
                raise errors.missing_permissions()
            if meta.locked:
                raise errors.thread_archived() if meta.archived else errors.missing_permissions()
            if not is_owner and set(payload) - {"archived"}:
                raise errors.missing_permissions()
        if meta.archived and payload.get("archived") is not False and set(payload) - {"archived", "locked"}:
            raise errors.thread_archived()
        tags = payload.get("applied_tags")
        state.update_thread(channel, name=payload.get("name"), archived=payload.get("archived"),
                            locked=payload.get("locked"), auto_archive_duration=payload.get("auto_archive_duration"),
                            applied_tags=[int(t) for t in tags] if tags is not None else None)
        return json_response(state.channel_json(channel))

    async def delete_channel(request: web.Request) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        needed = Perm.MANAGE_THREADS if channel.is_thread else Perm.MANAGE_CHANNELS
        state.require(channel, bot(), needed)
        state.delete_channel(channel)
        return json_response(state.channel_json(channel))

    def thread_of(request: web.Request) -> Channel:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        if not channel.is_thread:
            raise APIError(400, 50024, "Cannot execute action on this channel type")
        state.require(channel, bot())
        return channel

    async def join(request: web.Request) -> web.Response:
        thread = thread_of(request)
        if thread.metadata and thread.metadata.archived:
            raise errors.thread_archived()
        state.add_thread_member(thread, bot())
        return no_content()

    async def leave(request: web.Request) -> web.Response:
        thread = thread_of(request)
        state.remove_thread_member(thread, bot())
        return no_content()

    async def add_member(request: web.Request) -> web.Response:
        thread = thread_of(request)
        state.require(thread, bot(), Perm.SEND_MESSAGES_IN_THREADS)
        if thread.metadata and thread.metadata.archived:
            raise errors.thread_archived()
        uid = snowflake_arg(request, "user_id")
        if uid not in state.guilds[thread.guild_id].members:
            raise APIError(404, 10007, "Unknown Member")
        state.add_thread_member(thread, uid)
        return no_content()

    async def remove_member(request: web.Request) -> web.Response:
        thread = thread_of(request)
        uid = snowflake_arg(request, "user_id")
        if uid != bot():
            state.require(thread, bot(), Perm.MANAGE_THREADS)
        state.remove_thread_member(thread, uid)
        return no_content()

    def member_json(thread: Channel, uid: int) -> dict[str, Any]:
        stamp = thread.metadata.create_timestamp if thread.metadata else ""
        return {"id": str(thread.id), "user_id": str(uid), "join_timestamp": stamp, "flags": 0}

    async def list_members(request: web.Request) -> web.Response:
        thread = thread_of(request)
        return json_response([member_json(thread, uid) for uid in thread.member_ids])

    async def get_member(request: web.Request) -> web.Response:
        thread = thread_of(request)
        uid = snowflake_arg(request, "user_id")
        if uid not in thread.member_ids:
            raise APIError(404, 10007, "Unknown Member")
        return json_response(member_json(thread, uid))

    def archived(request: web.Request, *, private: bool, joined_only: bool) -> web.Response:
        channel = state.channel(snowflake_arg(request, "channel_id"))
        state.require(channel, bot(), Perm.READ_MESSAGE_HISTORY)
        if private and not joined_only:
            state.require(channel, bot(), Perm.MANAGE_THREADS)
        limit = int(request.query.get("limit", "50"))
        before = request.query.get("before")
        cutoff = datetime.datetime.fromisoformat(before) if before else None
        threads = [t for t in state.channels.values() if t.parent_id == channel.id and t.is_thread
                   and not t.deleted and t.metadata and t.metadata.archived
                   and (t.type == ChannelType.PRIVATE_THREAD) == private
                   and (not joined_only or bot() in t.member_ids)]
        if cutoff is not None:
            threads = [t for t in threads if t.metadata
                       and datetime.datetime.fromisoformat(t.metadata.archive_timestamp) < cutoff]
        threads.sort(key=lambda t: t.metadata.archive_timestamp if t.metadata else "", reverse=True)
        page = threads[:limit]
        return json_response({"threads": [state.channel_json(t) for t in page],
                              "members": [member_json(t, bot()) for t in page if bot() in t.member_ids],
                              "has_more": len(threads) > limit})

    async def archived_public(request: web.Request) -> web.Response:
        return archived(request, private=False, joined_only=False)

    async def archived_private(request: web.Request) -> web.Response:
        return archived(request, private=True, joined_only=False)

    async def archived_joined(request: web.Request) -> web.Response:
        return archived(request, private=True, joined_only=True)

    base = prefix + "/channels/{channel_id}"
    router.add_post(base + "/messages/{message_id}/threads", from_message)
    router.add_post(base + "/threads", create)
    router.add_patch(base, patch_channel)
    router.add_delete(base, delete_channel)
    router.add_put(base + "/thread-members/@me", join)
    router.add_delete(base + "/thread-members/@me", leave)
    router.add_get(base + "/thread-members", list_members)
    router.add_put(base + "/thread-members/{user_id}", add_member)
    router.add_delete(base + "/thread-members/{user_id}", remove_member)
    router.add_get(base + "/thread-members/{user_id}", get_member)
    router.add_get(base + "/threads/archived/public", archived_public)
    router.add_get(base + "/threads/archived/private", archived_private)
    router.add_get(base + "/users/@me/threads/archived/private", archived_joined)
