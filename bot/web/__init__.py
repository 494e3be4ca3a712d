"""The blog side over HTTP: comments API, embeddable widget, discussion page and health check."""

from bot.web.app import DiscordStatus, WebServer, create_app

__all__ = ["DiscordStatus", "WebServer", "create_app"]
