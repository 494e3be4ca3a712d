"""OAuth2 for "sign in with Discord": the authorize page (a test approves in advance, as a user
clicking Authorize would), the code exchange at ``/oauth2/token`` and ``/users/@me`` with the user's
bearer token (answered in :mod:`.users`)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from ..errors import APIError
from .common import json_response

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    async def authorize(request: web.Request) -> web.StreamResponse:
        query = request.query
        redirect_uri = query.get("redirect_uri", "")
        if (query.get("client_id") != str(emu.application_id) or redirect_uri not in emu.redirect_uris
                or query.get("response_type") != "code" or "identify" not in query.get("scope", "").split()):
            return web.Response(status=400, text="Invalid OAuth2 request (client_id, redirect_uri, response_type "
                                                 "or scope)")
        emu.authorize_requests.append(dict(query))
        approver = emu.oauth_approver
        if approver is None:
            result = {"error": "access_denied", "error_description": "The resource owner denied the request"}
        else:
            code = secrets.token_urlsafe(24)
            emu.oauth_codes[code] = (approver, redirect_uri)
            result = {"code": code}
        if "state" in query:
            result["state"] = query["state"]
        raise web.HTTPFound(f"{redirect_uri}?{urlencode(result)}")

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != str(emu.application_id) or form.get("client_secret") != emu.client_secret:
            raise APIError(401, 0, "invalid_client")
        grant = emu.oauth_codes.pop(str(form.get("code", "")), None)
        if form.get("grant_type") != "authorization_code" or grant is None or grant[1] != form.get("redirect_uri"):
            return json_response({"error": "invalid_grant"}, status=400)
        access = secrets.token_urlsafe(30)
        emu.oauth_tokens[access] = grant[0]
        return json_response({"access_token": access, "token_type": "Bearer", "expires_in": 604800,
                              "refresh_token": secrets.token_urlsafe(30), "scope": "identify"})

    router.add_get("/oauth2/authorize", authorize)
    router.add_post(prefix + "/oauth2/token", token)
