"""The gateway: HELLO, IDENTIFY, READY + GUILD_CREATE, heartbeats, RESUME with replay, intents, shards.

A session identified with ``shard: [id, count]`` gets the events of the guilds whose shard is ``id``
(``(guild_id >> 22) % count``, Discord's formula) and, on shard 0 only, the events of no guild.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import PRIVILEGED_INTENTS, Intent, Perm

if TYPE_CHECKING:
    from .emulator import FakeDiscord

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, RESUME, RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, ACK = (
    0, 1, 2, 3, 6, 7, 8, 9, 10, 11)
ALWAYS = {"READY", "RESUMED", "INTERACTION_CREATE", "APPLICATION_COMMAND_PERMISSIONS_UPDATE", "USER_UPDATE",
          "GUILD_MEMBERS_CHUNK"}
CONTENT_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE"}
VALID_INTENTS = (1 << 26) - 1
MAX_SHARD_COUNT = 4096


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard that carries ``guild_id``'s events when a bot runs ``shard_count`` shards."""
    return (guild_id >> 22) % shard_count


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    compress: bool
    compressor: Any = None
    server_closed: bool = False  # closed by the emulator (a drop), not by the client
    outbox: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload)
        if self.compress:
            if self.compressor is None:
                self.compressor = zlib.compressobj()
            data = self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(text)


@dataclass
class Session:
    id: str
    intents: int
    shard: tuple[int, int] = (0, 1)  # (id, count), from IDENTIFY
    seq: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    connection: Connection | None = None
    alive: bool = True

    def push(self, payload: dict[str, Any]) -> None:
        self.seq += 1
        payload["s"] = self.seq
        self.history.append(payload)
        if self.connection is not None:
            self.connection.outbox.put_nowait(payload)

    def carries(self, guild_id: int | None) -> bool:
        """Whether this session receives the events of ``guild_id`` (None: events of no guild)."""
        shard_id, shard_count = self.shard
        return shard_id == (0 if guild_id is None else shard_of(guild_id, shard_count))


