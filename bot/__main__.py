"""Command line: ``conversation-engine [--env-file PATH] [run|check|migrate|backup|sync-commands|...]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import __version__
from bot.config import ConfigError, Settings, configure_logging, load_settings, read_environment
from bot.storage import Database, MigrationError
from bot.storage.migrate import current_version, latest_version

log = logging.getLogger("bot")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conversation-engine",
        description="Announce a blog's posts in Discord, one thread each, and keep the threads as comments.",
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"),
                        help="file of settings to load (default: .env in the current folder)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="connect to Discord and run the bot (the default)")
    commands.add_parser("check", help="validate the settings and the database, print a summary, do not connect")
    commands.add_parser("migrate", help="create the database or bring it to the newest schema")
    backup = commands.add_parser("backup", help="write a consistent copy of the database (safe while the bot runs)")
    backup.add_argument("path", type=Path, help="where to write the copy")
    commands.add_parser("sync-commands", help="register the slash commands with Discord now")
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
    environment = read_environment(os.environ, args.env_file)
    try:
        settings = load_settings(environment, require_token=command in ("run", "sync-commands"))
    except ConfigError as error:
        print(f"conversation-engine: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level)
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
        from bot.exchange.cli import run_command

        return asyncio.run(run_command(command, args, settings))
    except MigrationError as error:
        print(f"conversation-engine: database error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except sqlite3.Error as error:
        print(f"conversation-engine: database error at {settings.database_path}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


async def check(settings: Settings) -> int:
    for name, value in settings.summary():
        print(f"{name:<28} {value}")
    path = settings.database_path
    if path.exists():
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = current_version(connection)
            integrity = connection.execute("PRAGMA quick_check").fetchone()[0]
            counts = {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                      for table in ("feeds", "posts", "comments")} if version else {}
        finally:
            connection.close()
        newest = latest_version()
        state = "up to date" if version == newest else (
            f"needs `migrate` (at {version}, newest {newest})" if version < newest
            else f"NEWER than this code ({version} > {newest})")
        print(f"{'database':<28} {path}: schema {state}; integrity {integrity}")
        if counts:
            print(f"{'contents':<28} " + ", ".join(f"{count} {table}" for table, count in counts.items()))
        if version > newest or integrity != "ok":
            return EXIT_FAILURE
    else:
        print(f"{'database':<28} {path}: does not exist yet (created by `run` or `migrate`)")
    print("settings OK")
    return EXIT_OK


async def migrate(settings: Settings) -> int:
    database = await Database.open(settings.database_path)
    await database.close()
    print(f"database {settings.database_path} is at schema version {latest_version()}")
    return EXIT_OK


async def backup(settings: Settings, destination: Path) -> int:
    if not settings.database_path.exists():
        print(f"conversation-engine: no database at {settings.database_path} (DATABASE_PATH)", file=sys.stderr)
        return EXIT_FAILURE
    from bot.storage.db import backup_database

    await asyncio.to_thread(backup_database, settings.database_path, destination)
    print(f"backed up {settings.database_path} to {destination}")
    return EXIT_OK


async def run_bot(settings: Settings, *, sync_only: bool = False) -> int:
    import discord

    from bot.app import ConversationBot, point_discord_at

    point_discord_at(settings.discord_api_base, settings.discord_gateway_url)
    database = await Database.open(settings.database_path)
    try:
        bot = ConversationBot(settings, database, sync_mode="force" if sync_only else "auto")
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
            except (NotImplementedError, RuntimeError):  # not on the main thread / platform
                pass
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
            return EXIT_CONFIG
        except discord.PrivilegedIntentsRequired:
            print("conversation-engine: configuration error: the Message Content intent is not enabled. "
                  "Open https://discord.com/developers/applications > your app > Bot > Privileged Gateway "
                  "Intents and switch on MESSAGE CONTENT INTENT, then start the bot again.", file=sys.stderr)
            return EXIT_CONFIG
    finally:
        await database.close()
    log.info("stopped cleanly")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
