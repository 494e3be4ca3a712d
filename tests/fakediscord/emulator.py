"""``FakeDiscord``: the server (REST + gateway on 127.0.0.1) and the test API that plays the humans."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from . import errors
from .errors import APIError
from .gateway import INVALID_SESSION, RECONNECT, Gateway
from .interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    InteractionHandle,
    base_payload,
    build_options,
    deliver,
    find_command,
    require_command_permission,
)
from .models import (
    Channel,
    ChannelType,
    Guild,
    Intent,
    Member,
    Message,
    Perm,
    Role,
    User,
    Webhook,
)
from .ratelimits import RateLimiter
from .rest import register_all
from .rest.common import BODY_KEY, OAUTH_USER_KEY, attachments_from, normalise_embeds, number_components
from .snowflake import iso
from .state import State

log = logging.getLogger(__name__)
API_PREFIX = "/api/v10"
Ref = int | Any  # an id or any record with ``.id``


def _id(value: Ref) -> int:
    return int(getattr(value, "id", value))


@dataclass
class LoggedRequest:
    method: str
    path: str
    route: str  # "POST /channels/{channel_id}/messages"
    status: int
    body: Any
    response: Any
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class HeldRequest:
    """A REST request the emulator keeps waiting, made with :meth:`FakeDiscord.hold`."""

    route: str
    match: Callable[[web.Request, Any], bool]
    applied: bool
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


class FakeDiscord:
    """A Discord stand-in for tests. ``await emu.start()`` binds 127.0.0.1 on a free port."""

    instances: ClassVar[list[FakeDiscord]] = []  # for the suite's OpenAPI check

    def __init__(self, *, token: str | None = None, bot_name: str = "Conversation Engine",
                 message_content_enabled: bool = True, members_intent_enabled: bool = False,
                 presence_intent_enabled: bool = False, interaction_deadline: float = 3.0,
                 recommended_shards: int = 1, max_concurrency: int = 1) -> None:
        self.state = State()
        self.gateway = Gateway(self)
        self.state.set_dispatcher(self.gateway.dispatch)
        self.token = token or f"ZmFrZWRpc2NvcmQ.{secrets.token_urlsafe(6)}.{secrets.token_urlsafe(27)}"
        self.ratelimits = RateLimiter()
        self.interaction_deadline = interaction_deadline
        # What GET /gateway/bot answers: the shard count Discord recommends, and how many shards may
        # identify at once (session_start_limit.max_concurrency).
        self.recommended_shards = recommended_shards
        self.max_concurrency = max_concurrency
        self.session_start_total = 1000
        self.requests_log: list[LoggedRequest] = []
        self.files: dict[int, bytes] = {}
        self.command_syncs = 0
        self.default_allowed_mentions: dict[str, Any] | None = None
        self.application_flags = 0
        self.privileged_intents_enabled = 0
        self.set_portal_intents(message_content=message_content_enabled, members=members_intent_enabled,
                                presences=presence_intent_enabled)
        bot = self.create_user(bot_name, bot=True)
        self.state.bot_user_id = bot.id
        self.state.application_id = bot.id  # a bot's user id is its application id
        self.bot = bot
        self.application_owner = self.create_user("app-owner")
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/gateway", self.gateway.handle)
        # The spec has no /oauth2/token (a form-encoded OAuth2 endpoint, not part of the bot API).
        self.openapi_exempt_routes: set[str] = {"POST /oauth2/token"}
        # OAuth2 and webhooks: the developer portal's redirect URIs and client secret, who clicks
        # "Authorize" next (None: the user cancels), codes and users' tokens; webhooks by id.
        self.client_secret = secrets.token_urlsafe(24)
        self.redirect_uris: list[str] = []
        self.oauth_approver: int | None = None
        self.authorize_requests: list[dict[str, str]] = []
        self.oauth_codes: dict[str, tuple[int, str]] = {}
        self.oauth_tokens: dict[str, int] = {}
        self.webhooks: dict[int, Webhook] = {}
        self.webhook_avatars: dict[int, str | None] = {}  # message id -> avatar_url it was executed with
        self.channel_webhook_routes: dict[str, Callable[[web.Request], Any]] = {}  # set by rest/webhooks.py
        register_all(self.app, self, API_PREFIX)
        self.observers: list[Callable[[LoggedRequest], None]] = []
        self.holds: list[HeldRequest] = []
        self.recheck_interval = 0.02
        self.outage_status: int | None = None  # set: every REST request is answered with it
        FakeDiscord.instances.append(self)

    # ------------------------------------------------------------------ lifecycle
    @property
    def application_id(self) -> int:
        return self.state.application_id

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.http_base + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> FakeDiscord:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self

    async def stop(self) -> None:
        for held in self.holds:
            held.release()
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def set_portal_intents(self, *, message_content: bool | None = None, members: bool | None = None,
                           presences: bool | None = None) -> None:
        """Which privileged intents the application "has" switched on in the developer portal."""
        for enabled, intent, flag in ((message_content, Intent.MESSAGE_CONTENT, 1 << 19),
                                      (members, Intent.GUILD_MEMBERS, 1 << 15),
                                      (presences, Intent.GUILD_PRESENCES, 1 << 13)):
            if enabled is None:
                continue
            if enabled:
                self.privileged_intents_enabled |= intent
                self.application_flags |= flag
            else:
                self.privileged_intents_enabled &= ~intent
                self.application_flags &= ~flag

    # ------------------------------------------------------------------ HTTP plumbing
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            passed: web.StreamResponse = await handler(request)
            return passed
        resource = request.match_info.route.resource
        template = resource.canonical.removeprefix(API_PREFIX) if resource is not None else request.path
        route = f"{request.method} {template}"
        response: web.StreamResponse
        extra_headers: dict[str, str] = {}
        held: HeldRequest | None = None
        try:
            if resource is None:
                raise APIError(404, 0, "404: Not Found")
            unauthenticated = template in ("/gateway", "/oauth2/token") or template.startswith(
                ("/interactions/", "/webhooks/"))
            authorization = request.headers.get("Authorization", "")
            if authorization.startswith("Bearer ") and template == "/users/@me":
                user_id = self.oauth_tokens.get(authorization.removeprefix("Bearer "))
                if user_id is None:
                    raise APIError(401, 0, "401: Unauthorized")
                request[OAUTH_USER_KEY] = user_id
            elif not unauthenticated and authorization != f"Bot {self.token}":
                raise APIError(401, 0, "401: Unauthorized")
            if self.outage_status is not None:
                raise APIError(self.outage_status, 0, "upstream connect error or disconnect/reset before headers")
            major = next((request.match_info[k] for k in ("channel_id", "guild_id", "application_id",
                                                           "interaction_id") if k in request.match_info), "")
            if "token" in request.match_info:
                major += request.match_info["token"]
            extra_headers, limited = self.ratelimits.check(route, major)
            if limited is not None:
                response = web.Response(status=429, body=json.dumps(limited).encode(),
                                        headers={"Content-Type": "application/json", **extra_headers})
                self._log(request, route, response, limited)
                return response
            held = await self._take_hold(request, route)
            if held is not None and not held.applied:
                held.reached.set()
                await held.released.wait()
                return web.Response(status=503)  # lost on the way: never carried out, never logged
            response = await handler(request)
        except APIError as exc:
            response = web.Response(status=exc.status, body=json.dumps(exc.body()).encode(),
                                    headers={"Content-Type": "application/json"})
        for key, value in extra_headers.items():
            response.headers[key] = value
        body = None
        if isinstance(response, web.Response) and response.body and response.content_type == "application/json":
            body = json.loads(response.body)  # type: ignore[arg-type]
        self._log(request, route, response, body)
        if held is not None:
            held.reached.set()
            await held.released.wait()  # carried out, but the answer never arrives before the release
        return response

    async def _take_hold(self, request: web.Request, route: str) -> HeldRequest | None:
        from .ratelimits import normalise_route

        candidates = [h for h in self.holds if h.route == normalise_route(route)]
        if not candidates:
            return None
        body = None
        if request.body_exists and request.content_type == "application/json":
            body = await request.json()  # aiohttp keeps the bytes: the route handler reads them again
        for held in candidates:
            if held.match(request, body):
                self.holds.remove(held)
                return held
        return None

    def _log(self, request: web.Request, route: str, response: web.StreamResponse, body: Any) -> None:
        entry = LoggedRequest(request.method, request.path, route, response.status,
                              request.get(BODY_KEY), body, dict(request.query))
        self.requests_log.append(entry)
        for observer in self.observers:
            observer(entry)
        self.state.changed()

    def openapi_exempt(self, entry: LoggedRequest) -> bool:
        """Exchanges deliberately off-spec (a test's invalid payloads) are not checked."""
        from .ratelimits import normalise_route

        return (entry.status == 400 or entry.status >= 500
                or normalise_route(entry.route) in self.openapi_exempt_routes)

    def requests(self, route: str | None = None, *, status: int | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally for one route (``"POST /channels/{id}/messages"``)."""
        from .ratelimits import normalise_route

        wanted = normalise_route(route) if route else None
        return [r for r in self.requests_log if (wanted is None or normalise_route(r.route) == wanted)
                and (status is None or r.status == status)]

    # ------------------------------------------------------------------ JSON helpers used by routes
    def application_json(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id), "name": self.bot.username, "icon": None, "description": "",
            "summary": "", "type": None, "bot_public": True, "bot_require_code_grant": False,
            "verify_key": "0" * 64, "flags": self.application_flags, "hook": True, "is_monetized": False,
            "is_verified": False, "is_discoverable": False, "storefront_available": False,
            "bot": self.state.user_json(self.bot.id), "owner": self.state.user_json(self.application_owner.id),
            "team": None, "redirect_uris": [], "interactions_endpoint_url": None, "rpc_origins": [],
            "approximate_guild_count": len(self.state.guilds), "integration_types_config": {"0": {}},
            "flags_new": str(self.application_flags), "role_connections_verification_url": None,
            "approximate_user_install_count": 0, "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0, "eligible_oauth2_scopes": ["bot", "applications.commands"],
        }

    def blank_content(self, data: dict[str, Any]) -> dict[str, Any]:
        """What an app without the Message Content intent gets for another user's message."""
        author = (data.get("author") or {}).get("id")
        bot_id = str(self.bot.id)
        if author == bot_id or any(u.get("id") == bot_id for u in data.get("mentions") or []):
            return data
        blanked = dict(data)
        for key, empty in (("content", ""), ("embeds", []), ("attachments", []), ("components", [])):
            if key in blanked:
                blanked[key] = empty
        blanked.pop("poll", None)
        return blanked

    def rest_message_json(self, message: Message) -> dict[str, Any]:
        data = self.state.message_json(message)
        if not self.privileged_intents_enabled & Intent.MESSAGE_CONTENT:
            data = self.blank_content(data)
        return data

    def edit_changes(self, message: Message, payload: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if "content" in payload:
            changes["content"] = payload["content"] or ""
        if "embeds" in payload:
            changes["embeds"] = normalise_embeds(payload["embeds"])
        if "components" in payload:
            changes["components"] = number_components(payload["components"])
        if "allowed_mentions" in payload:
            changes["allowed_mentions"] = payload["allowed_mentions"]
        if "flags" in payload and payload["flags"] is not None:
            changes["flags"] = (message.flags & ~4) | (int(payload["flags"]) & 4)
        if "attachments" in payload or files:
            kept_ids = {str(a.get("id")) for a in payload.get("attachments") or []}
            kept = [a for a in message.attachments if a["id"] in kept_ids] if "attachments" in payload \
                else list(message.attachments)
            changes["attachments"] = kept + attachments_from(self, message.channel_id, payload, files)
        return changes

    # ------------------------------------------------------------------ waiting
    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Wait until ``predicate()`` is truthy; returns its value.

        Re-checked on every emulator state change (an ``asyncio.Condition`` notified by each change and
        each request or gateway frame). Predicates may also look at the bot's own state, which the emulator
        cannot see change, so the condition wait is capped at ``recheck_interval`` too.
        """
        condition = self.state.condition
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise AssertionError(f"wait_until timed out after {timeout}s: {name}")
            async with condition:
                try:
                    await asyncio.wait_for(condition.wait(), min(remaining, self.recheck_interval))
                except TimeoutError:
                    pass

    # ------------------------------------------------------------------ building the world
    def create_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> User:
        user = User(self.state.new_id(), username, bot=bot, global_name=global_name)
        self.state.users[user.id] = user
        return user

    def create_guild(self, name: str, owner: Ref, *, add_bot: bool = True,
                     everyone_permissions: int | None = None, shard: tuple[int, int] | None = None) -> Guild:
        """A guild; with ``shard=(id, count)`` its id puts it on that shard of a bot running ``count``."""
        from .models import DEFAULT_EVERYONE

        state = self.state
        guild_id = state.new_id()
        if shard is not None:
            shard_id, shard_count = shard
            # Moved back by a few milliseconds: still a fresh id (the increment bits are unused).
            guild_id -= ((guild_id >> 22) - shard_id) % shard_count << 22
        guild = Guild(guild_id, name, _id(owner))
        guild.roles[guild.id] = Role(guild.id, "@everyone",
                                     DEFAULT_EVERYONE if everyone_permissions is None else everyone_permissions)
        state.guilds[guild.id] = guild
        guild.members[guild.owner_id] = Member(guild.owner_id, joined_at=iso())
        if add_bot:
            bot_role = Role(state.new_id(), self.bot.username, int(
                Perm.VIEW_CHANNEL | Perm.SEND_MESSAGES | Perm.EMBED_LINKS | Perm.ATTACH_FILES
                | Perm.READ_MESSAGE_HISTORY | Perm.ADD_REACTIONS | Perm.CREATE_PUBLIC_THREADS
                | Perm.SEND_MESSAGES_IN_THREADS | Perm.MANAGE_THREADS | Perm.MANAGE_MESSAGES
                | Perm.USE_EXTERNAL_EMOJIS | Perm.MANAGE_WEBHOOKS), position=1, managed=True)
            guild.roles[bot_role.id] = bot_role
            guild.members[self.bot.id] = Member(self.bot.id, roles=[bot_role.id], joined_at=iso())
            # A bot added while connected: Discord sends GUILD_CREATE.
            for session in self.gateway.live_sessions():
                if session.intents & Intent.GUILDS and session.carries(guild.id):
                    session.push({"op": 0, "t": "GUILD_CREATE", "d": state.guild_create_json(
                        guild, all_members=bool(session.intents & Intent.GUILD_MEMBERS))})
        state.changed()
        return guild

    def approve_oauth(self, user: Ref | None) -> None:
        """The next OAuth2 authorize page is approved by ``user`` (None: cancelled)."""
        self.oauth_approver = None if user is None else _id(user)

    def time_out(self, guild: Ref, user: Ref, until: str | None) -> None:
        """Time a member out until ``until`` (ISO time), or end the timeout (None)."""
        g = self.state.guild(_id(guild))
        g.members[_id(user)].communication_disabled_until = until
        self.state.dispatch("GUILD_MEMBER_UPDATE", {**self.state.member_json(g.id, _id(user)), "guild_id": str(g.id)},
                            Intent.GUILD_MEMBERS, g.id)

    def create_role(self, guild: Ref, name: str, *, permissions: int = 0, mentionable: bool = False,
                    position: int | None = None) -> Role:
        g = self.state.guild(_id(guild))
        role = Role(self.state.new_id(), name, permissions, position if position is not None else len(g.roles),
                    mentionable=mentionable)
        g.roles[role.id] = role
        self.state.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(g.id), "role": self.state.role_json(role)},
                            Intent.GUILDS, g.id)
        return role

    def add_member(self, guild: Ref, user: Ref, *, roles: Iterable[Ref] = (), nick: str | None = None) -> Member:
        g = self.state.guild(_id(guild))
        member = Member(_id(user), roles=[_id(r) for r in roles], nick=nick, joined_at=iso())
        g.members[member.user_id] = member
        self.state.dispatch("GUILD_MEMBER_ADD", {**self.state.member_json(g.id, member.user_id),
                                                 "guild_id": str(g.id)}, Intent.GUILD_MEMBERS, g.id)
        return member

    def create_channel(self, guild: Ref, name: str, *, type: ChannelType = ChannelType.TEXT,
                       topic: str | None = None, parent: Ref | None = None, tags: Iterable[str] = (),
                       flags: int = 0) -> Channel:
        g = self.state.guild(_id(guild))
        position = sum(1 for c in self.state.channels.values() if c.guild_id == g.id)
        channel = Channel(self.state.new_id(), ChannelType(type), g.id, name, position=position, topic=topic,
                          parent_id=_id(parent) if parent is not None else None, flags=flags)
        channel.available_tags = [{"id": str(self.state.new_id()), "name": tag, "moderated": False,
                                   "emoji_id": None, "emoji_name": None} for tag in tags]
        self.state.channels[channel.id] = channel
        self.state.dispatch("CHANNEL_CREATE", self.state.channel_json(channel), Intent.GUILDS, g.id)
        return channel

    def tag_id(self, forum: Ref, name: str) -> int:
        channel = self.state.channel(_id(forum))
        return next(int(t["id"]) for t in channel.available_tags if t["name"] == name)

    def deny(self, channel: Ref, *perms: Perm, target: Ref | None = None, role: bool = False) -> None:
        """Add a channel overwrite denying ``perms`` (to the bot unless ``target`` is given)."""
        self._overwrite(channel, perms, target, role, deny=True)

    def allow(self, channel: Ref, *perms: Perm, target: Ref | None = None, role: bool = False) -> None:
        self._overwrite(channel, perms, target, role, deny=False)

    def clear_overwrite(self, channel: Ref, target: Ref | None = None, role: bool = False) -> None:
        self.state.set_overwrite(_id(channel), _id(target) if target is not None else self.bot.id,
                                 type=0 if role else 1)

    def _overwrite(self, channel: Ref, perms: Iterable[Perm], target: Ref | None, role: bool, deny: bool) -> None:
        ch = self.state.channel(_id(channel))
        target_id = _id(target) if target is not None else self.bot.id
        kind = 0 if role else 1
        existing = next((o for o in ch.overwrites if o.id == target_id and o.type == kind), None)
        allow_bits = existing.allow if existing else 0
        deny_bits = existing.deny if existing else 0
        bits = 0
        for perm in perms:
            bits |= int(perm)
        if deny:
            deny_bits, allow_bits = deny_bits | bits, allow_bits & ~bits
        else:
            allow_bits, deny_bits = allow_bits | bits, deny_bits & ~bits
        self.state.set_overwrite(ch.id, target_id, type=kind, allow=allow_bits, deny=deny_bits)

    # ------------------------------------------------------------------ inspection
    def messages(self, channel: Ref, *, include_deleted: bool = False) -> list[Message]:
        """A channel's or thread's messages, oldest first (ephemeral ones excluded)."""
        ids = self.state.channel_messages.get(_id(channel), [])
        return [m for m in (self.state.messages[i] for i in ids)
                if (include_deleted or not m.deleted) and not m.ephemeral]

    def bot_messages(self, channel: Ref | None = None) -> list[Message]:
        found = [m for m in self.state.messages.values() if m.author_id == self.bot.id and not m.deleted]
        if channel is not None:
            found = [m for m in found if m.channel_id == _id(channel)]
        return sorted(found, key=lambda m: m.id)

    def message(self, message_id: Ref) -> Message:
        return self.state.messages[_id(message_id)]

    def channel(self, channel_id: Ref) -> Channel:
        return self.state.channels[_id(channel_id)]

    @property
    def threads(self) -> list[Channel]:
        return [c for c in self.state.channels.values() if c.is_thread and not c.deleted]

    def threads_in(self, parent: Ref) -> list[Channel]:
        return [t for t in self.threads if t.parent_id == _id(parent)]

    def commands(self, guild: Ref | None = None) -> dict[str, Any]:
        gid = _id(guild) if guild is not None else None
        return {c.name: c for c in self.state.commands.values() if c.guild_id == gid}

    def message_json(self, message: Ref) -> dict[str, Any]:
        return self.state.message_json(self.state.messages[_id(message)])

    @property
    def connected(self) -> bool:
        return self.gateway.connected

    # ------------------------------------------------------------------ acting as humans: messages
    def send_message(self, channel: Ref, author: Ref, content: str = "", *, reply_to: Ref | None = None,
                     embeds: list[dict[str, Any]] | None = None, attachments: Iterable[tuple[str, bytes]] = (),
                     stickers: Iterable[str] = (), components: list[dict[str, Any]] | None = None,
                     check_permissions: bool = True) -> Message:
        """A human posts in a channel or thread (a thread archived but not locked is reopened)."""
        state = self.state
        ch = state.channel(_id(channel))
        author_id = _id(author)
        if check_permissions:
            from .rest.messages import check_can_post

            check_can_post(self, ch, author_id)
        message = Message(id=state.new_id(), channel_id=ch.id, guild_id=ch.guild_id, author_id=author_id,
                          content=content, embeds=normalise_embeds(embeds),
                          components=number_components(components))
        for filename, data in attachments:
            aid = state.new_id()
            self.files[aid] = data
            url = f"{self.http_base}/attachments/{ch.id}/{aid}/{filename}"
            message.attachments.append({"id": str(aid), "filename": filename, "size": len(data), "url": url,
                                        "proxy_url": url, "content_type": "application/octet-stream"})
        message.sticker_items = [{"id": str(state.new_id()), "name": name, "format_type": 1} for name in stickers]
        if reply_to is not None:
            target = state.message(ch.id, _id(reply_to))
            message.type = 19
            message.message_reference = {"type": 0, "message_id": str(target.id), "channel_id": str(ch.id),
                                         "guild_id": str(ch.guild_id)}
        return state.add_message(message)

    def edit_message(self, message: Ref, content: str | None = None, *,
                     embeds: list[dict[str, Any]] | None = None) -> Message:
        msg = self.state.messages[_id(message)]
        changes: dict[str, Any] = {}
        if content is not None:
            changes["content"] = content
        if embeds is not None:
            changes["embeds"] = normalise_embeds(embeds)
        return self.state.edit_message(msg, changes)

    def delete_message(self, message: Ref) -> None:
        msg = self.state.messages[_id(message)]
        if msg.deleted:
            raise errors.unknown_message()
        self.state.delete_message(msg)

    def bulk_delete(self, channel: Ref, messages: Iterable[Ref]) -> None:
        self.state.bulk_delete(self.state.channel(_id(channel)), [_id(m) for m in messages])

    def add_reaction(self, message: Ref, user: Ref, emoji: str) -> None:
        self.state.add_reaction(self.state.messages[_id(message)], _id(user), emoji)

    def remove_reaction(self, message: Ref, user: Ref, emoji: str) -> None:
        self.state.remove_reaction(self.state.messages[_id(message)], _id(user), emoji)

    def remove_all_reactions(self, message: Ref) -> None:
        self.state.remove_all_reactions(self.state.messages[_id(message)])

    def remove_emoji_reactions(self, message: Ref, emoji: str) -> None:
        self.state.remove_emoji_reactions(self.state.messages[_id(message)], emoji)

    # ------------------------------------------------------------------ acting as humans: threads
    def create_thread(self, channel: Ref, name: str, owner: Ref, *, message: Ref | None = None,
                      private: bool = False) -> Channel:
        state = self.state
        parent = state.channel(_id(channel))
        if message is not None:
            msg = state.message(parent.id, _id(message))
            thread = state.create_thread(parent, name=name, owner_id=_id(owner), thread_id=msg.id)
            msg.thread_id = thread.id
            state.dispatch("MESSAGE_UPDATE", state.message_event_json(msg), Intent.GUILD_MESSAGES, parent.guild_id)
            return thread
        kind = ChannelType.PRIVATE_THREAD if private else None
        return state.create_thread(parent, name=name, owner_id=_id(owner), type=kind)

    def create_forum_post(self, forum: Ref, name: str, author: Ref, content: str, *,
                          tags: Iterable[str] = ()) -> tuple[Channel, Message]:
        state = self.state
        parent = state.channel(_id(forum))
        thread_id = state.new_id()
        thread = state.create_thread(parent, name=name, owner_id=_id(author), thread_id=thread_id,
                                     type=ChannelType.PUBLIC_THREAD,
                                     applied_tags=[self.tag_id(parent, t) for t in tags])
        message = Message(id=thread_id, channel_id=thread.id, guild_id=parent.guild_id, author_id=_id(author),
                          content=content)
        return thread, state.add_message(message)

    def rename_thread(self, thread: Ref, name: str) -> Channel:
        return self.state.update_thread(self.state.channel(_id(thread)), name=name)

    @contextlib.contextmanager
    def backdated(self, *, days: float) -> Iterator[None]:
        """Ids made inside (messages, threads) are made as if ``days`` ago: a world with history."""
        before = self.state.ids.backdate_ms
        self.state.ids.backdate_ms = int(days * 86_400_000)
        try:
            yield
        finally:
            self.state.ids.backdate_ms = before

    def archive_thread(self, thread: Ref, archived: bool = True) -> Channel:
        return self.state.update_thread(self.state.channel(_id(thread)), archived=archived)

    def lock_thread(self, thread: Ref, locked: bool = True) -> Channel:
        return self.state.update_thread(self.state.channel(_id(thread)), locked=locked)

    def delete_channel(self, channel: Ref) -> None:
        self.state.delete_channel(self.state.channel(_id(channel)))

    def join_thread(self, thread: Ref, user: Ref) -> None:
        self.state.add_thread_member(self.state.channel(_id(thread)), _id(user))

    # ------------------------------------------------------------------ acting as humans: interactions
    def invoke(self, command: str, user: Ref, channel: Ref, options: dict[str, Any] | None = None, *,
               permissions: int | None = None) -> InteractionHandle:
        """Run ``/command [group] [sub]`` as ``user`` in ``channel``; options are typed from the registration.

        ``permissions`` overrides the member's permissions in the interaction (a bit field).
        """
        ch = self.state.channel(_id(channel))
        name, *path = command.strip().lstrip("/").split()
        registered = find_command(self, name, 1, ch.guild_id)
        require_command_permission(self, registered, ch, _id(user), permissions)
        opts, resolved = build_options(self, registered, path, options or {}, ch.guild_id)
        data: dict[str, Any] = {"id": str(registered.id), "name": registered.name, "type": 1,
                                "guild_id": str(ch.guild_id)}
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        payload = base_payload(self, APPLICATION_COMMAND, data, ch, _id(user), permissions)
        return deliver(self, payload, ch, _id(user))

    def invoke_message_command(self, name: str, message: Ref, user: Ref, *,
                               permissions: int | None = None) -> InteractionHandle:
        msg = self.state.messages[_id(message)]
        ch = self.state.channel(msg.channel_id)
        registered = find_command(self, name, 3, ch.guild_id)
        require_command_permission(self, registered, ch, _id(user), permissions)
        data = {"id": str(registered.id), "name": registered.name, "type": 3, "target_id": str(msg.id),
                "guild_id": str(ch.guild_id), "resolved": {"messages": {str(msg.id): self.state.message_json(msg)}}}
        return deliver(self, base_payload(self, APPLICATION_COMMAND, data, ch, _id(user), permissions), ch, _id(user))

    def invoke_user_command(self, name: str, target: Ref, user: Ref, channel: Ref) -> InteractionHandle:
        ch = self.state.channel(_id(channel))
        registered = find_command(self, name, 2, ch.guild_id)
        target_id = _id(target)
        resolved: dict[str, Any] = {"users": {str(target_id): self.state.user_json(target_id)}}
        if target_id in self.state.guilds[ch.guild_id].members:
            resolved["members"] = {str(target_id): self.state.member_json(ch.guild_id, target_id, with_user=False)}
        data = {"id": str(registered.id), "name": registered.name, "type": 2, "target_id": str(target_id),
                "guild_id": str(ch.guild_id), "resolved": resolved}
        return deliver(self, base_payload(self, APPLICATION_COMMAND, data, ch, _id(user), None), ch, _id(user))

    def autocomplete(self, command: str, user: Ref, channel: Ref, focused: str, value: str,
                     options: dict[str, Any] | None = None) -> InteractionHandle:
        """Type ``value`` into option ``focused``; ``await handle.wait_choices()`` gives the choices."""
        ch = self.state.channel(_id(channel))
        name, *path = command.strip().lstrip("/").split()
        registered = find_command(self, name, 1, ch.guild_id)
        values = {**(options or {}), focused: value}
        opts, _ = build_options(self, registered, path, values, ch.guild_id, focused=focused)
        data = {"id": str(registered.id), "name": registered.name, "type": 1, "options": opts,
                "guild_id": str(ch.guild_id)}
        return deliver(self, base_payload(self, AUTOCOMPLETE, data, ch, _id(user), None), ch, _id(user))

    def _component(self, message: Message, custom_id: str) -> dict[str, Any]:
        def walk(components: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
            for component in components:
                yield component
                yield from walk(component.get("components") or [])

        for component in walk(message.components):
            if component.get("custom_id") == custom_id:
                if component.get("disabled"):
                    raise ValueError(f"component {custom_id!r} is disabled")
                return component
        raise LookupError(f"message {message.id} has no component {custom_id!r}")

    def click(self, message: Ref, custom_id: str, user: Ref) -> InteractionHandle:
        """Press a button on a bot message."""
        return self._component_interaction(message, custom_id, user, None)

    def select(self, message: Ref, custom_id: str, values: list[str], user: Ref) -> InteractionHandle:
        return self._component_interaction(message, custom_id, user, values)

    def _component_interaction(self, message: Ref, custom_id: str, user: Ref,
                               values: list[str] | None) -> InteractionHandle:
        msg = self.state.messages[_id(message)]
        if msg.deleted:
            raise errors.unknown_message()
        component = self._component(msg, custom_id)
        ch = self.state.channel(msg.channel_id)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component.get("type", 2)}
        if values is not None:
            data["values"] = values
        payload = base_payload(self, MESSAGE_COMPONENT, data, ch, _id(user), None)
        payload["message"] = self.state.message_json(msg)
        return deliver(self, payload, ch, _id(user), message_id=msg.id)

    def submit_modal(self, after: InteractionHandle, user: Ref, values: dict[str, str]) -> InteractionHandle:
        """Submit the modal the bot opened (callback type 9) with text-input values by custom_id."""
        modal = after.response_data or {}
        if after.response_type != 9:
            raise ValueError("the bot did not answer with a modal")
        ch = self.state.channel(after.record.channel_id)
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in values.items()]
        data = {"custom_id": modal.get("custom_id"), "components": rows}
        payload = base_payload(self, 5, data, ch, _id(user), None)
        if after.record.message_id is not None:  # a modal opened from a button: Discord includes the message
            payload["message"] = self.state.message_json(self.state.messages[after.record.message_id])
        return deliver(self, payload, ch, _id(user), message_id=after.record.message_id,
                       trigger_id=after.record.id)

    # ------------------------------------------------------------------ gateway & rate-limit controls
    async def drop_connection(self, code: int = 4000, *, shard_id: int | None = None) -> None:
        """Close the bot's socket abnormally (every shard's, or ``shard_id``'s); discord.py resumes and
        gets what it missed."""
        await self.gateway.drop(code, shard_id=shard_id)

    async def force_reconnect(self, *, shard_id: int | None = None) -> None:
        """Send op 7 RECONNECT (to every shard, or ``shard_id``)."""
        await self.gateway.send_op(RECONNECT, None, shard_id=shard_id)

    async def invalidate_session(self, resumable: bool = False, *, shard_id: int | None = None) -> None:
        """Send op 9 INVALID_SESSION (``resumable`` is its ``d``; to every shard, or ``shard_id``)."""
        if resumable:
            await self.gateway.send_op(INVALID_SESSION, True, shard_id=shard_id)
        else:
            await self.gateway.invalidate(False, shard_id=shard_id)

    async def wait_connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 (the tests' deadline)
        await self.wait_until(lambda: self.gateway.connected, timeout=timeout)

    def hold(self, route: str, match: Callable[[web.Request, Any], bool] = lambda request, body: True, *,
             applied: bool) -> HeldRequest:
        """Keep the next request of ``route`` (``"POST /channels/{id}/messages"``) that ``match(request,
        json_body)`` accepts waiting until ``release()``: with ``applied=False`` it is never carried
        out (dropped at the release, as when the connection died on the way); with ``applied=True``
        it is carried out (state changed, events sent) but its answer waits (the connection died on
        the way back). ``reached`` is set when the request arrives; :meth:`stop` releases every hold."""
        from .ratelimits import normalise_route

        held = HeldRequest(normalise_route(route), match, applied)
        self.holds.append(held)
        return held
    async def start_outage(self, status: int = 503, *, drop_gateway: bool = True) -> None:
        """Discord is down: every REST request is answered with ``status`` (the gateway socket is
        dropped too, and resumes, as it does when Discord's edge restarts) until :meth:`end_outage`."""
        self.outage_status = status
        if drop_gateway and self.gateway.connected:
            await self.drop_connection()

    def end_outage(self) -> None:
        self.outage_status = None
        self.state.changed()

    def rate_limit_next(self, n: int = 1, route: str | None = None, *, retry_after: float = 0.05,
                        global_: bool = False, scope: str = "user") -> None:
        """Answer the next ``n`` requests (of ``route``, e.g. ``"POST /channels/{id}/messages"``) with 429."""
        self.ratelimits.force(n, route, retry_after, global_, "global" if global_ else scope)

    def set_rate_limit(self, route: str, limit: int, window: float) -> None:
        """Give a route's bucket a real limit (requests per ``window`` seconds)."""
        self.ratelimits.configure(route, limit, window)
