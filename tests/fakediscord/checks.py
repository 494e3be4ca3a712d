"""Autouse checks for the whole suite: loopback-only networking and OpenAPI conformance."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from .emulator import FakeDiscord
from .openapi import checker_or_fail

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%")[0]
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NonLoopbackConnection(ConnectionRefusedError):
    """Raised for a socket aimed outside 127.0.0.0/8 and ::1 during a test."""


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Any socket to an address other than 127.0.0.0/8 or ::1 fails the test with a clear message."""
    violations: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    real_create_connection = socket.create_connection

    def refuse(what: str) -> NonLoopbackConnection:
        message = f"test tried to reach {what}: only 127.0.0.1/::1 are allowed in tests"
        violations.append(message)
        return NonLoopbackConnection(message)

    def check_address(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise refuse(f"{address[0]}:{address[1]}")

    def connect(self: socket.socket, address: Any) -> None:
        check_address(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check_address(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback(host):
            raise refuse(f"{host!r} (name lookup)")
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not _is_loopback(address[0]):
            raise refuse(f"{address[0]}:{address[1]}")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    yield violations
    if violations:
        pytest.fail("non-loopback network access: " + "; ".join(violations), pytrace=False)


@pytest.fixture(autouse=True)
def discord_openapi_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every REST exchange an emulator handled in the test must match Discord's OpenAPI spec (a missing
    spec fails such a test in CI; elsewhere it is skipped with a warning)."""
    FakeDiscord.instances.clear()
    yield
    exchanged = any(emu.requests_log for emu in FakeDiscord.instances)
    if not exchanged or request.node.get_closest_marker("no_openapi_check"):
        FakeDiscord.instances.clear()
        return
    checker = checker_or_fail()
    if checker is None:
        FakeDiscord.instances.clear()
        return
    problems: list[str] = []
    for emu in FakeDiscord.instances:
        for entry in emu.requests_log:
            if not emu.openapi_exempt(entry):
                problems.extend(checker.check(entry))
    FakeDiscord.instances.clear()
    if problems:
        unique = list(dict.fromkeys(problems))
        pytest.fail("emulator traffic does not match Discord's OpenAPI spec:\n  " + "\n  ".join(unique[:30]),
                    pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_openapi_check: skip the OpenAPI conformance check for this test")
