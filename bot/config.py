"""Settings: one frozen dataclass read from the environment (and a ``.env`` file).

Every variable is documented in ``.env.example``. A bad value raises :class:`ConfigError`, whose
message names the variable, what it got and what is expected; the CLI prints it and exits 2.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

from dotenv import dotenv_values

DEFAULT_API_BASE = "https://discord.com/api/v10"
DEFAULT_GATEWAY_URL = "wss://gateway.discord.gg/"
MIN_POLL_INTERVAL = 60
MAX_SHARDS = 4096  # far beyond any bot's need; a typo like 40000 is caught
THREAD_ARCHIVE_CHOICES = (60, 1440, 4320, 10080)
_SNOWFLAKE = re.compile(r"[1-9][0-9]{14,18}")  # ASCII digits only (int() takes other scripts' digits too)
MAX_SNOWFLAKE = 2**63 - 1  # Discord ids are 64-bit signed
_WHOLE_NUMBER = re.compile(r"[0-9]+")
_DECIMAL_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_TOKEN_HELP = (
    "DISCORD_TOKEN is not set: the bot needs its token to log in. Create an application at "
    "https://discord.com/developers/applications, open Bot > Reset Token, and put the token in .env "
    "as DISCORD_TOKEN=... (see the README section 'Creating the Discord application')."
)

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or has a value the bot cannot use."""


@dataclass(frozen=True, slots=True)
class Tuning:
    """The bot's internal pacing: fixed in production, not read from the environment, not shown by
    ``check``. Tests pass their own (short intervals, no pauses) when they build :class:`Settings`."""

    # How often queued announcements are drained when nothing wakes the announcer (storing new posts
    # does, at once) and due feeds are looked for; feeds themselves are polled at their own slots.
    announce_interval_seconds: float = 60.0
    feed_tick_seconds: float = 60.0
    # The sliding window of the announcement rate: a channel gets at most ANNOUNCEMENTS_PER_CYCLE
    # announcements in any such span. 0 makes it a limit per cycle only.
    announce_flood_window_seconds: float = 600.0
    # How long the Previous/Next buttons under a /comments answer work.
    pager_lifetime_seconds: float = 300.0
    # The pause before identifying again after Discord ended a session, and between the first
    # IDENTIFYs of a process's shards at start-up (discord.py's default; Discord's identify rate).
    reidentify_pause_seconds: float = 5.0
    # Writes waiting for the database writer before a caller is made to wait.
    write_queue_limit: int = 10_000
    # An announcement that met a passing problem (Discord down, a timeout) is tried again after this
    # long, doubling up to the longest wait, and fails for good once it has failed for a day.
    announce_retry_first_seconds: float = 60.0
    announce_retry_longest_seconds: float = 3600.0
    announce_give_up_after_seconds: float = 86_400.0
    # Replying from the blog: at most one comment per reader per interval, so many per hour, and so
    # many per minute from one address.
    reply_interval_seconds: float = 10.0
    replies_per_hour: int = 30
    replies_per_address_per_minute: int = 10
    # WebSub: how often subscriptions are looked after (asked for, renewed, retried, unsubscribed);
    # the lease asked of hubs, renewed once this part of it has passed; how long a hub has to verify
    # a request; the first wait after a failed subscription (doubling up to a day); and how often a
    # feed whose push subscription is live is still polled, in case a notification is lost.
    websub_tick_seconds: float = 60.0
    websub_lease_seconds: int = 10 * 86_400
    websub_renew_after: float = 0.85
    websub_verify_wait_seconds: float = 300.0
    websub_retry_first_seconds: float = 600.0
    websub_fallback_poll_seconds: int = 6 * 3600
    # PostgreSQL: how often a process tries to take the bot-wide role, and its holder checks it still
    # holds it (a takeover comes within this plus the server noticing the old holder is gone).
    election_interval_seconds: float = 5.0


# Settings whose values never reach a log line or a traceback through repr().
_SECRETS = frozenset({"discord_token", "discord_client_secret", "webhook_secret", "database_url"})


