"""Helpers shared by the REST route modules."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import APIError
from ..models import Message

BODY_KEY: web.RequestKey[Any] = web.RequestKey("fakediscord_body", object)
OAUTH_USER_KEY: web.RequestKey[int] = web.RequestKey("fakediscord_oauth_user", int)

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json": discord.py compares the header verbatim.
    return web.Response(status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"})


def no_content() -> web.Response:
    return web.Response(status=204)


def snowflake_arg(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    if not value.isdigit():
        raise APIError(400, 50035, "Invalid Form Body",
                       {name: {"_errors": [{"code": "NUMBER_TYPE_COERCE",
                                            "message": f"Value \"{value}\" is not snowflake."}]}})
    return int(value)


async def read_payload(request: web.Request, emu: FakeDiscord) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The JSON body, or ``payload_json`` plus uploaded ``files[n]`` of a multipart body."""
    files: list[dict[str, Any]] = []
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        payload: dict[str, Any] = {}
        for key, value in form.items():
            if key == "payload_json":
                if isinstance(value, web.FileField):
                    payload = json.loads(value.file.read().decode())
                else:
                    payload = json.loads(value if isinstance(value, str) else bytes(value).decode())
            elif isinstance(value, web.FileField):
                data = value.file.read()
                files.append({"field": key, "filename": value.filename, "content_type": value.content_type,
                              "data": data})
        request[BODY_KEY] = payload
        return payload, files
    if not request.body_exists:  # (not can_read_body: a held request's body was read already)
        request[BODY_KEY] = {}
        return {}, files
    try:
        payload = await request.json()
    except ValueError as exc:
        raise APIError(400, 50109, "The request body contains invalid JSON.") from exc
    request[BODY_KEY] = payload
    return payload, files


def attachments_from(emu: FakeDiscord, channel_id: int, payload: dict[str, Any],
                     files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    described = {str(a.get("id")): a for a in payload.get("attachments") or []}
    result: list[dict[str, Any]] = []
    for index, upload in enumerate(files):
        aid = emu.state.new_id()
        meta = described.get(str(index), {})
        filename = meta.get("filename") or upload["filename"] or f"file{index}"
        url = f"{emu.http_base}/attachments/{channel_id}/{aid}/{filename}"
        emu.files[aid] = upload["data"]
        attachment = {"id": str(aid), "filename": filename, "size": len(upload["data"]), "url": url,
                      "proxy_url": url, "content_type": upload.get("content_type") or "application/octet-stream"}
        if meta.get("description"):
            attachment["description"] = meta["description"]
        result.append(attachment)
    return result


def normalise_embeds(embeds: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [{"type": "rich", **embed} for embed in embeds or []]


def message_response(emu: FakeDiscord, message: Message) -> dict[str, Any]:
    return emu.rest_message_json(message)


def number_components(components: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Components as Discord echoes them: a numeric ``id`` on each (1, 2, ... in tree order), defaults filled."""
    counter = 0

    def walk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal counter
        result = []
        for item in items:
            counter += 1
            copy = {**item, "id": item.get("id") or counter}
            emoji = copy.get("emoji")
            if isinstance(emoji, dict) and emoji.get("id") is None:  # a unicode emoji: Discord omits the id
                copy["emoji"] = {k: v for k, v in emoji.items() if k != "id"}
            if copy.get("type") in (3, 5, 6, 7, 8):  # select menus: Discord fills in the defaults
                copy.setdefault("min_values", 1)
                copy.setdefault("max_values", 1)
            if "components" in item:
                copy["components"] = walk(item["components"])
            result.append(copy)
        return result

    return walk(components or [])
