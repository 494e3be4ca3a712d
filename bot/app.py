"""The bot object: the only module under ``bot/`` that imports discord.

``main()`` (in ``bot/__main__.py``) opens the shared resources (database, HTTP session), hands them
to :class:`ConversationBot` with the names of the extensions to load (``cogs.extension_names()``),
and closes them after the bot stops — the shape of discord.py's ``examples/advanced_startup.py``.
The bot object never imports the cogs: they import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands

from bot.announce.wake import AnnounceWake
from bot.config import Settings
from bot.errors import UserFacingError
from bot.storage import Database
from bot.storage.meta import COMMAND_TREE_HASH, get_meta, set_meta
from bot.storage.sql import DATABASE_ERRORS

if TYPE_CHECKING:
    from bot.feeds.scheduler import FeedScheduler

log = logging.getLogger(__name__)

SyncMode = Literal["auto", "force", "never"]
# Every message the bot sends mentions nobody, whatever its text says (no @everyone from a title).
NO_MENTIONS = discord.AllowedMentions.none()
GENERIC_FAILURE = "Something went wrong on our side while doing that; the bot's log has the details."
RETRY_FIRST_DELAY = 1.0  # seconds before the first retry when Discord cannot be reached at start-up
RETRY_MAX_DELAY = 60.0
CONNECT_TIMEOUT = 10.0
T = TypeVar("T")


def point_discord_at(api_base: str, gateway_url: str) -> None:
    """Send discord.py's REST calls and gateway connection to ``api_base`` / ``gateway_url``.

    For Discord-compatible servers and local testing; the defaults are Discord's own.
    """
    discord.http.Route.BASE = api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def bot_intents() -> discord.Intents:
    """Guilds, guild messages, message content and guild reactions: nothing more."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    intents.guild_reactions = True
    return intents


class ConversationTree(app_commands.CommandTree["ConversationBot"]):
    """The central error handler for every slash command, context menu and autocomplete."""

    async def on_error(self, interaction: discord.Interaction[ConversationBot],
                       error: app_commands.AppCommandError) -> None:
        original = getattr(error, "original", error)
        if isinstance(original, UserFacingError):
            message, ephemeral = original.message, original.ephemeral
        elif isinstance(error, app_commands.CheckFailure):
            message, ephemeral = check_failure_message(error), True
        else:
            command = interaction.command.qualified_name if interaction.command else "interaction"
            log.error("command %s failed", command, exc_info=original)
            message, ephemeral = GENERIC_FAILURE, True
        await send_reply(interaction, message, ephemeral=ephemeral)


def check_failure_message(error: app_commands.CheckFailure) -> str:
    """What a refused command tells its user: the permission it needs, by its name in Discord."""
    if isinstance(error, app_commands.MissingPermissions):
        missing = " and ".join(permission_name(p) for p in error.missing_permissions)
        return f"You need the {missing} permission to use this command."
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = " and ".join(permission_name(p) for p in error.missing_permissions)
        return f"I need the {missing} permission here to do that; ask a server admin to give it to me."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works inside a server."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Please wait {error.retry_after:.0f} s before using this command again."
    return "You cannot use this command here."


def permission_name(flag: str) -> str:
    """The name Discord's own interface shows for a permission flag (manage_guild: Manage Server)."""
    return {"manage_guild": "Manage Server", "administrator": "Administrator",
            "send_messages_in_threads": "Send Messages in Threads"}.get(flag, flag.replace("_", " ").title())


def has_permission(flag: str) -> Callable[[discord.Interaction[Any]], bool]:
    """A command's runtime permission check (``default_permissions`` only sets who sees it, and a
    server can change that): in a server, with ``flag`` or Administrator; a refusal names ``flag``."""
    def check(interaction: discord.Interaction[Any]) -> bool:
        permissions = interaction.permissions
        if interaction.guild_id is not None and (getattr(permissions, flag) or permissions.administrator):
            return True
        raise app_commands.MissingPermissions([flag])

    return check


