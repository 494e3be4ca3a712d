"""Users, the application and the gateway URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import APIError
from .common import OAUTH_USER_KEY, json_response, snowflake_arg

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    async def me(request: web.Request) -> web.Response:
        signed_in = request.get(OAUTH_USER_KEY)  # a user's bearer token (OAuth2, scope identify)
        if signed_in is not None:
            return json_response({**emu.state.user_json(signed_in), "mfa_enabled": False, "locale": "en-US"})
        return json_response({**emu.state.user_json(emu.state.bot_user_id), "verified": True,
                              "mfa_enabled": False, "locale": "en-US", "email": None})

    async def user(request: web.Request) -> web.Response:
        uid = snowflake_arg(request, "user_id")
        if uid not in emu.state.users:
            raise APIError(404, 10013, "Unknown User")
        return json_response(emu.state.user_json(uid))

    async def application(request: web.Request) -> web.Response:
        return json_response(emu.application_json())

    async def gateway(request: web.Request) -> web.Response:
        return json_response({"url": emu.gateway_url})

    async def gateway_bot(request: web.Request) -> web.Response:
        total = emu.session_start_total
        return json_response({"url": emu.gateway_url, "shards": emu.recommended_shards, "session_start_limit": {
            "total": total, "remaining": max(0, total - emu.gateway.identify_count),
            "reset_after": 14400000, "max_concurrency": emu.max_concurrency}})

    router.add_get(prefix + "/users/@me", me)
    router.add_get(prefix + "/users/{user_id}", user)
    router.add_get(prefix + "/applications/@me", application)
    router.add_get(prefix + "/oauth2/applications/@me", application)
    router.add_get(prefix + "/gateway", gateway)
    router.add_get(prefix + "/gateway/bot", gateway_bot)
