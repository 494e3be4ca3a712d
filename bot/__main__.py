"""Command line: ``conversation-engine [--env-file PATH] [run|check|migrate|backup|sync-commands|...]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from bot import __version__
from bot.config import (
    ConfigError,
    Settings,
    configure_logging,
    listens_on_every_interface,
    load_settings,
    postgresql_url,
    read_environment,
    redact_url,
)
from bot.storage import Database, MigrationError
from bot.storage.copies import UnusablePath, backup_database, ensure_folder
from bot.storage.copydb import CopyRefused, copy_sqlite_to_postgresql, total_rows
from bot.storage.migrate import current_version, latest_version
from bot.storage.postgres import (
    apply_postgresql_migrations,
    current_postgresql_version,
    latest_postgresql_version,
    server_version,
)
from bot.storage.postgres import connect as connect_postgresql
from bot.storage.postgres_engine import BotWideLock
from bot.storage.postgres_engine import open_database as open_configured
from bot.storage.process_lock import DatabaseInUse, ProcessLock
from bot.storage.readonly import connect_read_only

if TYPE_CHECKING:
    from bot.app import ConversationBot
    from bot.web import WebServer

log = logging.getLogger("bot")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
DEFAULT_ENV_FILE = Path(".env")
# The commands that work on PostgreSQL (DATABASE_URL); backup copies the SQLite file only.
POSTGRESQL_COMMANDS = ("run", "sync-commands", "check", "migrate", "copy-db", "export", "import")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conversation-engine",
        description="Announce a blog's posts in Discord, one thread each, and keep the threads as comments.",
    )
    parser.add_argument("--env-file", type=Path,
                        help="file of settings to load (default: .env in the current folder, if there is one)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="connect to Discord and run the bot (the default)")
    commands.add_parser("check", help="validate the settings and the database, print a summary, do not connect")
    commands.add_parser("migrate", help="create the database or bring it to the newest schema")
    backup = commands.add_parser("backup", help="write a consistent copy of the database (safe while the bot runs)")
    backup.add_argument("path", type=Path, help="where to write the copy")
    commands.add_parser("sync-commands", help="register the slash commands with Discord now")
    copy_db = commands.add_parser("copy-db", help="copy the SQLite database into an empty PostgreSQL database")
    copy_db.add_argument("--to", required=True, metavar="URL",
                         help="the PostgreSQL database to fill: postgresql://user:password@host:5432/database")
    _add_exchange_commands(commands)
    return parser


def _add_exchange_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from bot.exchange.cli import add_commands
    except ImportError:  # the export/import module is optional at this stage of the code base
        return
    add_commands(commands)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        # An --env-file given must exist; the default .env may be absent.
        environment = read_environment(os.environ, args.env_file or DEFAULT_ENV_FILE,
                                       required=args.env_file is not None)
        settings = load_settings(environment, require_token=command in ("run", "sync-commands"))
        if command == "copy-db":
            args.to = postgresql_url("copy-db --to", args.to)
    except ConfigError as error:
        print(f"conversation-engine: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.database_url and command not in POSTGRESQL_COMMANDS:
        print(f"conversation-engine: configuration error: {command} works on the SQLite file (DATABASE_PATH), "
              f"but DATABASE_URL is set: back PostgreSQL up with its own tools (pg_dump), or unset "
              f"DATABASE_URL to {command} the SQLite file", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level)
    if command in ("run", "check"):
        warn_about_exposure(settings)
    try:
        if command == "run":
            return asyncio.run(run_bot(settings))
        if command == "sync-commands":
            return asyncio.run(run_bot(settings, sync_only=True))
        if command == "check":
            return asyncio.run(check(settings))
        if command == "migrate":
            return asyncio.run(migrate(settings))
        if command == "backup":
            return asyncio.run(backup(settings, args.path))
        if command == "copy-db":
            return asyncio.run(copy_db(settings, args.to))
        from bot.exchange.cli import run_command

        return int(asyncio.run(run_command(command, args, settings)))
    except MigrationError as error:
        print(f"conversation-engine: database error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except CopyRefused as error:
        print(f"conversation-engine: copy-db: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        url: str | None = args.to if command == "copy-db" else settings.database_url
        if url:
            print(f"conversation-engine: database error at {redact_url(url)}: {_one_line(error)}", file=sys.stderr)
            return EXIT_FAILURE
        raise
    except UnusablePath as error:
        print(f"conversation-engine: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except sqlite3.Error as error:
        print(f"conversation-engine: database error at {settings.database_path}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _schema_state(version: int, newest: int) -> str:
    if version == newest:
        return f"schema version {version}, up to date"
    if version < newest:
        return f"schema version {version}, needs `migrate` (newest {newest})"
    return f"schema version {version}, NEWER than this code ({version} > {newest})"


async def check(settings: Settings) -> int:
    for name, value in settings.summary():
        print(f"{name:<28} {value}")
    if settings.database_url:
        return await check_postgresql(settings.database_url)
    path = settings.database_path
    if path.exists():
        connection = connect_read_only(path)
        try:
            version = current_version(connection)
            integrity = connection.execute("PRAGMA quick_check").fetchone()[0]
            counts = {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                      for table in ("feeds", "posts", "comments")} if version else {}
        finally:
            connection.close()
        newest = latest_version()
        print(f"{'database':<28} {path}: engine SQLite {sqlite3.sqlite_version}, "
              f"{_schema_state(version, newest)}; integrity {integrity}")
        if counts:
            print(f"{'contents':<28} " + ", ".join(f"{count} {table}" for table, count in counts.items()))
        if version > newest or integrity != "ok":
            return EXIT_FAILURE
    else:
        print(f"{'database':<28} {path}: does not exist yet (created by `run` or `migrate`)")
    print("settings OK")
    return EXIT_OK


async def check_postgresql(url: str) -> int:
    connection = await connect_postgresql(url)
    try:
        version = await current_postgresql_version(connection)
        engine = f"PostgreSQL {await server_version(connection)}"
        counts = {table: await connection.fetchval(f"SELECT count(*) FROM {table}")
                  for table in ("feeds", "posts", "comments")} if version else {}
    finally:
        await connection.close()
    newest = latest_postgresql_version()
    print(f"{'database':<28} {redact_url(url)}: engine {engine}, {_schema_state(version, newest)}")
    if counts:
        print(f"{'contents':<28} " + ", ".join(f"{count} {table}" for table, count in counts.items()))
    if version > newest:
        return EXIT_FAILURE
    print("settings OK")
    return EXIT_OK


def warn_about_exposure(settings: Settings) -> None:
    if settings.web_port is not None and listens_on_every_interface(settings.web_host):
        log.warning("WEB_HOST=%s: the comments API and widget are reachable from other machines on port %d, "
                    "not only through a reverse proxy on this one; set WEB_HOST=127.0.0.1 unless that is meant",
                    settings.web_host, settings.web_port)


async def open_database(settings: Settings) -> Database:
    """Open the PostgreSQL database at DATABASE_URL, or else (creating it and its folder) the SQLite
    database at DATABASE_PATH; a folder that cannot be created or written is a settings error."""
    if not settings.database_url:
        ensure_folder(settings.database_path.parent.absolute(), name="DATABASE_PATH")
    return await open_configured(settings.database_path, settings.database_url,
                                 max_pending=settings.tuning.write_queue_limit)


async def migrate(settings: Settings) -> int:
    if settings.database_url:
        connection = await connect_postgresql(settings.database_url)
        try:
            await apply_postgresql_migrations(connection)
            version = await current_postgresql_version(connection)
        finally:
            await connection.close()
        print(f"database {redact_url(settings.database_url)} (PostgreSQL) is at schema version {version}")
        return EXIT_OK
    database = await open_database(settings)
    await database.close()
    print(f"database {settings.database_path} is at schema version {latest_version()}")
    return EXIT_OK


async def backup(settings: Settings, destination: Path) -> int:
    if not settings.database_path.exists():
        print(f"conversation-engine: no database at {settings.database_path} (DATABASE_PATH)", file=sys.stderr)
        return EXIT_FAILURE
    try:
        await asyncio.to_thread(backup_database, settings.database_path, destination)
    except (OSError, sqlite3.Error) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        print(f"conversation-engine: backup: could not write {destination} ({reason}); "
              "an existing file there was left as it was", file=sys.stderr)
        return EXIT_FAILURE
    print(f"backed up {settings.database_path} to {destination}")
    return EXIT_OK


async def copy_db(settings: Settings, url: str) -> int:
    """Copy the SQLite database at DATABASE_PATH into the empty PostgreSQL database at ``url``."""
    from bot.exchange.progress import Progress

    total = await asyncio.to_thread(total_rows, settings.database_path)
    connection = await connect_postgresql(url)
    progress = Progress("copying", total, stream=sys.stderr, unit="")
    try:
        copied = await copy_sqlite_to_postgresql(settings.database_path, connection, progress=progress.update)
    finally:
        progress.close()
        await connection.close()
    for table in copied:
        print(f"{table.table:<20} {table.sqlite_rows} rows in SQLite, {table.postgresql_rows} in PostgreSQL: verified")
    print(f"copied {settings.database_path} into {redact_url(url)}: {sum(t.postgresql_rows for t in copied)} rows "
          f"in {len(copied)} tables")
    return EXIT_OK


async def run_bot(settings: Settings, *, sync_only: bool = False) -> int:
    """Open the shared resources, run the bot until it is stopped, close them (nothing lost)."""
    process_lock = None
    if not sync_only and not settings.database_url:
        # SQLite: one bot process per database file, else two processes would both announce.
        ensure_folder(settings.database_path.parent.absolute(), name="DATABASE_PATH")
        try:
            process_lock = ProcessLock.acquire(settings.database_path)
        except DatabaseInUse as error:
            print(f"conversation-engine: {error}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        return await _run_bot_with_database(settings, sync_only=sync_only)
    finally:
        if process_lock is not None:
            process_lock.release()


async def _run_bot_with_database(settings: Settings, *, sync_only: bool) -> int:
    from bot.app import OncePerBot, run_until_stopped
    from cogs import extension_names

    database = await open_database(settings)
    web_server = None
    # The bot's cogs add their pieces; it outlives a bot that could not connect. With PostgreSQL the
    # processes sharing the database elect the one that runs them.
    once_per_bot = OncePerBot(held=settings.database_url is None)
    election = None
    role: BotWideLock | None = None
    if settings.database_url is not None and not sync_only:
        role = BotWideLock(settings.database_url)
        election = asyncio.create_task(once_per_bot.elect(role, settings.tuning.election_interval_seconds))
    try:
        if not sync_only:
            from bot.web.webhooks import WebhookDispatcher

            webhooks = WebhookDispatcher(database, settings)  # blog owners' webhooks, from the outbox
            await once_per_bot.add("webhook delivery", webhooks.start, webhooks.stop)
        if settings.web_port is not None and not sync_only:
            from bot.web import WebServer

            web_server = WebServer(database, settings)  # the blog's comments API, widget and /healthz
            try:
                await web_server.start()
            except OSError as error:
                print(f"conversation-engine: configuration error: {error}", file=sys.stderr)
                return EXIT_CONFIG
        status = await run_until_stopped(settings, database, extensions=extension_names(), sync_only=sync_only,
                                         once_per_bot=once_per_bot,
                                         on_bot=_attach(web_server, role))
    finally:
        if web_server is not None:
            await web_server.stop()
        await once_per_bot.remove("webhook delivery")
        if election is not None:
            election.cancel()
            await asyncio.gather(election, return_exceptions=True)
        await database.close()
    if status == EXIT_OK:
        log.info("stopped cleanly")
    return status


def _attach(web_server: WebServer | None, role: BotWideLock | None) -> Callable[[ConversationBot], None]:
    """What each bot is connected to: the web server gets its gateway status, the poster of blog
    replies and the announcer's wake-up for posts a WebSub push stored; with PostgreSQL, its
    announcer's wake-ups go to (and come from) the other processes, so whichever holds the bot-wide
    role announces what any of them stored."""
    from cogs._reply_discord import DiscordReplies

    def attach(bot: ConversationBot) -> None:
        if web_server is not None:
            web_server.watch_bot(bot)
            web_server.attach_poster(DiscordReplies(bot))
            web_server.attach_announcer(bot.announce_wake.wake)  # a WebSub push announces at once
        if role is not None:
            role.on_told = bot.announce_wake.woken_by_another_process
            bot.announce_wake.tell_other_processes(role.tell_others)

    return attach


if __name__ == "__main__":
    sys.exit(main())
