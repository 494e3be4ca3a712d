"""The listening socket of the web server, hardened for the open internet.

aiohttp's defaults suit a server behind a careful proxy: an idle keep-alive connection lives for
3,630 s, nothing limits how long a client may take to send its headers, and nothing limits how many
connections are open. A few hundred idle connections then hold as many file descriptors, which the
bot shares with its feed fetches and its Discord gateway. Here:

* a client has ``HEADER_TIMEOUT`` seconds to send a request's headers, counted from the connection
  (or, on a kept-alive connection, from the first byte of the next request), else the connection closes;
* an idle kept-alive connection closes after ``KEEPALIVE_TIMEOUT`` seconds;
* at most ``MAX_CONNECTIONS`` connections are open. When a new one arrives at the cap, the connection
  idle the longest (waiting for a request, not serving one) is closed to make room, so a pile of idle
  connections from one client cannot lock out ``/healthz`` or anyone else; when every connection is
  busy serving, the new one is closed at once.

aiohttp has no setting for the last two, so :class:`GuardedRequestHandler` adds them to its request
handler (the protocol object of each connection) and :class:`GuardedSite` listens with it.

Requests are also admitted to their handlers ``max_in_service`` at a time (:func:`admission_middleware`),
``/healthz`` excepted. The event loop runs every callback that is ready before it looks at its sockets
again, so 200 requests arriving together made loop turns of 60-230 ms (each request's handler and its
write of the body in the same turn), and a /healthz probe arriving meanwhile waited for them all. With
at most ``max_in_service`` handlers running, a turn holds at most that many requests' work and the
probe, which skips the line, is answered within a few turns. Needed for the /healthz target of
bench/web.py (``--without admission`` and ``--max-in-service`` there; bench/README.md, session 8):
with 32 the probe took 50-54 ms in bursts of 200 full pages, with 8 it takes 10-17 ms. A handler
waiting for something slow (a cold build of a discussion) holds its place meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

HEADER_TIMEOUT = 10.0
KEEPALIVE_TIMEOUT = 75.0
MAX_CONNECTIONS = 256
MAX_LINE_SIZE = 8190  # request line and each header line (aiohttp's default, stated here on purpose)
MAX_HEADERS = 64
MAX_IN_SERVICE = 8  # requests inside their handlers at once; the rest wait their turn (FIFO)
UNGATED_PATHS = frozenset({"/healthz"})
SERVER_NAME = "conversation-engine"  # the Server header: no version numbers


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float = HEADER_TIMEOUT
    keepalive_timeout: float = KEEPALIVE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_in_service: int = MAX_IN_SERVICE


DEFAULT_LIMITS = ServerLimits()


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's per-connection protocol plus a header deadline and the connection cap."""

    def __init__(self, manager: web.Server, *, max_connections: int, header_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._max_connections = max_connections
        self._header_timeout = header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None
        self._requests_seen = 0
        self.idle_since = 0.0  # when the client last sent anything

    @property
    def idle(self) -> bool:
        """Waiting for the next request (not reading a body, not serving a response)."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        manager = self._manager
        assert manager is not None
        if len(manager.connections) >= self._max_connections and not _evict_longest_idle(manager, self):
            log.warning("web server: %d connections open, all busy; refusing a new one", self._max_connections)
            transport.close()
            return
        super().connection_made(transport)
        self.idle_since = self._loop.time()
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        self.idle_since = self._loop.time()
        super().data_received(data)
        if self._request_count != self._requests_seen:  # a complete request head arrived
            self._requests_seen = self._request_count
            self._disarm_header_deadline()
        elif self._header_deadline is None and not self._force_close:
            self._arm_header_deadline()  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._header_deadline = self._loop.call_later(self._header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._request_count == self._requests_seen:
            self.force_close()
            if self.transport is not None:
                self.transport.close()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A malformed request gets a bare status line's worth of text: no traceback, nothing echoed."""
        if status >= 500:
            log.error("web request failed before reaching a handler", exc_info=exc)
        else:
            log.debug("malformed web request from %s: %s", request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response is partly sent; cannot send an error instead")
        reason = "bad request" if status < 500 else "internal error"
        response = web.Response(status=status, text=f"{status} {reason}\n", headers={"Server": SERVER_NAME})
        response.force_close()
        return response


def admission_middleware(max_in_service: int) -> Middleware:
    """At most ``max_in_service`` requests past this point at once (the response's write included: it
    happens in the same loop turn as the handler's return); ``UNGATED_PATHS`` go straight through."""
    gate = asyncio.Semaphore(max_in_service)

    @web.middleware
    async def admission(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNGATED_PATHS:
            return await handler(request)
        async with gate:
            return await handler(request)

    return admission


def _evict_longest_idle(manager: web.Server, newcomer: GuardedRequestHandler) -> bool:
    idle = [handler for handler in manager.connections
            if isinstance(handler, GuardedRequestHandler) and handler is not newcomer and handler.idle]
    if not idle:
        return False
    oldest = min(idle, key=lambda handler: handler.idle_since)
    oldest.force_close()
    if oldest.transport is not None:
        oldest.transport.close()
    return True


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are :class:`GuardedRequestHandler`s."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, limits: ServerLimits = DEFAULT_LIMITS) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._handler_args: dict[str, Any] = {
            "max_connections": limits.max_connections, "header_timeout": limits.header_timeout,
            "keepalive_timeout": limits.keepalive_timeout, "max_line_size": MAX_LINE_SIZE,
            "max_field_size": MAX_LINE_SIZE, "max_headers": MAX_HEADERS, "access_log": None,
        }

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(manager, loop=loop, **self._handler_args)

        self._server = await loop.create_server(protocol, self._host, self._port, backlog=128)