@dataclass(frozen=True, slots=True)
class Settings:
    discord_token: str
    database_path: Path = Path("data/conversation.db")
    # postgresql://...: PostgreSQL instead of the SQLite file (several processes may share it).
    database_url: str | None = None
    feed_urls: tuple[str, ...] = ()
    announce_channel_id: int | None = None
    poll_interval_seconds: int = 600
    feed_concurrency: int = 8
    announcements_per_cycle: int = 5
    thread_auto_archive_minutes: int = 10080
    reconcile_interval_hours: float = 24.0
    catch_up_days: int = 7
    log_level: str = "INFO"
    allow_private_feeds: bool = False
    discord_api_base: str = DEFAULT_API_BASE
    discord_gateway_url: str = DEFAULT_GATEWAY_URL
    web_port: int | None = None
    web_host: str = "127.0.0.1"
    web_allowed_origins: tuple[str, ...] = ()
    discord_invite_url: str | None = None
    web_include_private: bool = False
    discord_client_secret: str | None = None
    public_url: str | None = None
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str = ""
    allow_private_webhooks: bool = False
    # None: discord.py asks Discord how many shards to run (GET /gateway/bot) and runs them all.
    shard_count: int | None = None
    # None: every shard of ``shard_count``; else only these (other processes run the rest).
    shard_ids: tuple[int, ...] | None = None
    tuning: Tuning = field(default_factory=Tuning)

    def __repr__(self) -> str:
        # The token must never reach a log line or a traceback through repr().
        shown = ", ".join(
            f"{name}={'<hidden>' if name in _SECRETS else repr(getattr(self, name))}"
            for name in self.__dataclass_fields__
        )
        return f"Settings({shown})"

    @property
    def replying_enabled(self) -> bool:
        """Readers may reply from the blog (sign in with Discord) only when both settings are given."""
        return bool(self.discord_client_secret and self.public_url)

    @property
    def websub_enabled(self) -> bool:
        """Feeds with a hub are subscribed to only when hubs can reach the callback: PUBLIC_URL and
        the web server (WEB_PORT) are both set."""
        return bool(self.public_url and self.web_port)

    def summary(self) -> list[tuple[str, str]]:
        """What ``check`` prints: every setting with the token hidden."""
        return [
            ("DISCORD_TOKEN", "set" if self.discord_token else "not set"),
            ("DATABASE_PATH", str(self.database_path)),
            ("DATABASE_URL", redact_url(self.database_url) if self.database_url else "(none: SQLite at DATABASE_PATH)"),
            ("FEED_URLS", ", ".join(self.feed_urls) or "(none)"),
            ("ANNOUNCE_CHANNEL_ID", str(self.announce_channel_id or "(none)")),
            ("POLL_INTERVAL_SECONDS", str(self.poll_interval_seconds)),
            ("FEED_CONCURRENCY", str(self.feed_concurrency)),
            ("ANNOUNCEMENTS_PER_CYCLE", str(self.announcements_per_cycle)),
            ("THREAD_AUTO_ARCHIVE_MINUTES", str(self.thread_auto_archive_minutes)),
            ("RECONCILE_INTERVAL_HOURS", f"{self.reconcile_interval_hours:g}"),
            ("CATCH_UP_DAYS", str(self.catch_up_days)),
            ("LOG_LEVEL", self.log_level),
            ("ALLOW_PRIVATE_FEEDS", str(self.allow_private_feeds).lower()),
            ("DISCORD_API_BASE", self.discord_api_base),
            ("DISCORD_GATEWAY_URL", self.discord_gateway_url),
            ("WEB_PORT", str(self.web_port) if self.web_port else "(off)"),
            ("WEB_HOST", self.web_host),
            ("WEB_ALLOWED_ORIGINS", ", ".join(self.web_allowed_origins) or "(none)"),
            ("DISCORD_INVITE_URL", self.discord_invite_url or "(none)"),
            ("WEB_INCLUDE_PRIVATE", str(self.web_include_private).lower()),
            ("DISCORD_CLIENT_SECRET", "set" if self.discord_client_secret else "not set"),
            ("PUBLIC_URL", self.public_url or "(none: replying from the blog and WebSub push are off)"),
            ("WEBHOOK_URLS", ", ".join(self.webhook_urls) or "(none)"),
            ("WEBHOOK_SECRET", "set" if self.webhook_secret else "not set"),
            ("ALLOW_PRIVATE_WEBHOOKS", str(self.allow_private_webhooks).lower()),
            ("SHARD_COUNT", str(self.shard_count) if self.shard_count else "(Discord's recommendation)"),
            ("SHARD_IDS", ",".join(map(str, self.shard_ids)) if self.shard_ids is not None else "(all)"),
        ]


