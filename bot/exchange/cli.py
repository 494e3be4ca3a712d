"""``conversation-engine export`` and ``conversation-engine import`` (wired in by ``bot.__main__``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TextIO

from bot.config import Settings, redact_url
from bot.exchange.export import collect_export, export_json, export_wxr
from bot.exchange.importers import (
    ImportFileError,
    ImportReport,
    match_threads,
    parse_disqus,
    parse_wxr,
    store_matched,
)
from bot.exchange.progress import Progress
from bot.storage import blog
from bot.storage.copies import check_destination, ensure_folder, write_text
from bot.storage.db import utcnow
from bot.storage.postgres_engine import open_database
from bot.storage.sql import DATABASE_ERRORS
from bot.web.urls import BadUrl, canonical_post_url

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2  # the file to import is missing, not an export, or broken
MAX_SKIPPED_SHOWN = 20
EXPORT_OUTPUT = "export -o"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser("export", help="write the posts' comments as JSON or WordPress WXR")
    export.add_argument("--format", choices=("json", "wxr"), default="json",
                        help="json (everything we store) or wxr (WordPress: Tools > Import > WordPress)")
    export.add_argument("--post", metavar="URL", help="only the post with this link")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here instead of stdout")
    import_ = commands.add_parser("import", help="add old blog comments from a WordPress or Disqus export")
    import_.add_argument("--format", choices=("wxr", "disqus"), required=True,
                         help="wxr (WordPress Tools > Export) or disqus (Disqus Admin > Export)")
    import_.add_argument("file", type=Path, metavar="FILE", help="the export file (XML)")


async def run_command(command: str, args: argparse.Namespace, settings: Settings) -> int:
    if command == "export":
        return await export_command(settings, fmt=args.format, post_url=args.post, output=args.output)
    if command == "import":
        return await import_command(settings, fmt=args.format, path=args.file)
    print(f"conversation-engine: unknown command {command!r}", file=sys.stderr)
    return EXIT_FAILURE


def _fail(message: str) -> int:
    print(f"conversation-engine: {message}", file=sys.stderr)
    return EXIT_FAILURE


async def export_command(settings: Settings, *, fmt: str, post_url: str | None, output: Path | None,
                         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    if not settings.database_url and not settings.database_path.exists():
        return _fail(f"no database at {settings.database_path} (DATABASE_PATH): nothing to export")
    if output is not None:  # refused (UnusablePath, exit 2) before any work
        check_destination(output, database_path=settings.database_path, command=EXPORT_OUTPUT)
    database = await open_database(settings.database_path, settings.database_url)
    try:
        if post_url is not None:
            try:
                canonical = canonical_post_url(post_url)
            except BadUrl as error:
                return _fail(f"--post: {error}")
            post = await blog.post_by_url(database, canonical)
            if post is None:
                return _fail(f"--post: no post with the link {canonical} is known to the bot")
            posts = [post]
        else:
            posts = await blog.all_posts(database)
        progress = Progress("exporting posts", len(posts), stream=stderr)
        exported = await collect_export(database, posts, progress.update)
        progress.close()
    finally:
        await database.close()
    now = utcnow()
    text = export_json(exported, exported_at=now) if fmt == "json" else export_wxr(exported, exported_at=now)
    comments = sum(len(item.comments) for item in exported)
    if output is None:
        (stdout or sys.stdout).write(text)
    else:
        try:
            await asyncio.to_thread(write_text, output, text, command=EXPORT_OUTPUT,
                                    database_path=settings.database_path)
        except OSError as error:
            return _fail(f"{EXPORT_OUTPUT}: could not write {output} ({error.strerror or error}); "
                         "an existing file there was left as it was")
    summary = f"exported {len(exported)} post(s) and {comments} comment(s) as {fmt.upper()}"
    print(summary + (f" to {output}" if output else ""), file=stderr or sys.stderr)
    return EXIT_OK


async def import_command(settings: Settings, *, fmt: str, path: Path, stdout: TextIO | None = None,
                         stderr: TextIO | None = None) -> int:
    """Read the whole file first (a broken one is refused before the database is touched), then
    store every matched thread in one transaction: all of it or, on any error, nothing."""
    size = await asyncio.to_thread(_file_size, path)
    if size is None:
        return _bad_input(f"cannot read {path}: no such file")
    reading = Progress(f"reading {path.name}", size, stream=stderr, unit="B")
    parser = parse_wxr if fmt == "wxr" else parse_disqus
    try:
        parsed = await asyncio.to_thread(parser, path, reading.update)
    except ImportFileError as error:
        reading.close()
        return _bad_input(str(error))
    except OSError as error:
        reading.close()
        return _bad_input(f"cannot read {path}: {error.strerror or error}")
    reading.close()
    if not settings.database_url:
        ensure_folder(settings.database_path.parent.absolute(), name="DATABASE_PATH")
    with parsed:
        database = await open_database(settings.database_path, settings.database_url)
        try:
            matches, report = await match_threads(database, parsed)
            storing = Progress("storing comments", sum(thread.comments for _, thread in matches), stream=stderr)
            try:
                await store_matched(database, parsed, matches, report, storing.update)
            except DATABASE_ERRORS as error:
                where = redact_url(settings.database_url) if settings.database_url else settings.database_path
                return _fail(f"the import failed and added nothing (database {where}): {error}")
            finally:
                storing.close()
        finally:
            await database.close()
    print(format_report(report, fmt), file=stdout or sys.stdout)
    return EXIT_OK


def _bad_input(message: str) -> int:
    _fail(message)
    return EXIT_BAD_INPUT


def _file_size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def format_report(report: ImportReport, fmt: str) -> str:
    lines = [
        f"{fmt.upper()} import: {report.threads} thread(s) with comments, {report.matched} matched a known post.",
        f"  comments added: {report.added}; already present (not added again): {report.already_present}",
    ]
    if report.skipped_comments:
        lines.append(f"  comments skipped as spam, pingbacks or trackbacks: {report.skipped_comments}")
    if report.orphan_comments:
        lines.append(f"  comments skipped because their thread is not in the file: {report.orphan_comments}")
    if report.skipped_threads:
        lines.append(f"  threads skipped, no post with that link is known to the bot: {len(report.skipped_threads)} "
                     f"({report.unmatched_comments} comment(s)):")
        for thread in report.skipped_threads[:MAX_SKIPPED_SHOWN]:
            title = f" ({thread.title})" if thread.title else ""
            lines.append(f"    {thread.link}{title}: {thread.comments} comment(s)")
        if len(report.skipped_threads) > MAX_SKIPPED_SHOWN:
            lines.append(f"    ... and {len(report.skipped_threads) - MAX_SKIPPED_SHOWN} more")
        lines.append("  (posts are known once the bot has read them from the feed; import again afterwards)")
    lines.extend(f"  note: {note}" for note in report.notes)
    lines.append("Imported comments show on the blog and in the API; nothing was posted to Discord.")
    return "\n".join(lines)
