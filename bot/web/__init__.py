"""The blog side over HTTP: comments API, embeddable widget, discussion page and health check."""

from bot.web.app import DiscordStatus, DiscordStatusRelay, WebServer, create_app
from bot.web.server import ServerLimits

__all__ = ["DiscordStatus", "DiscordStatusRelay", "ServerLimits", "WebServer", "create_app"]