def read_environment(environ: Mapping[str, str], env_file: Path | None, *,
                     required: bool = False) -> dict[str, str]:
    """The process environment over the values of the ``.env`` file (the environment wins).

    A missing ``env_file`` is skipped unless ``required`` (it was named on the command line); one
    that cannot be read, or is not UTF-8 text, is a :class:`ConfigError`.
    """
    values: dict[str, str] = {}
    if env_file is not None and (required or env_file.is_file()):
        source = "--env-file" if required else "settings file"
        try:
            values.update({key: value for key, value in _read_env_file(env_file).items() if value is not None})
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{source} {env_file}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset "
                f"{error.start}); expected a UTF-8 file of NAME=value lines (save it as UTF-8)") from None
        except OSError as error:
            raise ConfigError(f"{source} {env_file}: cannot read it ({error.strerror or error}); "
                              "expected an existing, readable file of NAME=value lines") from None
    values.update(environ)
    return values


def _read_env_file(env_file: Path) -> dict[str, str | None]:
    # Read here, not by dotenv: dotenv quietly returns nothing for a path that is not a file.
    if env_file.is_dir():
        raise IsADirectoryError(21, "it is a folder", str(env_file))
    text = env_file.read_text(encoding="utf-8")
    return dict(dotenv_values(stream=io.StringIO(text)))


def listens_on_every_interface(host: str) -> bool:
    """Whether WEB_HOST makes the web server listen on all of the machine's addresses."""
    if host in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:  # a host name
        return False