class Gateway:
    def __init__(self, emulator: FakeDiscord) -> None:
        self.emu = emulator
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.heartbeat_interval_ms = 41250
        self.identify_count = 0
        self.identified_shards: list[tuple[int, int]] = []  # (id, count) of every accepted IDENTIFY
        self.resume_count = 0
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ dispatching
    def live_sessions(self, shard_id: int | None = None) -> list[Session]:
        """The live sessions (of shard ``shard_id`` only, when given)."""
        return [s for s in self.sessions.values() if s.alive and (shard_id is None or s.shard[0] == shard_id)]

    def dispatch(self, event: str, data: dict[str, Any], intent: int, guild_id: int | None) -> None:
        if not self._bot_can_see(event, data):
            return
        for session in self.live_sessions():
            if not session.carries(guild_id):
                continue
            if event not in ALWAYS and not session.intents & intent:
                continue
            payload = {"op": DISPATCH, "t": event, "d": self._shape_for(session, event, data)}
            session.push(payload)

    def _bot_can_see(self, event: str, data: dict[str, Any]) -> bool:
        """Discord sends message and reaction events only for channels the bot can view."""
        if not event.startswith("MESSAGE_") or "channel_id" not in data:
            return True
        state = self.emu.state
        channel = state.channels.get(int(data["channel_id"]))
        if channel is None or channel.guild_id not in state.guilds:
            return True
        return bool(state.permissions(channel, state.bot_user_id) & Perm.VIEW_CHANNEL)

    def _shape_for(self, session: Session, event: str, data: dict[str, Any]) -> dict[str, Any]:
        if event not in CONTENT_EVENTS or session.intents & Intent.MESSAGE_CONTENT:
            return data
        return self.emu.blank_content(data)

    @property
    def connected(self) -> bool:
        return any(s.connection is not None for s in self.live_sessions())

    # ------------------------------------------------------------------ test controls
    async def drop(self, code: int = 4000, *, shard_id: int | None = None) -> None:
        for session in self.live_sessions(shard_id):
            if session.connection is not None:
                session.connection.server_closed = True
                await session.connection.ws.close(code=code, message=b"dropped by the emulator")

    async def send_op(self, op: int, data: Any, *, shard_id: int | None = None) -> None:
        for session in self.live_sessions(shard_id):
            if session.connection is not None:
                session.connection.outbox.put_nowait({"op": op, "d": data, "s": None, "t": None})

    async def invalidate(self, resumable: bool, *, shard_id: int | None = None) -> None:
        for session in self.live_sessions(shard_id):
            if not resumable:
                session.alive = False
            if session.connection is not None:
                session.connection.outbox.put_nowait({"op": INVALID_SESSION, "d": resumable, "s": None, "t": None})

    async def close_all(self) -> None:
        for connection in list(self.connections):
            connection.server_closed = True
            await connection.ws.close(code=1001)

    # ------------------------------------------------------------------ the websocket
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        compress = request.query.get("compress") == "zlib-stream"
        connection = Connection(ws, compress)
        self.connections.add(connection)
        writer = asyncio.create_task(self._writer(connection))
        session: Session | None = None
        try:
            await connection.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms},
                                   "s": None, "t": None})
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        await ws.close(code=4002, message=b"Error while decoding payload")
                    continue
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload")
                    break
                self.received.append(payload)
                op = payload.get("op")
                if op == HEARTBEAT:
                    connection.outbox.put_nowait({"op": ACK, "d": None, "s": None, "t": None})
                elif op == IDENTIFY:
                    if session is not None:
                        await ws.close(code=4005, message=b"Already authenticated")
                        break
                    session = await self._identify(connection, payload.get("d") or {})
                    if session is None:
                        break
                elif op == RESUME:
                    session = await self._resume(connection, payload.get("d") or {})
                elif op == REQUEST_MEMBERS:
                    self._members_chunk(connection, payload.get("d") or {})
                elif op == PRESENCE:
                    continue
                elif session is None:
                    await ws.close(code=4003, message=b"Not authenticated")
                    break
                else:
                    await ws.close(code=4001, message=b"Unknown opcode")
                    break
        finally:
            close_code = ws.close_code
            if session is not None and session.connection is connection:
                session.connection = None
                if close_code in (1000, 1001) and not connection.server_closed:  # a clean close by the client ends the session, as on Discord
                    session.alive = False
            connection.outbox.put_nowait(None)
            await writer
            self.connections.discard(connection)
            self.emu.state.changed()
        return ws

    async def _writer(self, connection: Connection) -> None:
        while True:
            payload = await connection.outbox.get()
            if payload is None or connection.ws.closed:
                return
            try:
                await connection.send(payload)
                self.sent.append(payload)
                self.emu.state.changed()
            except (ConnectionError, RuntimeError):
                return

    async def _identify(self, connection: Connection, data: dict[str, Any]) -> Session | None:
        ws = connection.ws
        self.identify_count += 1
        if data.get("token", "").removeprefix("Bot ") != self.emu.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        intents = data.get("intents")
        if not isinstance(intents, int) or intents & ~VALID_INTENTS:
            await ws.close(code=4013, message=b"Invalid intent(s).")
            return None
        if intents & PRIVILEGED_INTENTS & ~self.emu.privileged_intents_enabled:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        shard = data.get("shard", [0, 1])
        if not (isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard)
                and 0 < shard[1] <= MAX_SHARD_COUNT and 0 <= shard[0] < shard[1]):
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        session = Session(id=secrets.token_hex(16), intents=intents, shard=(shard[0], shard[1]),
                          connection=connection)
        self.sessions[session.id] = session
        self.identified_shards.append(session.shard)
        state = self.emu.state
        guilds = [g for g in state.guilds.values() if state.bot_user_id in g.members and session.carries(g.id)]
        ready = {
            "v": 10, "user": {**state.user_json(state.bot_user_id), "verified": True, "mfa_enabled": False,
                              "email": None},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id, "session_type": "normal",
            "resume_gateway_url": f"{self.emu.gateway_url}",
            "application": {"id": str(state.application_id), "flags": self.emu.application_flags},
            "private_channels": [], "relationships": [], "user_settings": {}, "presences": [],
            "guild_join_requests": [], "geo_ordered_rtc_regions": [], "auth_session_id_hash": "",
            "_trace": ["fakediscord"], "shard": list(session.shard),
        }
        session.push({"op": DISPATCH, "t": "READY", "d": ready})
        all_members = bool(intents & Intent.GUILD_MEMBERS)
        for guild in guilds:
            if intents & Intent.GUILDS:
                session.push({"op": DISPATCH, "t": "GUILD_CREATE",
                              "d": state.guild_create_json(guild, all_members=all_members)})
        state.changed()
        return session

    async def _resume(self, connection: Connection, data: dict[str, Any]) -> Session | None:
        self.resume_count += 1
        session = self.sessions.get(data.get("session_id", ""))
        token_ok = str(data.get("token", "")).removeprefix("Bot ") == self.emu.token
        if not token_ok:
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return None
        if session is None or not session.alive:
            connection.outbox.put_nowait({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return None
        old = session.connection
        if old is not None and old is not connection:
            old.server_closed = True
            await old.ws.close(code=4000)
        since = int(data.get("seq") or 0)
        if since > session.seq:
            await connection.ws.close(code=4007, message=b"Invalid seq.")
            return None
        session.connection = connection
        for payload in session.history:
            if payload["s"] > since:
                connection.outbox.put_nowait(payload)
        session.push({"op": DISPATCH, "t": "RESUMED", "d": {"_trace": ["fakediscord"]}})
        self.emu.state.changed()
        return session

    def _members_chunk(self, connection: Connection, data: dict[str, Any]) -> None:
        state = self.emu.state
        guild = state.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        session = next((s for s in self.live_sessions() if s.connection is connection), None)
        if session is None:
            return
        query = (data.get("query") or "").lower()
        members = [state.member_json(guild.id, uid) for uid in guild.members
                   if state.users[uid].username.lower().startswith(query)]
        chunk: dict[str, Any] = {"guild_id": str(guild.id), "members": members, "chunk_index": 0,
                                 "chunk_count": 1, "not_found": []}
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        session.push({"op": DISPATCH, "t": "GUILD_MEMBERS_CHUNK", "d": chunk})
