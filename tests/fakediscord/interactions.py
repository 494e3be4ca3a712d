"""Interactions: building the payloads a human's click or command produces, and the bot's answers.

A test gets an :class:`InteractionHandle` back from ``FakeDiscord.invoke``/``click``/``autocomplete``
and awaits what the bot did with it: the callback type, the original response, follow-ups.
"""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import APIError, FormErrors
from .models import Channel, Command, InteractionRecord, Message, Perm
from .validation import validate_message

if TYPE_CHECKING:
    from .emulator import FakeDiscord

PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
EPHEMERAL, LOADING = 64, 128
OPTION_TYPES = {"SUB_COMMAND": 1, "SUB_COMMAND_GROUP": 2, "STRING": 3, "INTEGER": 4, "BOOLEAN": 5, "USER": 6,
                "CHANNEL": 7, "ROLE": 8, "MENTIONABLE": 9, "NUMBER": 10, "ATTACHMENT": 11}


class InteractionHandle:
    """What a test holds after acting as a user; every wait is driven by state changes."""

    def __init__(self, emu: FakeDiscord, record: InteractionRecord) -> None:
        self.emu = emu
        self.record = record

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def response_type(self) -> int | None:
        return self.record.response_type

    @property
    def response_data(self) -> dict[str, Any] | None:
        return self.record.response_data

    @property
    def original(self) -> Message | None:
        mid = self.record.original_message_id
        return self.emu.state.messages.get(mid) if mid else None

    @property
    def followups(self) -> list[Message]:
        return [self.emu.state.messages[m] for m in self.record.followup_ids]

    @property
    def choices(self) -> list[dict[str, Any]] | None:
        return self.record.autocomplete_choices

    async def response(self, timeout: float = 5.0) -> int:  # noqa: ASYNC109 (the tests' deadline)
        """Wait for the interaction callback; returns its type (4, 5, 6, 7, 8, 9)."""
        await self.emu.wait_until(lambda: self.record.response_type is not None, timeout=timeout)
        assert self.record.response_type is not None
        return self.record.response_type

    async def wait_original(self, predicate: Any = None, timeout: float = 5.0) -> Message:  # noqa: ASYNC109 (the tests' deadline)
        """Wait for the original response message (optionally until ``predicate(message)``)."""

        def ready() -> bool:
            message = self.original
            if message is None or message.flags & LOADING:
                return False
            return predicate(message) if predicate else True

        await self.emu.wait_until(ready, timeout=timeout)
        assert self.original is not None
        return self.original

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[Message]:  # noqa: ASYNC109 (the tests' deadline)
        await self.emu.wait_until(lambda: len(self.record.followup_ids) >= count, timeout=timeout)
        return self.followups

    async def wait_choices(self, timeout: float = 5.0) -> list[dict[str, Any]]:  # noqa: ASYNC109 (the tests' deadline)
        await self.response(timeout)
        if self.record.response_type != 8:
            raise AssertionError(f"expected an autocomplete result (8), got {self.record.response_type}")
        return self.record.autocomplete_choices or []

    async def answer_text(self, timeout: float = 5.0) -> str:  # noqa: ASYNC109 (the tests' deadline)
        """The visible text of the answer: the original response, else the first follow-up."""
        kind = await self.response(timeout)
        if kind in (4, 5):
            return (await self.wait_original(timeout=timeout)).content
        if kind == 7 and self.record.message_id:
            return self.emu.state.messages[self.record.message_id].content
        return (await self.wait_followups(1, timeout))[0].content


def find_command(emu: FakeDiscord, name: str, kind: int, guild_id: int | None) -> Command:
    candidates = [c for c in emu.state.commands.values() if c.name == name and c.type == kind]
    for command in candidates:
        if command.guild_id == guild_id:
            return command
    for command in candidates:
        if command.guild_id is None:
            return command
    registered = sorted(c.name for c in emu.state.commands.values())
    raise LookupError(f"command {name!r} (type {kind}) is not registered (did the bot sync?); "
                      f"registered: {registered}")