def load_settings(environ: Mapping[str, str], *, require_token: bool = True) -> Settings:
    """Build :class:`Settings` from variables; raises :class:`ConfigError` on the first bad one."""

    def raw(name: str) -> str | None:
        value = environ.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def parsed(name: str, default: T, parse: Callable[[str, str], T]) -> T:
        value = raw(name)
        return default if value is None else parse(name, value)

    token = raw("DISCORD_TOKEN") or ""
    if require_token and not token:
        raise ConfigError(_TOKEN_HELP)
    if token and (any(ch.isspace() for ch in token) or len(token) < 20):
        raise ConfigError(
            "DISCORD_TOKEN: the value does not look like a bot token (too short or contains spaces); "
            "copy it again from the developer portal (Bot > Reset Token)"
        )

    feed_urls = tuple(
        _url("FEED_URLS", url) for url in re.split(r"[\s,]+", raw("FEED_URLS") or "") if url
    )
    announce_channel = parsed("ANNOUNCE_CHANNEL_ID", None, _snowflake)
    if feed_urls and announce_channel is None:
        raise ConfigError(
            "ANNOUNCE_CHANNEL_ID: not set, but FEED_URLS lists feeds; expected the id of the channel "
            "where those feeds announce (right-click the channel > Copy Channel ID)"
        )
    web_origins = tuple(
        _origin("WEB_ALLOWED_ORIGINS", origin)
        for origin in re.split(r"[\s,]+", raw("WEB_ALLOWED_ORIGINS") or "")
        if origin
    )
    webhook_urls = tuple(dict.fromkeys(
        _url("WEBHOOK_URLS", url) for url in (raw("WEBHOOK_URLS") or "").split() if url))
    webhook_secret = raw("WEBHOOK_SECRET") or ""
    if webhook_urls and len(webhook_secret) < 16:
        raise ConfigError(
            "WEBHOOK_SECRET: " + ("not set" if not webhook_secret else "too short")
            + ", but WEBHOOK_URLS lists webhooks; expected a random secret of at least 16 characters "
            "(e.g. python3 -c 'import secrets; print(secrets.token_hex(32))') that the receivers also know")
    shard_count = parsed("SHARD_COUNT", None, _integer(1, MAX_SHARDS))
    shard_ids = parsed("SHARD_IDS", None, _shard_ids)
    if shard_ids is not None:
        if shard_count is None:
            raise ConfigError(f"SHARD_IDS: set to {raw('SHARD_IDS')!r} but SHARD_COUNT is not; expected "
                              "SHARD_COUNT (the total number of shards) set too, or neither")
        too_big = [shard for shard in shard_ids if shard >= shard_count]
        if too_big:
            raise ConfigError(f"SHARD_IDS: got {raw('SHARD_IDS')!r}, expected ids each less than "
                              f"SHARD_COUNT={shard_count} (0 to {shard_count - 1})")
    return Settings(
        discord_token=token,
        database_path=Path(raw("DATABASE_PATH") or "data/conversation.db"),
        database_url=parsed("DATABASE_URL", None, postgresql_url),
        feed_urls=feed_urls,
        announce_channel_id=announce_channel,
        poll_interval_seconds=parsed("POLL_INTERVAL_SECONDS", 600, _integer(MIN_POLL_INTERVAL, 86_400)),
        feed_concurrency=parsed("FEED_CONCURRENCY", 8, _integer(1, 64)),
        announcements_per_cycle=parsed("ANNOUNCEMENTS_PER_CYCLE", 5, _integer(1, 50)),
        thread_auto_archive_minutes=parsed("THREAD_AUTO_ARCHIVE_MINUTES", 10080, _archive_minutes),
        reconcile_interval_hours=parsed("RECONCILE_INTERVAL_HOURS", 24.0, _hours),
        catch_up_days=parsed("CATCH_UP_DAYS", 7, _integer(1, 365)),
        log_level=parsed("LOG_LEVEL", "INFO", _log_level),
        allow_private_feeds=parsed("ALLOW_PRIVATE_FEEDS", False, _boolean),
        discord_api_base=parsed("DISCORD_API_BASE", DEFAULT_API_BASE, _url).rstrip("/"),
        discord_gateway_url=parsed("DISCORD_GATEWAY_URL", DEFAULT_GATEWAY_URL, _ws_url),
        web_port=parsed("WEB_PORT", None, _integer(1, 65_535)),
        web_host=raw("WEB_HOST") or "127.0.0.1",
        web_allowed_origins=web_origins,
        discord_invite_url=parsed("DISCORD_INVITE_URL", None, _url),
        web_include_private=parsed("WEB_INCLUDE_PRIVATE", False, _boolean),
        discord_client_secret=parsed("DISCORD_CLIENT_SECRET", None, _client_secret),
        public_url=parsed("PUBLIC_URL", None, _public_url),
        webhook_urls=webhook_urls,
        webhook_secret=webhook_secret,
        allow_private_webhooks=parsed("ALLOW_PRIVATE_WEBHOOKS", False, _boolean),
        shard_count=shard_count,
        shard_ids=shard_ids,
    )


def _fail(name: str, got: str, expected: str) -> ConfigError:
    return ConfigError(f"{name}: got {got!r}, expected {expected}")


def _snowflake(name: str, value: str) -> int:
    if not _SNOWFLAKE.fullmatch(value) or not 0 < int(value) <= MAX_SNOWFLAKE:
        raise _fail(name, value, f"a Discord id (a number of 15 to 19 digits, at most {MAX_SNOWFLAKE}; "
                                 "right-click > Copy ID)")
    return int(value)


def _integer(minimum: int, maximum: int) -> Callable[[str, str], int]:
    def parse(name: str, value: str) -> int:
        if not _WHOLE_NUMBER.fullmatch(value) or not minimum <= int(value) <= maximum:
            raise _fail(name, value, f"a whole number from {minimum} to {maximum} (digits 0-9)")
        return int(value)

    return parse


