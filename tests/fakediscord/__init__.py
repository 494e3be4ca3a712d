"""A Discord emulator (REST API v10 + gateway) for testing discord.py bots on 127.0.0.1."""

from .emulator import FakeDiscord, LoggedRequest
from .errors import APIError
from .interactions import InteractionHandle
from .models import Channel, ChannelType, Guild, Intent, Member, Message, Perm, Role, User

__all__ = ["APIError", "Channel", "ChannelType", "FakeDiscord", "Guild", "Intent", "InteractionHandle", "LoggedRequest",
           "Member", "Message", "Perm", "Role", "User"]