async def send_reply(interaction: discord.Interaction[Any], content: str, *, ephemeral: bool = True) -> None:
    """Answer an interaction whether or not it was already acknowledged, mentioning nobody."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(content[:2000], ephemeral=ephemeral,
                                            allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(content[:2000], ephemeral=ephemeral,
                                                    allowed_mentions=NO_MENTIONS)
    except discord.HTTPException:
        log.warning("could not tell the user about an error (interaction expired?)", exc_info=True)


class RoleLock(Protocol):
    """What elects the process that holds the bot-wide role (bot.storage.postgres_engine.BotWideLock)."""

    async def try_take(self) -> bool: ...

    async def still_held(self) -> bool: ...

    async def release(self) -> None: ...


class OncePerBot:
    """The work that must run in exactly one process of the bot, not in each of its processes:
    feed polling, announcing, the reconcile of discussions, webhook delivery. Each piece is added
    with its start and stop and runs while this process holds the bot-wide role (``held``). With
    SQLite that is always: one process per database (``bot/storage/process_lock.py``). With
    PostgreSQL the processes elect one (:meth:`elect`), which starts the pieces; should it lose the
    role, it stops them and another process takes over."""

    def __init__(self, *, held: bool = True) -> None:
        self.held = held
        self._work: dict[str, tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]] = {}
        self._running: set[str] = set()
        self._changing = asyncio.Lock()

    @property
    def running(self) -> list[str]:
        """The names of the pieces running in this process, in the order they were added."""
        return [name for name in self._work if name in self._running]

    async def add(self, name: str, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
        """Register ``name``; it starts now when this process holds the bot-wide role."""
        async with self._changing:
            if name in self._work:
                raise ValueError(f"{name} is already registered")
            self._work[name] = (start, stop)
            if self.held:
                await start()
                self._running.add(name)

    async def remove(self, name: str) -> None:
        """Stop ``name`` (if it runs here) and forget it."""
        async with self._changing:
            work = self._work.pop(name, None)
            if work is not None and name in self._running:
                self._running.discard(name)
                await work[1]()

    async def take(self) -> None:
        """This process now holds the role: start every piece."""
        async with self._changing:
            self.held = True
            for name, (start, _) in self._work.items():
                if name not in self._running:
                    try:
                        await start()
                    except Exception:  # one piece that cannot start must not keep the others stopped
                        log.exception("could not start %s", name)
                        continue
                    self._running.add(name)

    async def give_up(self) -> None:
        """This process no longer holds the role: stop every piece, the newest first."""
        async with self._changing:
            self.held = False
            for name in reversed(self.running):
                self._running.discard(name)
                try:
                    await self._work[name][1]()
                except Exception:
                    log.exception("could not stop %s", name)

    async def elect(self, lock: RoleLock, interval: float) -> None:
        """Until cancelled: take the role whenever it is free, give it up as soon as it is lost."""
        try:
            while True:
                try:
                    if self.held:
                        if not await lock.still_held():
                            log.warning("lost the bot-wide role (the database connection holding it is gone); "
                                        "stopping: %s", ", ".join(self.running) or "nothing")
                            await self.give_up()
                    elif await lock.try_take():
                        log.info("took the bot-wide role: this process now runs %s",
                                 ", ".join(self._work) or "the once-per-bot work")
                        await self.take()
                except DATABASE_ERRORS as error:
                    log.warning("bot-wide role: the database cannot be reached (%s); trying again in %.0f s",
                                error, interval)
                await asyncio.sleep(interval)
        finally:
            await lock.release()


class ConversationBot(commands.AutoShardedBot):
    """Holds the shared resources the cogs use: ``settings``, ``database``, ``feed_session`` and
    ``announce_wake`` (what stores posts wakes the announcement loop through it); loads the
    ``extensions`` it is given (module names) when it logs in.

    Always sharded (discord.py's ``AutoShardedBot``), on ``SHARD_COUNT``/``SHARD_IDS``, or unset on
    the count Discord recommends: one shard for a small bot. Per-session work listens to
    ``on_shard_ready`` (a shard's fresh session: its guilds), not ``on_ready`` (fired once, when
    every shard of the process first became ready).
    """

    def __init__(self, settings: Settings, database: Database, *, extensions: Sequence[str],
                 feed_session: aiohttp.ClientSession | None = None,
                 sync_mode: SyncMode = "auto", once_per_bot: OncePerBot | None = None,
                 **options: Any) -> None:
        options.setdefault("allowed_mentions", NO_MENTIONS)
        # No message cache: discord.py applies an edit to its cached copy of a message in place, and
        # with frames arriving together that happens before our on_message listener has run, so the
        # comment would be stored with its edited text and the original lost. Every listener of this
        # bot reads the events themselves (on_message, on_raw_*), never the cache.
        options.setdefault("max_messages", None)
        if settings.shard_count is not None:
            options.setdefault("shard_count", settings.shard_count)
        if settings.shard_ids is not None:
            options.setdefault("shard_ids", list(settings.shard_ids))
        super().__init__(command_prefix=commands.when_mentioned, intents=bot_intents(),
                         tree_cls=ConversationTree, help_command=None, **options)
        self.settings = settings
        self.database = database
        self.extension_names = tuple(extensions)
        # Feed polling, announcing, the reconcile, webhook delivery: started through here only.
        self.once_per_bot = once_per_bot or OncePerBot()
        self._own_feed_session = feed_session is None
        self._feed_session = feed_session
        self._feed_scheduler: FeedScheduler | None = None
        self.announce_wake = AnnounceWake()
        self.sync_mode: SyncMode = sync_mode
        self._startup_frozen = False

    @property
    def feed_scheduler(self) -> FeedScheduler:
        """The bot's one feed scheduler: the poll loop and ``/feed poll`` share its view of which
        feeds are being polled."""
        if self._feed_scheduler is None:
            from bot.feeds.scheduler import FeedScheduler

            self._feed_scheduler = FeedScheduler(self.database, self.feed_session, self.settings,
                                                 on_posts_stored=self.announce_wake.wake)
        return self._feed_scheduler

    @property
    def feed_session(self) -> aiohttp.ClientSession:
        if self._feed_session is None or self._feed_session.closed:
            from bot.feeds.fetch import new_feed_session  # the feed code owns its session settings

            self._feed_session = new_feed_session()
            self._own_feed_session = True
        return self._feed_session

    async def setup_hook(self) -> None:
        # Runs inside login(): never wait for ready here (it would deadlock).
        for name in self.extension_names:
            await self.load_extension(name)
        log.info("loaded extensions: %s", ", ".join(self.extension_names) or "(none)")
        if self.sync_mode != "never":
            await self.sync_commands_if_changed(force=self.sync_mode == "force")

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py's own hook, with the pause before identifying again taken from the settings:
        # called for every shard's IDENTIFY; ``initial`` only for the first shard at start-up, so
        # the shards of a process identify one pause apart, as Discord's identify rate asks.
        if not initial:
            await asyncio.sleep(self.settings.tuning.reidentify_pause_seconds)

    def gateway_connected(self) -> bool:
        """Whether every shard of this process is ready and connected to the gateway (what
        /healthz reports): ``is_ready()`` alone stays true while one shard of several is down."""
        return (self.is_ready() and not self.is_closed() and bool(self.shards)
                and not any(shard.is_closed() for shard in self.shards.values()))

    @property
    def worst_latency(self) -> float:
        """The slowest shard's heartbeat latency in seconds (``inf`` or ``nan`` before any)."""
        latencies = [latency for _, latency in self.latencies]
        return max(latencies) if latencies else float("nan")

    def shard_guilds(self, shard_id: int) -> list[discord.Guild]:
        """The guilds whose events come through shard ``shard_id`` of this process."""
        return [guild for guild in self.guilds if guild.shard_id == shard_id]

    async def on_message(self, message: discord.Message, /) -> None:
        # Slash commands only: parsing every message of every channel the bot sees for a prefix
        # command costs about a tenth of the loop under a burst (bench/ingest.py) for nothing.
        if self.all_commands:
            await self.process_commands(message)

    async def on_ready(self) -> None:
        if not self._startup_frozen:
            # The start-up objects (modules, discord.py's caches) live as long as the process; moved
            # out of the collector's view, full collections stop stalling the loop for tens of ms.
            gc.collect()  # once, so no garbage of the start-up is frozen with them
            gc.freeze()
            self._startup_frozen = True

    def command_tree_hash(self) -> str:
        payload = sorted((command.to_dict(self.tree) for command in self.tree.get_commands()),
                         key=lambda command: (command.get("type", 1), command["name"]))
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    async def sync_commands_if_changed(self, *, force: bool = False) -> bool:
        """Register the global commands, but only when they changed since the last sync.

        Restarts then cost no command writes, so they never hit Discord's command rate limits.
        """
        current = self.command_tree_hash()
        if not force and await get_meta(self.database, COMMAND_TREE_HASH) == current:
            log.info("slash commands unchanged since the last sync; not syncing")
            return False
        synced = await self.tree.sync()
        await set_meta(self.database, COMMAND_TREE_HASH, current)
        log.info("synced %d slash commands", len(synced))
        return True

    async def close(self) -> None:
        # Cogs stop their loops in cog_unload, before the gateway closes, so no poll starts half-way.
        for name in list(self.extensions):
            try:
                await self.unload_extension(name)
            except commands.ExtensionError:
                log.exception("could not unload %s", name)
        await super().close()
        from bot.feeds.parse import shutdown_parse_workers

        await asyncio.to_thread(shutdown_parse_workers)  # waits for the worker processes to exit
        if self._own_feed_session and self._feed_session is not None:
            await self._feed_session.close()


async def run_until_stopped(settings: Settings, database: Database, *, extensions: Sequence[str],
                            sync_only: bool = False, once_per_bot: OncePerBot | None = None,
                            on_bot: Callable[[ConversationBot], None] | None = None) -> int:
    """Log in and run until SIGINT/SIGTERM or a fatal error; returns the process exit status.

    A refused token or a missing privileged intent is a configuration error (status 2) with one line
    saying how to fix it; ``sync_only`` logs in, registers the slash commands and stops. While
    Discord cannot be reached at start-up (no network, DNS failing) the bot says so in one line and
    tries again, waiting 1 s, then twice as long each time up to a minute; ``sync_only`` gives up
    (status 1) instead. Once connected, discord.py's own reconnects take over.
    """
    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    stopping = asyncio.Event()
    current: list[ConversationBot] = []  # the bot of the current attempt, for the signal handler

    def stop() -> None:
        stopping.set()
        if current:
            asyncio.ensure_future(current[0].close())

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop)
        except (NotImplementedError, RuntimeError):  # not on the main thread, or not on this platform
            pass
    delay = RETRY_FIRST_DELAY
    failed = False
    while not stopping.is_set():
        problem = await _unless_stopped(discord_unreachable(settings.discord_api_base,
                                                            settings.discord_gateway_url), stopping)
        if stopping.is_set():
            break
        if problem is None:
            if failed:
                log.info("Discord is reachable again")
            bot = ConversationBot(settings, database, extensions=extensions,
                                  sync_mode="force" if sync_only else "auto", once_per_bot=once_per_bot)
            current[:] = [bot]
            if on_bot is not None:
                on_bot(bot)  # e.g. the web server's health check watches the gateway connection
            try:
                return await _log_in_and_run(bot, settings, sync_only=sync_only)
            except aiohttp.ClientConnectionError as error:  # Discord went away between the check and the login
                problem = f"{settings.discord_api_base} (DISCORD_API_BASE): {error}"
            current.clear()
        if sync_only:
            print(f"conversation-engine: cannot reach Discord at {problem}", file=sys.stderr)
            return 1
        log.warning("cannot reach Discord at %s; trying again in %g s", problem, delay)
        failed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        delay = min(delay * 2, RETRY_MAX_DELAY)
    return 0


