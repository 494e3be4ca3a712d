"""The emulated Discord world: records, permission maths, JSON shapes and every state change.

Both the REST routes (acting as the bot) and the test API (acting as humans) change the world through
the operations here, so each change dispatches the same gateway event and wakes ``wait_until``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from . import errors
from .models import (
    ALL_PERMISSIONS,
    Channel,
    ChannelType,
    Command,
    Guild,
    Intent,
    InteractionRecord,
    Member,
    Message,
    Overwrite,
    Perm,
    Role,
    ThreadMetadata,
    User,
)
from .snowflake import SnowflakeFactory, iso

Dispatcher = Callable[[str, dict[str, Any], int, "int | None"], None]

USER_MENTION = re.compile(r"<@!?(\d{15,21})>")
ROLE_MENTION = re.compile(r"<@&(\d{15,21})>")
EVERYONE = re.compile(r"@(everyone|here)")
CUSTOM_EMOJI = re.compile(r"^(?:<(?P<animated>a)?:)?(?P<name>[\w-]{2,32}):(?P<id>\d{15,21})>?$")


class State:
    def __init__(self) -> None:
        self.ids = SnowflakeFactory()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.channel_messages: dict[int, list[int]] = {}
        self.commands: dict[int, Command] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.interactions_by_token: dict[str, InteractionRecord] = {}
        self.bot_user_id = 0
        self.application_id = 0
        self.version = 0
        self.condition = asyncio.Condition()
        self._dispatch: Dispatcher | None = None
        self._notify_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ change notification
    def set_dispatcher(self, dispatch: Dispatcher) -> None:
        self._dispatch = dispatch

    def dispatch(self, event: str, data: dict[str, Any], intent: int, guild_id: int | None = None) -> None:
        if self._dispatch is not None:
            self._dispatch(event, data, intent, guild_id)
        self.changed()

    def changed(self) -> None:
        self.version += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._notify())
        self._notify_tasks.add(task)
        task.add_done_callback(self._notify_tasks.discard)

    async def _notify(self) -> None:
        async with self.condition:
            self.condition.notify_all()

    # ------------------------------------------------------------------ lookups
    def new_id(self) -> int:
        return self.ids.next()

    def channel(self, channel_id: int) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise errors.unknown_channel()
        return channel

    def message(self, channel_id: int, message_id: int) -> Message:
        message = self.messages.get(message_id)
        if message is None or message.deleted or message.channel_id != channel_id:
            raise errors.unknown_message()
        return message

    def guild(self, guild_id: int) -> Guild:
        guild = self.guilds.get(guild_id)
        if guild is None:
            raise errors.unknown_guild()
        return guild

    def parent_of(self, channel: Channel) -> Channel:
        return self.channels[channel.parent_id] if channel.is_thread and channel.parent_id else channel

    # ------------------------------------------------------------------ permissions
    def base_permissions(self, guild: Guild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members.get(user_id)
        perms = guild.roles[guild.id].permissions
        for role_id in member.roles if member else []:
            role = guild.roles.get(role_id)
            if role:
                perms |= role.permissions
        if perms & Perm.ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def permissions(self, channel: Channel, user_id: int) -> int:
        guild = self.guilds[channel.guild_id]
        perms = self.base_permissions(guild, user_id)
        if perms == ALL_PERMISSIONS:
            return perms
        target = self.parent_of(channel)
        member = guild.members.get(user_id)
        role_ids = set(member.roles if member else [])
        overwrites = {(o.type, o.id): o for o in target.overwrites}
        everyone = overwrites.get((0, guild.id))
        if everyone:
            perms = (perms & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for overwrite in target.overwrites:
            if overwrite.type == 0 and overwrite.id in role_ids:
                allow |= overwrite.allow
                deny |= overwrite.deny
        perms = (perms & ~deny) | allow
        mine = overwrites.get((1, user_id))
        if mine:
            perms = (perms & ~mine.deny) | mine.allow
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        return perms

    def require(self, channel: Channel, user_id: int, *needed: Perm) -> None:
        perms = self.permissions(channel, user_id)
        if not perms & Perm.VIEW_CHANNEL:
            raise errors.missing_access()
        for perm in needed:
            if not perms & perm:
                raise errors.missing_permissions()

    def set_overwrite(self, channel_id: int, target_id: int, *, type: int, allow: int = 0, deny: int = 0) -> None:
        channel = self.channel(channel_id)
        channel.overwrites = [o for o in channel.overwrites if not (o.id == target_id and o.type == type)]
        if allow or deny:
            channel.overwrites.append(Overwrite(target_id, type, allow, deny))
        self.dispatch("CHANNEL_UPDATE", self.channel_json(channel), Intent.GUILDS, channel.guild_id)

    # ------------------------------------------------------------------ JSON shapes
    def user_json(self, user_id: int) -> dict[str, Any]:
        user = self.users[user_id]
        data: dict[str, Any] = {
            "id": str(user.id), "username": user.username, "discriminator": "0",
            "global_name": user.global_name, "avatar": user.avatar, "public_flags": 0, "flags": 0,
            "banner": None, "accent_color": None, "avatar_decoration_data": None, "collectibles": None,
            "primary_guild": None,
        }
        if user.bot:
            data["bot"] = True
        return data

    def member_json(self, guild_id: int, user_id: int, *, with_user: bool = True) -> dict[str, Any]:
        guild = self.guilds[guild_id]
        member = guild.members.get(user_id) or Member(user_id, joined_at=iso())
        data: dict[str, Any] = {
            "roles": [str(r) for r in member.roles], "nick": member.nick, "avatar": None, "banner": None,
            "joined_at": member.joined_at or iso(), "premium_since": None, "deaf": False, "mute": False,
            "flags": 0, "pending": False, "communication_disabled_until": member.communication_disabled_until,
        }
        if with_user:
            data["user"] = self.user_json(user_id)
        return data

    def role_json(self, role: Role) -> dict[str, Any]:
        return {
            "id": str(role.id), "name": role.name, "color": role.color,
            "colors": {"primary_color": role.color, "secondary_color": None, "tertiary_color": None},
            "hoist": role.hoist, "icon": None, "unicode_emoji": None, "position": role.position,
            "permissions": str(role.permissions), "managed": role.managed, "mentionable": role.mentionable,
            "flags": 0,
        }

    def channel_json(self, channel: Channel) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(channel.id), "type": int(channel.type), "guild_id": str(channel.guild_id),
            "name": channel.name, "flags": channel.flags,
            "last_message_id": str(channel.last_message_id) if channel.last_message_id else None,
            "rate_limit_per_user": channel.rate_limit_per_user,
        }
        if channel.parent_id is not None:
            data["parent_id"] = str(channel.parent_id)
        if channel.is_thread:
            meta = channel.metadata or ThreadMetadata()
            data.update({
                "owner_id": str(channel.owner_id), "message_count": channel.message_count,
                "member_count": len(channel.member_ids), "total_message_sent": channel.total_message_sent,
                "thread_metadata": {
                    "archived": meta.archived, "locked": meta.locked,
                    "auto_archive_duration": meta.auto_archive_duration,
                    "archive_timestamp": meta.archive_timestamp, "create_timestamp": meta.create_timestamp,
                    "invitable": meta.invitable,
                },
                "applied_tags": [str(t) for t in channel.applied_tags],
            })
            if self.bot_user_id in channel.member_ids:
                data["member"] = {"id": str(channel.id), "user_id": str(self.bot_user_id),
                                  "join_timestamp": meta.create_timestamp, "flags": 0}
        else:
            data.update({
                "position": channel.position, "nsfw": channel.nsfw,
                "permission_overwrites": [
                    {"id": str(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)}
                    for o in channel.overwrites
                ],
            })
            if channel.type != ChannelType.CATEGORY:
                data["topic"] = channel.topic
            if channel.type == ChannelType.FORUM:
                data.update({
                    "available_tags": channel.available_tags, "default_reaction_emoji": None,
                    "default_sort_order": None, "default_forum_layout": 0,
                    "default_thread_rate_limit_per_user": 0, "default_auto_archive_duration": 4320,
                })
        return data

    def guild_json(self, guild: Guild) -> dict[str, Any]:
        return {
            "id": str(guild.id), "name": guild.name, "icon": None, "splash": None, "discovery_splash": None,
            "owner_id": str(guild.owner_id), "afk_channel_id": None, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "roles": [self.role_json(r) for r in guild.roles.values()], "emojis": [], "stickers": [],
            "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": str(guild.system_channel_id) if guild.system_channel_id else None,
            "system_channel_flags": 0, "rules_channel_id": None, "vanity_url_code": None, "description": None,
            "banner": None, "premium_tier": 0, "premium_subscription_count": 0, "preferred_locale": "en-US",
            "public_updates_channel_id": None, "nsfw_level": 0, "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None, "max_members": 500000, "max_video_channel_users": 25,
            "widget_enabled": False, "widget_channel_id": None, "home_header": None, "region": "deprecated",
            "max_presences": None, "max_stage_video_channel_users": 50, "nsfw": False, "incidents_data": None,
        }

    def guild_create_json(self, guild: Guild, *, all_members: bool) -> dict[str, Any]:
        data = self.guild_json(guild)
        channels = [c for c in self.channels.values() if c.guild_id == guild.id and not c.deleted]
        member_ids = list(guild.members) if all_members else [self.bot_user_id]
        data.update({
            "joined_at": iso(), "large": False, "unavailable": False, "member_count": len(guild.members),
            "members": [self.member_json(guild.id, uid) for uid in member_ids if uid in guild.members],
            "channels": [self.channel_json(c) for c in channels if not c.is_thread],
            "threads": [self.channel_json(c) for c in channels
                        if c.is_thread and not (c.metadata and c.metadata.archived)],
            "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        })
        return data

    def message_json(self, message: Message) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(message.id), "channel_id": str(message.channel_id), "type": message.type,
            "author": message.webhook_author or self.user_json(message.author_id), "content": message.content,
            "timestamp": message.timestamp, "edited_timestamp": message.edited_timestamp,
            "tts": message.tts, "mention_everyone": message.mention_everyone,
            "mentions": [self.user_json(u) for u in message.mentions if u in self.users],
            "mention_roles": [str(r) for r in message.mention_roles], "attachments": message.attachments,
            "embeds": message.embeds, "pinned": message.pinned, "flags": message.flags,
            "components": message.components,
        }
        if message.sticker_items:
            data["sticker_items"] = message.sticker_items
        if message.webhook_id:
            data["webhook_id"] = str(message.webhook_id)
        if message.application_id:
            data["application_id"] = str(message.application_id)
        if message.interaction_metadata:
            data["interaction_metadata"] = message.interaction_metadata
        if message.nonce is not None:
            data["nonce"] = message.nonce
        if message.reactions:
            data["reactions"] = [
                {"emoji": message.reaction_emoji[key], "count": len(users),
                 "count_details": {"burst": 0, "normal": len(users)}, "burst_colors": [],
                 "me_burst": False, "burst_me": False, "burst_count": 0,
                 "me": self.bot_user_id in users}
                for key, users in message.reactions.items() if users
            ]
        if message.message_reference:
            data["message_reference"] = message.message_reference
            ref_id = message.message_reference.get("message_id")
            if message.type == 19 and ref_id:
                ref = self.messages.get(int(ref_id))
                data["referenced_message"] = (self.message_json(ref) if ref and not ref.deleted
                                              and ref.id != message.id else None)
        if message.thread_id and message.thread_id in self.channels:
            data["thread"] = self.channel_json(self.channels[message.thread_id])
        return data

    def message_event_json(self, message: Message) -> dict[str, Any]:
        data = self.message_json(message)
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
            if message.author_id in self.guilds[message.guild_id].members and not message.webhook_id:
                data["member"] = self.member_json(message.guild_id, message.author_id, with_user=False)
        return data

    # ------------------------------------------------------------------ mentions
    def compute_mentions(self, message: Message) -> None:
        guild = self.guilds.get(message.guild_id or 0)
        allowed = message.allowed_mentions
        parse: set[str] = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or [])
        allowed_users = {int(u) for u in (allowed or {}).get("users") or []}
        allowed_roles = {int(r) for r in (allowed or {}).get("roles") or []}
        users: list[int] = []
        for match in USER_MENTION.finditer(message.content):
            uid = int(match.group(1))
            if uid in self.users and ("users" in parse or uid in allowed_users) and uid not in users:
                users.append(uid)
        reference = message.message_reference or {}
        replied_user = True if allowed is None else bool(allowed.get("replied_user", False))
        if message.type == 19 and replied_user and reference.get("message_id"):
            ref = self.messages.get(int(reference["message_id"]))
            if ref and ref.author_id not in users:
                users.append(ref.author_id)
        roles: list[int] = []
        for match in ROLE_MENTION.finditer(message.content):
            rid = int(match.group(1))
            if guild and rid in guild.roles and ("roles" in parse or rid in allowed_roles) and rid not in roles:
                roles.append(rid)
        message.mentions = users
        message.mention_roles = roles
        message.mention_everyone = bool(EVERYONE.search(message.content)) and "everyone" in parse

    # ------------------------------------------------------------------ message operations
    def add_message(self, message: Message, *, dispatch: bool = True) -> Message:
        channel = self.channel(message.channel_id)
        message.guild_id = channel.guild_id
        message.timestamp = message.timestamp or iso(self.ids.now())
        self.compute_mentions(message)
        self.messages[message.id] = message
        self.channel_messages.setdefault(channel.id, []).append(message.id)
        channel.last_message_id = message.id
        if channel.is_thread and message.type not in (18, 21):
            channel.message_count += 1
            channel.total_message_sent += 1
        if dispatch and not message.ephemeral:
            self.dispatch("MESSAGE_CREATE", self.message_event_json(message), Intent.GUILD_MESSAGES,
                          channel.guild_id)
        return message

    def edit_message(self, message: Message, changes: dict[str, Any]) -> Message:
        for key, value in changes.items():
            setattr(message, key, value)
        message.edited_timestamp = iso()
        self.compute_mentions(message)
        if not message.ephemeral:
            self.dispatch("MESSAGE_UPDATE", self.message_event_json(message), Intent.GUILD_MESSAGES,
                          message.guild_id)
        return message

    def delete_message(self, message: Message) -> None:
        message.deleted = True
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
        if not message.ephemeral:
            self.dispatch("MESSAGE_DELETE", data, Intent.GUILD_MESSAGES, message.guild_id)

    def bulk_delete(self, channel: Channel, message_ids: list[int]) -> None:
        for mid in message_ids:
            self.messages[mid].deleted = True
        data = {"ids": [str(m) for m in message_ids], "channel_id": str(channel.id),
                "guild_id": str(channel.guild_id)}
        self.dispatch("MESSAGE_DELETE_BULK", data, Intent.GUILD_MESSAGES, channel.guild_id)

    def history(self, channel_id: int) -> list[Message]:
        """Live messages of a channel, oldest first (not ephemeral ones)."""
        return [self.messages[m] for m in self.channel_messages.get(channel_id, [])
                if not self.messages[m].deleted and not self.messages[m].ephemeral]

    # ------------------------------------------------------------------ reactions
    @staticmethod
    def emoji_key(emoji: str) -> tuple[str, dict[str, Any]]:
        """``"👍"``, ``"name:id"`` (URL form) or ``"<a:name:id>"`` into a key and the emoji object."""
        match = CUSTOM_EMOJI.match(emoji)
        if match:
            name, eid = match.group("name"), match.group("id")
            return f"{name}:{eid}", {"id": eid, "name": name, "animated": bool(match.group("animated"))}
        return emoji, {"id": None, "name": emoji}

    def _reaction_event(self, message: Message, user_id: int, key: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user_id": str(user_id), "channel_id": str(message.channel_id), "message_id": str(message.id),
            "emoji": message.reaction_emoji[key], "burst": False, "type": 0,
        }
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
        return data

    def add_reaction(self, message: Message, user_id: int, emoji: str) -> None:
        key, emoji_obj = self.emoji_key(emoji)
        users = message.reactions.setdefault(key, [])
        message.reaction_emoji.setdefault(key, emoji_obj)
        if user_id in users:
            return
        users.append(user_id)
        data = self._reaction_event(message, user_id, key)
        data["message_author_id"] = str(message.author_id)
        data["burst_colors"] = []
        if message.guild_id:
            data["member"] = self.member_json(message.guild_id, user_id)
        self.dispatch("MESSAGE_REACTION_ADD", data, Intent.GUILD_MESSAGE_REACTIONS, message.guild_id)

    def remove_reaction(self, message: Message, user_id: int, emoji: str) -> None:
        key, _ = self.emoji_key(emoji)
        users = message.reactions.get(key, [])
        if user_id not in users:
            return
        users.remove(user_id)
        data = self._reaction_event(message, user_id, key)
        if not users:
            del message.reactions[key]
        self.dispatch("MESSAGE_REACTION_REMOVE", data, Intent.GUILD_MESSAGE_REACTIONS, message.guild_id)

    def remove_all_reactions(self, message: Message) -> None:
        message.reactions.clear()
        data = {"channel_id": str(message.channel_id), "message_id": str(message.id)}
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
        self.dispatch("MESSAGE_REACTION_REMOVE_ALL", data, Intent.GUILD_MESSAGE_REACTIONS, message.guild_id)

    def remove_emoji_reactions(self, message: Message, emoji: str) -> None:
        key, emoji_obj = self.emoji_key(emoji)
        message.reactions.pop(key, None)
        data: dict[str, Any] = {"channel_id": str(message.channel_id), "message_id": str(message.id),
                                "emoji": message.reaction_emoji.get(key, emoji_obj)}
        if message.guild_id:
            data["guild_id"] = str(message.guild_id)
        self.dispatch("MESSAGE_REACTION_REMOVE_EMOJI", data, Intent.GUILD_MESSAGE_REACTIONS, message.guild_id)

    # ------------------------------------------------------------------ threads
    def create_thread(self, parent: Channel, *, name: str, owner_id: int, thread_id: int | None = None,
                      type: ChannelType | None = None, auto_archive_duration: int = 4320,
                      applied_tags: list[int] | None = None, invitable: bool = True) -> Channel:
        if type is None:
            type = ChannelType.NEWS_THREAD if parent.type == ChannelType.NEWS else ChannelType.PUBLIC_THREAD
        guild = self.guilds[parent.guild_id]
        active = sum(1 for c in self.channels.values()
                     if c.is_thread and c.guild_id == guild.id and c.metadata and not c.metadata.archived)
        if active >= guild.max_active_threads:
            raise errors.APIError(400, 160006, "Maximum number of active threads reached")
        now = iso()
        thread = Channel(
            id=thread_id or self.new_id(), type=type, guild_id=parent.guild_id, name=name, parent_id=parent.id,
            owner_id=owner_id, applied_tags=list(applied_tags or []), member_ids=[owner_id],
            metadata=ThreadMetadata(auto_archive_duration=auto_archive_duration, archive_timestamp=now,
                                    create_timestamp=now, invitable=invitable),
        )
        self.channels[thread.id] = thread
        data = self.channel_json(thread)
        data["newly_created"] = True
        self.dispatch("THREAD_CREATE", data, Intent.GUILDS, parent.guild_id)
        return thread

    def update_thread(self, thread: Channel, *, name: str | None = None, archived: bool | None = None,
                      locked: bool | None = None, auto_archive_duration: int | None = None,
                      applied_tags: list[int] | None = None) -> Channel:
        meta = thread.metadata or ThreadMetadata()
        if name is not None:
            thread.name = name
        if archived is not None and archived != meta.archived:
            meta.archived = archived
            meta.archive_timestamp = iso(self.ids.now())
        if locked is not None:
            meta.locked = locked
        if auto_archive_duration is not None:
            meta.auto_archive_duration = auto_archive_duration
        if applied_tags is not None:
            thread.applied_tags = applied_tags
        self.dispatch("THREAD_UPDATE", self.channel_json(thread), Intent.GUILDS, thread.guild_id)
        return thread

    def delete_channel(self, channel: Channel) -> None:
        channel.deleted = True
        if channel.is_thread:
            data = {"id": str(channel.id), "guild_id": str(channel.guild_id),
                    "parent_id": str(channel.parent_id), "type": int(channel.type)}
            self.dispatch("THREAD_DELETE", data, Intent.GUILDS, channel.guild_id)
        else:
            self.dispatch("CHANNEL_DELETE", self.channel_json(channel), Intent.GUILDS, channel.guild_id)

    def add_thread_member(self, thread: Channel, user_id: int) -> None:
        if user_id in thread.member_ids:
            return
        thread.member_ids.append(user_id)
        meta = thread.metadata or ThreadMetadata()
        member = {"id": str(thread.id), "user_id": str(user_id), "join_timestamp": iso(), "flags": 0}
        if user_id == self.bot_user_id:
            self.dispatch("THREAD_MEMBER_UPDATE", {**member, "guild_id": str(thread.guild_id)}, Intent.GUILDS,
                          thread.guild_id)
        data = {"id": str(thread.id), "guild_id": str(thread.guild_id), "member_count": len(thread.member_ids),
                "added_members": [member]}
        del meta
        self.dispatch("THREAD_MEMBERS_UPDATE", data, Intent.GUILD_MEMBERS, thread.guild_id)

    def remove_thread_member(self, thread: Channel, user_id: int) -> None:
        if user_id not in thread.member_ids:
            return
        thread.member_ids.remove(user_id)
        data = {"id": str(thread.id), "guild_id": str(thread.guild_id), "member_count": len(thread.member_ids),
                "removed_member_ids": [str(user_id)]}
        self.dispatch("THREAD_MEMBERS_UPDATE", data, Intent.GUILD_MEMBERS, thread.guild_id)

    def ensure_thread_open(self, thread: Channel, user_id: int) -> None:
        """Posting into a thread: unarchive it if allowed, refuse if locked (Discord's rules)."""
        meta = thread.metadata or ThreadMetadata()
        if meta.archived and meta.locked:
            raise errors.thread_archived()  # a message only reopens a thread that is not locked
        if meta.locked and not self.permissions(thread, user_id) & Perm.MANAGE_THREADS:
            raise errors.APIError(403, 160005, "Thread is locked")
        if meta.archived:
            self.update_thread(thread, archived=False)