def _option_defs(command: Command, path: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The nesting of sub-command(s) for ``path`` and the leaf's option definitions."""
    defs = command.options
    chain: list[dict[str, Any]] = []
    for part in path:
        match = next((o for o in defs if o["name"] == part and o["type"] in (1, 2)), None)
        if match is None:
            raise LookupError(f"{command.name}: no sub-command {part!r}")
        chain.append(match)
        defs = match.get("options") or []
    if any(o["type"] in (1, 2) for o in defs):
        raise LookupError(f"{command.name} {' '.join(path)}: a sub-command must be chosen")
    return chain, defs


def build_options(emu: FakeDiscord, command: Command, path: list[str], values: dict[str, Any],
                  guild_id: int | None, focused: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Typed option values and Discord's ``resolved`` object for users, members, roles, channels."""
    state = emu.state
    chain, defs = _option_defs(command, path)
    resolved: dict[str, dict[str, Any]] = {}
    leaf: list[dict[str, Any]] = []
    by_name = {o["name"]: o for o in defs}
    for name, value in values.items():
        definition = by_name.get(name)
        if definition is None:
            raise LookupError(f"{command.name}: no option {name!r}; options: {sorted(by_name)}")
        kind = definition["type"]
        option: dict[str, Any] = {"name": name, "type": kind}
        raw = getattr(value, "id", value)
        if name == focused:
            option["value"] = str(value)
            option["focused"] = True
        elif kind in (6, 9) and int(raw) in state.users:
            option["value"] = str(raw)
            resolved.setdefault("users", {})[str(raw)] = state.user_json(int(raw))
            if guild_id and int(raw) in state.guilds[guild_id].members:
                member = state.member_json(guild_id, int(raw), with_user=False)
                member["permissions"] = str(state.base_permissions(state.guilds[guild_id], int(raw)))
                resolved.setdefault("members", {})[str(raw)] = member
        elif kind in (8, 9):
            role = state.guilds[guild_id or 0].roles[int(raw)]
            option["value"] = str(raw)
            resolved.setdefault("roles", {})[str(raw)] = state.role_json(role)
        elif kind == 7:
            channel = state.channel(int(raw))
            option["value"] = str(raw)
            data = state.channel_json(channel)
            partial: dict[str, Any] = {k: data[k] for k in ("id", "type", "name", "parent_id", "thread_metadata")
                       if k in data}
            partial["permissions"] = str(state.permissions(channel, state.bot_user_id))
            resolved.setdefault("channels", {})[str(raw)] = partial
        elif kind == 4:
            option["value"] = int(value)
        elif kind == 10:
            option["value"] = float(value)
        elif kind == 5:
            option["value"] = bool(value)
        else:
            option["value"] = str(value)
        leaf.append(option)
    missing = [o["name"] for o in defs if o.get("required") and o["name"] not in values]
    if missing and focused is None:
        raise ValueError(f"{command.name}: required options missing: {missing}")
    options = leaf
    for sub in reversed(chain):
        options = [{"name": sub["name"], "type": sub["type"], "options": options}]
    return options, resolved


def base_payload(emu: FakeDiscord, kind: int, data: dict[str, Any], channel: Channel, user_id: int,
                 permissions: int | None) -> dict[str, Any]:
    state = emu.state
    guild = state.guilds[channel.guild_id]
    interaction_id = state.new_id()
    token = f"aW50ZXJhY3Rpb246{interaction_id}:{secrets.token_urlsafe(48)}"
    member = state.member_json(guild.id, user_id)
    member["permissions"] = str(state.permissions(channel, user_id) if permissions is None else permissions)
    channel_data = state.channel_json(channel)
    return {
        "id": str(interaction_id), "application_id": str(state.application_id), "type": kind, "data": data,
        "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
        "guild_id": str(guild.id), "channel_id": str(channel.id), "channel": channel_data, "member": member,
        "token": token, "version": 1,
        "app_permissions": str(state.permissions(channel, state.bot_user_id)), "locale": "en-US",
        "guild_locale": "en-US", "entitlements": [], "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0, "attachment_size_limit": 26214400,
    }


def deliver(emu: FakeDiscord, payload: dict[str, Any], channel: Channel, user_id: int,
            message_id: int | None = None, trigger_id: int | None = None) -> InteractionHandle:
    """Record the interaction and send INTERACTION_CREATE to the bot."""
    if not any(session.connection is not None and session.carries(channel.guild_id)
               for session in emu.gateway.live_sessions()):
        raise RuntimeError("no bot is connected to the gateway (on this guild's shard): nobody would receive "
                           "this interaction")
    now = time.monotonic()
    record = InteractionRecord(
        id=int(payload["id"]), token=payload["token"], type=payload["type"], data=payload["data"],
        channel_id=channel.id, guild_id=channel.guild_id, user_id=user_id, created_at=now,
        deadline=now + emu.interaction_deadline, message_id=message_id, trigger_id=trigger_id,
    )
    emu.state.interactions[record.id] = record
    emu.state.interactions_by_token[record.token] = record
    emu.state.dispatch("INTERACTION_CREATE", payload, 0, channel.guild_id)
    return InteractionHandle(emu, record)


def require_command_permission(emu: FakeDiscord, command: Command, channel: Channel, user_id: int,
                               permissions: int | None) -> None:
    if command.default_member_permissions is None:
        return
    needed = int(command.default_member_permissions)
    have = emu.state.permissions(channel, user_id) if permissions is None else permissions
    if needed == 0 or (have & needed != needed and not have & Perm.ADMINISTRATOR):
        raise PermissionError(f"/{command.name} is not available to this member (default_member_permissions="
                              f"{needed}); Discord would not show it")


# ---------------------------------------------------------------------- the bot's answers
def response_message(emu: FakeDiscord, record: InteractionRecord, data: dict[str, Any],
                     files: list[dict[str, Any]], *, loading: bool = False) -> Message:
    from .rest.messages import build_message

    state = emu.state
    channel = state.channel(record.channel_id)
    if not loading:
        validate_message(data, has_files=bool(files))
    payload = {k: v for k, v in data.items() if k != "message_reference"}
    kind = {APPLICATION_COMMAND: 20 if record.data.get("type", 1) == 1 else 23}.get(record.type, 19)
    message = build_message(emu, channel, {**payload, "content": payload.get("content") or ""}, files,
                            state.bot_user_id, type=kind, webhook_id=state.application_id,
                            application_id=state.application_id) if not loading else Message(
        id=state.new_id(), channel_id=channel.id, guild_id=channel.guild_id, author_id=state.bot_user_id,
        type=kind, webhook_id=state.application_id, application_id=state.application_id)
    message.flags = int(data.get("flags") or 0) & (EPHEMERAL | 4 | 4096)
    if loading:
        message.flags |= LOADING
    message.ephemeral = bool(message.flags & EPHEMERAL)
    message.interaction_metadata = interaction_metadata(emu, record)
    return message


def interaction_metadata(emu: FakeDiscord, record: InteractionRecord) -> dict[str, Any]:
    """The ``interaction_metadata`` of a message that answers ``record``."""
    state = emu.state
    metadata: dict[str, Any] = {
        "id": str(record.id), "type": record.type, "user": state.user_json(record.user_id),
        "authorizing_integration_owners": {"0": str(record.guild_id)},
    }
    if record.original_message_id:
        metadata["original_response_message_id"] = str(record.original_message_id)
    if record.type == APPLICATION_COMMAND:
        metadata["name"] = record.data.get("name")
        metadata["command_type"] = record.data.get("type", 1)
        if record.data.get("target_id") and record.data.get("type") == 2:
            metadata["target_user"] = state.user_json(int(record.data["target_id"]))
        elif record.data.get("target_id"):
            metadata["target_message_id"] = str(record.data["target_id"])
    elif record.type == MESSAGE_COMPONENT:
        metadata["interacted_message_id"] = str(record.message_id)
    elif record.type == MODAL_SUBMIT and record.trigger_id in state.interactions:
        metadata["triggering_interaction_metadata"] = interaction_metadata(emu, state.interactions[record.trigger_id])
    return metadata


def check_bot_can_reply(emu: FakeDiscord, record: InteractionRecord, ephemeral: bool) -> None:
    """Interaction replies need no SEND_MESSAGES, but a thread reply into an archived locked thread fails."""
    channel = emu.state.channel(record.channel_id)
    if channel.is_thread and channel.metadata and channel.metadata.archived and not ephemeral:
        if channel.metadata.locked:
            raise errors.thread_archived()
        emu.state.update_thread(channel, archived=False)


def callback(emu: FakeDiscord, record: InteractionRecord, body: dict[str, Any],
             files: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply an interaction callback; returns the ``with_response`` JSON body."""
    state = emu.state
    if time.monotonic() > record.deadline:
        raise errors.unknown_interaction()
    if record.response_type is not None:
        raise errors.already_acknowledged()
    kind = body.get("type")
    data = body.get("data") or {}
    allowed = {
        APPLICATION_COMMAND: {4, 5, 9}, MESSAGE_COMPONENT: {4, 5, 6, 7, 9}, MODAL_SUBMIT: {4, 5, 6, 7},
        AUTOCOMPLETE: {8}, PING: {1},
    }[record.type]
    if kind not in allowed:
        raise APIError(400, 50035, "Invalid Form Body", {"type": {"_errors": [
            {"code": "INTERACTION_RESPONSE_TYPE_INVALID", "message": "Interaction response type is invalid"}]}})
    message: Message | None = None
    if kind == 4:
        message = response_message(emu, record, data, files)
        check_bot_can_reply(emu, record, message.ephemeral)
        state.add_message(message)
        record.original_message_id = message.id
    elif kind == 5:
        message = response_message(emu, record, data, files, loading=True)
        check_bot_can_reply(emu, record, message.ephemeral)
        state.add_message(message)
        record.original_message_id = message.id
    elif kind == 7:
        target = state.messages[record.message_id or 0]
        validate_message(data, require_body=False)
        state.edit_message(target, emu.edit_changes(target, data, files))
        record.original_message_id = target.id
        message = target
    elif kind == 8:
        choices = data.get("choices") or []
        form = FormErrors()
        if len(choices) > 25:
            form.add(("data", "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for index, choice in enumerate(choices):
            form.length(("data", "choices", index, "name"), choice.get("name", ""), 1, 100)
        form.raise_if_any()
        record.autocomplete_choices = choices
    elif kind == 9:
        form = FormErrors()
        form.length(("data", "title"), data.get("title", ""), 1, 45)
        form.length(("data", "custom_id"), data.get("custom_id", ""), 1, 100)
        form.raise_if_any()
    record.response_type = kind
    record.response_data = data
    record.done.set()
    state.changed()
    interaction = {"id": str(record.id), "type": record.type,
                   "response_message_loading": kind == 5,
                   "response_message_ephemeral": bool(message and message.ephemeral)}
    result: dict[str, Any] = {"interaction": interaction}
    if message is not None:
        interaction["response_message_id"] = str(message.id)
        if kind in (4, 7):  # Discord returns the message resource only for these two
            result["resource"] = {"type": kind, "message": emu.rest_message_json(message)}
    return result