def _shard_ids(name: str, value: str) -> tuple[int, ...]:
    parts = [part.strip() for part in value.split(",")]
    if not all(_WHOLE_NUMBER.fullmatch(part) for part in parts):
        raise _fail(name, value, "comma-separated shard ids (whole numbers from 0, like 0,1)")
    ids = tuple(int(part) for part in parts)
    if len(set(ids)) != len(ids):
        raise _fail(name, value, "distinct shard ids (each at most once)")
    return ids


def _hours(name: str, value: str) -> float:
    if not _DECIMAL_NUMBER.fullmatch(value) or not 0.1 <= float(value) <= 720:
        raise _fail(name, value, "a number of hours from 0.1 to 720 (digits 0-9 and a decimal point)")
    return float(value)


def _archive_minutes(name: str, value: str) -> int:
    choices = ", ".join(str(choice) for choice in THREAD_ARCHIVE_CHOICES)
    if not _WHOLE_NUMBER.fullmatch(value) or int(value) not in THREAD_ARCHIVE_CHOICES:
        raise _fail(name, value, f"one of {choices} (minutes, as Discord allows)")
    return int(value)


def _log_level(name: str, value: str) -> str:
    level = value.upper()
    if level not in _LOG_LEVELS:
        raise _fail(name, value, "one of " + ", ".join(_LOG_LEVELS))
    return level


def _boolean(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise _fail(name, value, "true or false")


def _url_parts(value: str, schemes: tuple[str, ...]) -> SplitResult | None:
    """``value`` split, or None unless it is a URL of one of ``schemes`` with a host and a valid port."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 address)
        return None
    if parts.scheme not in schemes or not parts.hostname:
        return None
    return parts


def _url(name: str, value: str) -> str:
    if _url_parts(value, ("http", "https")) is None:
        raise _fail(name, value, "an http:// or https:// URL")
    return value


def postgresql_url(name: str, value: str) -> str:
    """A postgresql:// (or postgres://) URL, as asyncpg takes it; the error never shows the password."""
    parts = _url_parts(value, ("postgresql", "postgres"))
    if parts is None and value.partition("://")[0] in ("postgresql", "postgres"):
        parts = _url_parts(value.replace("://", "://localhost", 1), ("postgresql", "postgres"))  # a socket URL
    if parts is None:
        raise _fail(name, redact_url(value), "a PostgreSQL URL like postgresql://user:password@host:5432/database "
                                             "(postgresql:// or postgres://)")
    return value


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for printing."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "<hidden: not a URL>"  # it may be a password pasted in the wrong place
    authority, slash, path = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    query_password = re.compile(r"(?i)([?&]password=)[^&]*")
    return query_password.sub(r"\1***", f"{scheme}://{credentials}{at}{host}{slash}{path}")


def _client_secret(name: str, value: str) -> str:
    if any(ch.isspace() for ch in value) or len(value) < 16:
        raise _fail(name, "<hidden>", "the application's client secret (developer portal > OAuth2 > "
                                      "Client Secret: Reset Secret), without spaces")
    return value


def _public_url(name: str, value: str) -> str:
    parts = _url_parts(value, ("http", "https"))
    if parts is None or parts.query or parts.fragment:
        raise _fail(name, value, "the public base URL of this bot's web server, like https://comments.example.com "
                                 "(no query or fragment)")
    return value.rstrip("/")


def _ws_url(name: str, value: str) -> str:
    if _url_parts(value, ("ws", "wss")) is None:
        raise _fail(name, value, "a ws:// or wss:// URL")
    return value


def _origin(name: str, value: str) -> str:
    parts = _url_parts(value, ("http", "https"))
    if parts is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _fail(name, value, "origins like https://blog.example.com (scheme and host, no path)")
    return f"{parts.scheme}://{parts.netloc}".lower()


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-8s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())


class RedactTokens(logging.Filter):
    """Replaces anything shaped like a Discord bot token in log records (belt and braces)."""

    _TOKEN = re.compile(r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._TOKEN.search(message):
            record.msg = self._TOKEN.sub("<token hidden>", message)
            record.args = None
        return True
