"""Application commands: bulk overwrite (global and guild), list, create, get, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import APIError
from ..models import Command
from ..validation import validate_commands
from .common import json_response, no_content, read_payload, snowflake_arg

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def command_json(command: Command) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(command.id), "application_id": str(command.application_id), "version": str(command.version),
        "type": command.type, "name": command.name, "description": command.description,
        "default_member_permissions": (None if command.default_member_permissions is None
                                       else str(command.default_member_permissions)), "nsfw": command.nsfw,
        "name_localizations": command.raw.get("name_localizations"),
        "description_localizations": command.raw.get("description_localizations"),
        "contexts": command.raw.get("contexts"), "integration_types": command.raw.get("integration_types") or [0],
    }
    if command.options:
        data["options"] = command.options
    if command.guild_id is not None:
        data["guild_id"] = str(command.guild_id)
    else:
        data["dm_permission"] = command.raw.get("dm_permission", True)
    return data


def register(router: web.UrlDispatcher, emu: FakeDiscord, prefix: str) -> None:
    state = emu.state

    def scope(request: web.Request) -> int | None:
        if snowflake_arg(request, "application_id") != state.application_id:
            raise APIError(403, 20012, "You are not authorized to perform this action on this application")
        if "guild_id" in request.match_info:
            guild = state.guild(snowflake_arg(request, "guild_id"))
            if state.bot_user_id not in guild.members:
                raise APIError(403, 50001, "Missing Access")
            return guild.id
        return None

    def listed(guild_id: int | None) -> list[Command]:
        return [c for c in state.commands.values() if c.guild_id == guild_id]

    def make(data: dict[str, Any], guild_id: int | None, existing: Command | None) -> Command:
        version = state.new_id()
        return Command(
            id=existing.id if existing else state.new_id(), application_id=state.application_id,
            name=data["name"], type=data.get("type", 1), description=data.get("description") or "",
            options=data.get("options") or [], guild_id=guild_id,
            default_member_permissions=data.get("default_member_permissions"), nsfw=bool(data.get("nsfw")),
            version=version, raw=data,
        )

    async def get_all(request: web.Request) -> web.Response:
        return json_response([command_json(c) for c in listed(scope(request))])

    async def overwrite(request: web.Request) -> web.Response:
        guild_id = scope(request)
        payload, _ = await read_payload(request, emu)
        validate_commands(payload)
        old = {(c.type, c.name): c for c in listed(guild_id)}
        for command in old.values():
            del state.commands[command.id]
        created = []
        commands: list[dict[str, Any]] = payload if isinstance(payload, list) else []
        for data in commands:
            command = make(data, guild_id, old.get((data.get("type", 1), data["name"])))
            state.commands[command.id] = command
            created.append(command)
        emu.command_syncs += 1
        state.changed()
        return json_response([command_json(c) for c in created])

    async def create_one(request: web.Request) -> web.Response:
        guild_id = scope(request)
        payload, _ = await read_payload(request, emu)
        validate_commands([payload])
        existing = next((c for c in listed(guild_id)
                         if (c.type, c.name) == (payload.get("type", 1), payload["name"])), None)
        command = make(payload, guild_id, existing)
        state.commands[command.id] = command
        state.changed()
        return json_response(command_json(command), status=200 if existing else 201)

    def one(request: web.Request) -> Command:
        guild_id = scope(request)
        command = state.commands.get(snowflake_arg(request, "command_id"))
        if command is None or command.guild_id != guild_id:
            raise APIError(404, 10063, "Unknown application command")
        return command

    async def get_one(request: web.Request) -> web.Response:
        return json_response(command_json(one(request)))

    async def delete_one(request: web.Request) -> web.Response:
        del state.commands[one(request).id]
        state.changed()
        return no_content()

    for base in (prefix + "/applications/{application_id}/commands",
                 prefix + "/applications/{application_id}/guilds/{guild_id}/commands"):
        router.add_get(base, get_all)
        router.add_put(base, overwrite)
        router.add_post(base, create_one)
        router.add_get(base + "/{command_id}", get_one)
        router.add_delete(base + "/{command_id}", delete_one)