async def _log_in_and_run(bot: ConversationBot, settings: Settings, *, sync_only: bool) -> int:
    try:
        async with bot:
            if sync_only:
                await bot.login(settings.discord_token)  # setup_hook syncs the commands
                print("slash commands registered")
            else:
                await bot.start(settings.discord_token)
    except discord.LoginFailure:
        print("conversation-engine: configuration error: DISCORD_TOKEN: Discord refused the token; "
              "reset it in the developer portal (Bot > Reset Token) and update .env", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print("conversation-engine: configuration error: the Message Content intent is not enabled. "
              "Open https://discord.com/developers/applications > your app > Bot > Privileged Gateway "
              "Intents and switch on MESSAGE CONTENT INTENT, then start the bot again.", file=sys.stderr)
        return 2
    return 0


async def discord_unreachable(api_base: str, gateway_url: str) -> str | None:
    """Why Discord cannot be reached (which host, and why a connection to it fails), or None when
    both the REST API's host and the gateway's host accept a connection."""
    for name, url in (("DISCORD_API_BASE", api_base), ("DISCORD_GATEWAY_URL", gateway_url)):
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port),
                                               CONNECT_TIMEOUT)
        except OSError as error:  # TimeoutError, socket.gaierror and ConnectionRefusedError are OSErrors
            return f"{parts.hostname}:{port} ({name}): {_connection_failure(error)}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return None


def _connection_failure(error: OSError) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    if isinstance(error, socket.gaierror):
        return f"the name does not resolve ({error.strerror})"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return error.strerror or str(error)


async def _unless_stopped(awaitable: Awaitable[T], stopping: asyncio.Event) -> T | None:
    """``awaitable``'s result, or None as soon as ``stopping`` is set (SIGTERM must not wait for a DNS timeout)."""
    work = asyncio.ensure_future(awaitable)
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        work.cancel()
        stopped.cancel()
    return work.result() if work.done() and not work.cancelled() else None
