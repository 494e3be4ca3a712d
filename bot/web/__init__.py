"""The blog side over HTTP: comments API, embeddable widget, discussion page and health check."""

from bot.web.app import DiscordStatus, DiscordStatusRelay, WebServer, create_app

__all__ = ["DiscordStatus", "DiscordStatusRelay", "WebServer", "create_app"]
