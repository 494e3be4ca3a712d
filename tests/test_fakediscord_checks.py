"""The suite's own guards: loopback-only sockets and the OpenAPI conformance checker."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.fakediscord import FakeDiscord
from tests.fakediscord.checks import NonLoopbackConnection
from tests.fakediscord.emulator import LoggedRequest
from tests.fakediscord.harness import World
from tests.fakediscord.openapi import checker_or_fail, require_checker


def test_non_loopback_socket_is_refused(loopback_only: list[str]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(NonLoopbackConnection, match="only 127.0.0.1"):
            sock.connect(("192.0.2.1", 443))
    finally:
        sock.close()
    with pytest.raises(NonLoopbackConnection):
        socket.getaddrinfo("example.com", 443)
    assert len(loopback_only) == 2
    loopback_only.clear()  # expected here: do not fail this test at teardown


async def test_loopback_traffic_is_allowed(emulator: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{emulator.api_base}/gateway") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"


def test_openapi_checker_flags_a_wrong_shape() -> None:
    checker = require_checker()
    assert checker.match("/channels/123/messages/456/reactions/%F0%9F%91%8D/@me") == \
        "/channels/{channel_id}/messages/{message_id}/reactions/{emoji_name}/@me"
    assert checker.match("/webhooks/1/tok/messages/@original") == \
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
    good = LoggedRequest("GET", "/api/v10/gateway", "GET /gateway", 200, None, {"url": "ws://127.0.0.1:1/gateway"})
    assert checker.check(good) == []
    bad = LoggedRequest("GET", "/api/v10/gateway", "GET /gateway", 200, None, {"url": 5})
    assert any("url" in problem for problem in checker.check(bad))
    nowhere = LoggedRequest("GET", "/api/v10/no/such/route", "GET /no/such/route", 200, None, {})
    assert checker.check(nowhere)


async def test_unauthenticated_requests_get_401(emulator: FakeDiscord, world: World) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{emulator.api_base}/channels/{world.announcements.id}") as response:
            assert response.status == 401
        headers = {"Authorization": f"Bot {emulator.token}"}
        async with session.get(f"{emulator.api_base}/channels/{world.announcements.id}",
                               headers=headers) as response:
            assert response.status == 200
            for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                           "X-RateLimit-Reset-After", "X-RateLimit-Bucket"):
                assert header in response.headers


def test_a_missing_openapi_spec_fails_in_ci_and_warns_elsewhere(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "discord-api-spec" / "openapi.json"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(missing))):
        checker_or_fail(missing)
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(missing))):
        require_checker(missing)
    monkeypatch.delenv("CI")
    with pytest.warns(UserWarning, match="validation is skipped outside CI"):
        assert checker_or_fail(missing) is None
    with pytest.raises(pytest.skip.Exception, match=re.escape(str(missing))):
        require_checker(missing)
