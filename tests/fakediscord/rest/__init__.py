"""REST routes, one module per resource; :func:`register_all` mounts them under ``/api/v10``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from . import commands, guilds, interactions, messages, oauth2, reactions, threads, users, webhooks

if TYPE_CHECKING:
    from ..emulator import FakeDiscord


def register_all(app: web.Application, emu: FakeDiscord, prefix: str) -> None:
    for module in (users, guilds, reactions, threads, messages, commands, interactions, oauth2, webhooks):
        module.register(app.router, emu, prefix)
