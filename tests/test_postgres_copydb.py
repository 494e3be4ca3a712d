"""PostgreSQL from the command line, against a real server: `migrate` and `check` with DATABASE_URL,
`copy-db` of a realistic SQLite database (row by row, every table, ids and sequences kept, the
SQLite file untouched), refusals (a non-empty target, bad URLs, an unreachable server, `run`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from pathlib import Path

import asyncpg
import pytest

from bot.__main__ import main
from bot.config import load_settings
from bot.storage import Database
from bot.storage import webhooks as webhook_store
from bot.storage.copydb import COPIED_TABLES
from bot.storage.db import connect_sync
from bot.storage.migrate import apply_migrations, available_migrations, latest_version
from bot.storage.postgres import latest_postgresql_version
from bot.storage.postgres_engine import open_postgresql
from tests.postgres_support import (
    WEBHOOK,
    build_realistic_database,
    postgresql_tables,
    sqlite_tables,
)
from tests.test_exchange_import import FIRST, FIXTURES
from tests.web_support import add_post, next_id


@pytest.fixture
def env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty settings file (nothing from the developer's .env), the SQLite database in tmp_path."""
    path = tmp_path / "empty.env"
    path.write_text("", encoding="utf-8")
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "conversation.db"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path


def with_password(url: str, password: str) -> str:
    """The same database with a password in the URL (the test server trusts 127.0.0.1 and ignores it)."""
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@", 1)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def fetch_value(url: str, query: str) -> object:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def test_migrate_and_check_on_postgresql(postgresql_url: str, env_file: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    url = with_password(postgresql_url, "s3cret-pw")
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["--env-file", str(env_file), "check"]) == 0
    before = capsys.readouterr().out
    assert "engine PostgreSQL 15" in before or "engine PostgreSQL" in before
    assert f"schema version 0, needs `migrate` (newest {latest_postgresql_version()})" in before

    assert main(["--env-file", str(env_file), "migrate"]) == 0
    assert main(["--env-file", str(env_file), "migrate"]) == 0  # nothing left to do: the same answer
    migrated = capsys.readouterr().out
    assert migrated.count(f"(PostgreSQL) is at schema version {latest_postgresql_version()}") == 2

    assert main(["--env-file", str(env_file), "check"]) == 0
    after = capsys.readouterr().out
    assert f"schema version {latest_postgresql_version()}, up to date" in after
    assert "0 feeds, 0 posts, 0 comments" in after
    assert "settings OK" in after
    for output in (before, migrated, after):
        assert "s3cret-pw" not in output
    assert "postgres:***@127.0.0.1" in after


def test_check_reports_the_sqlite_engine_without_database_url(env_file: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env-file", str(env_file), "migrate"]) == 0
    assert main(["--env-file", str(env_file), "check"]) == 0
    output = capsys.readouterr().out
    assert "(none: SQLite at DATABASE_PATH)" in output
    assert "engine SQLite 3." in output and "up to date; integrity ok" in output


def test_copy_db_copies_every_row_of_every_table(postgresql_url: str, env_file: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "conversation.db"
    asyncio.run(build_realistic_database(source))
    digest = file_digest(source)
    expected = sqlite_tables(source)
    assert all(expected[table] for table in COPIED_TABLES), "the test database should fill every table"

    assert main(["--env-file", str(env_file), "copy-db", "--to", with_password(postgresql_url, "hunter2")]) == 0
    captured = capsys.readouterr()
    assert "hunter2" not in captured.out + captured.err
    assert captured.err == ""  # no progress bar: stderr is not a terminal
    lines = captured.out.splitlines()
    for table in COPIED_TABLES:
        count = len(expected[table])
        assert f"{table:<20} {count} rows in SQLite, {count} in PostgreSQL: verified" in lines
    assert lines[-1].startswith(f"copied {source} into postgresql://postgres:***@")

    copied = asyncio.run(postgresql_tables(postgresql_url))
    for table in COPIED_TABLES:
        assert copied[table] == expected[table], f"table {table} differs after the copy"
    assert file_digest(source) == digest, "copy-db must never write the SQLite database"

    async def after_the_copy() -> None:
        connection = await asyncpg.connect(postgresql_url)
        try:
            # Search documents for every post and comment; the search finds accented words unaccented.
            assert await connection.fetchval("SELECT count(*) FROM posts_fts") == len(expected["posts"])
            assert await connection.fetchval("SELECT count(*) FROM comments_fts") == len(expected["comments"])
            assert await connection.fetchval(
                "SELECT count(*) FROM posts_fts WHERE document @@ to_tsquery('conversation_search', 'cafe')") > 0
            # The GIN indexes' pending lists were merged: nothing left to merge.
            assert await connection.fetchval("SELECT gin_clean_pending_list('comments_fts_document')") == 0
            # Schema 8's rows: the filters, the post a filter dropped, every state of WebSub subscription.
            assert await connection.fetchval("SELECT count(*) FROM feed_filters") == 2
            assert await connection.fetchval(
                "SELECT count(*) FROM announcements WHERE filtered = 1 AND state = 'skipped'") == 1
            states = await connection.fetch(
                "SELECT state, feed_id IS NULL AS retired FROM websub_subscriptions ORDER BY id")
            assert [(row["state"], row["retired"]) for row in states] == [
                ("live", False), ("unsubscribing", True), ("failed", False)]
            # New rows get ids past the copied ones; the outbox past every id SQLite ever gave.
            for table in ("feeds", "posts", "announcements", "comment_revisions", "attachments",
                          "websub_subscriptions"):
                highest = await connection.fetchval(f"SELECT max(id) FROM {table}")
                sequence = await connection.fetchval("SELECT pg_get_serial_sequence($1, 'id')", table)
                assert await connection.fetchval("SELECT nextval($1::regclass)", sequence) == highest + 1
            outbox_sequence = await connection.fetchval("SELECT pg_get_serial_sequence('webhook_outbox', 'id')")
            highest_event = max(row[0] for row in expected["webhook_outbox"])
            assert await connection.fetchval("SELECT nextval($1::regclass)", outbox_sequence) == highest_event + 1
            # The triggers are on again: a new comment bumps its post's version and fills the outbox.
            post_id, thread_id = expected["threads"][0][1], expected["threads"][0][0]
            version = await connection.fetchval("SELECT version FROM posts WHERE id = $1", post_id)
            await connection.execute(
                "INSERT INTO comments (message_id, post_id, thread_id, author_id, author_name, created_at) "
                "VALUES (1, $1, $2, 5, 'Eve', '2026-03-02T00:00:00.000000+00:00')", post_id, thread_id)
            assert await connection.fetchval("SELECT version FROM posts WHERE id = $1", post_id) == version + 1
            assert await connection.fetchval(
                "SELECT type FROM webhook_outbox WHERE message_id = 1") == "comment.created"
            assert await connection.fetchval("SELECT url FROM webhook_targets") == WEBHOOK
        finally:
            await connection.close()

    asyncio.run(after_the_copy())


def test_copy_db_continues_outbox_ids_past_every_id_sqlite_gave(postgresql_url: str, env_file: Path,
                                                                 tmp_path: Path) -> None:
    source = tmp_path / "conversation.db"

    async def deliver_every_event() -> int:
        await build_realistic_database(source)
        database = await Database.open(source)
        try:
            newest = int(await database.fetch_value("SELECT max(id) FROM webhook_outbox"))
            await database.write(webhook_store.mark_done(WEBHOOK, newest))  # every event pruned
            assert await database.fetch_value("SELECT count(*) FROM webhook_outbox") == 0
            return newest
        finally:
            await database.close()

    newest = asyncio.run(deliver_every_event())
    assert main(["--env-file", str(env_file), "copy-db", "--to", postgresql_url]) == 0
    # The webhook cursor says "done up to newest": a reused id would never be delivered.
    assert asyncio.run(fetch_value(
        postgresql_url, "SELECT nextval(pg_get_serial_sequence('webhook_outbox', 'id'))")) == newest + 1


def test_copy_db_refuses_a_target_that_is_not_empty(postgresql_url: str, env_file: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(build_realistic_database(tmp_path / "conversation.db"))
    assert main(["--env-file", str(env_file), "copy-db", "--to", postgresql_url]) == 0
    capsys.readouterr()
    posts = asyncio.run(fetch_value(postgresql_url, "SELECT count(*) FROM posts"))

    assert main(["--env-file", str(env_file), "copy-db", "--to", postgresql_url]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "the target database is not empty: its table meta holds 1 row(s)" in error
    assert asyncio.run(fetch_value(postgresql_url, "SELECT count(*) FROM posts")) == posts  # nothing added


def test_copy_db_refuses_a_database_with_tables_of_its_own(postgresql_url: str, env_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(build_realistic_database(tmp_path / "conversation.db"))
    asyncio.run(fetch_value(postgresql_url, "CREATE TABLE invoices (id bigint)"))
    assert main(["--env-file", str(env_file), "copy-db", "--to", postgresql_url]) == 2
    error = capsys.readouterr().err
    assert "not empty: it has tables of its own (invoices)" in error
    assert asyncio.run(fetch_value(postgresql_url, "SELECT to_regclass('posts')")) is None  # not migrated


def test_copy_db_without_a_sqlite_database(postgresql_url: str, env_file: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env-file", str(env_file), "copy-db", "--to", postgresql_url]) == 2
    assert "no SQLite database at" in capsys.readouterr().err


def test_copy_db_refuses_a_sqlite_database_of_an_older_schema(postgresql_url: str, env_file: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    connection = connect_sync(tmp_path / "conversation.db")
    try:
        apply_migrations(connection, available_migrations()[:-1])
    finally:
        connection.close()
    assert main(["--env-file", str(env_file), "copy-db", "--to", postgresql_url]) == 2
    error = capsys.readouterr().err
    assert f"is at schema version {latest_version() - 1}" in error and "run `conversation-engine migrate`" in error
    assert asyncio.run(fetch_value(postgresql_url, "SELECT to_regclass('posts')")) is None


@pytest.mark.parametrize("value", [
    "mysql://root:topsecret@db.example/conversation",
    "topsecret",
    "https://user:topsecret@db.example/conversation",
])
def test_a_database_url_that_is_not_postgresql_is_a_settings_error(
        value: str, env_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", value)
    assert main(["--env-file", str(env_file), "check"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("conversation-engine: configuration error: DATABASE_URL")
    assert "postgresql://" in error and error.count("\n") == 1
    assert "topsecret" not in error


def test_copy_db_refuses_a_target_that_is_not_a_postgresql_url(env_file: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env-file", str(env_file), "copy-db", "--to", "sqlite:///tmp/other.db"]) == 2
    error = capsys.readouterr().err
    assert "copy-db --to" in error and "postgresql://" in error and error.count("\n") == 1


def test_an_unreachable_server_is_one_line(env_file: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:pw-not-shown@127.0.0.1:{port}/conversation")
    assert main(["--env-file", str(env_file), "migrate"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"conversation-engine: database error at postgresql://app:***@127.0.0.1:{port}/")
    assert error.count("\n") == 1 and "pw-not-shown" not in error


def test_backup_with_database_url_points_to_postgresqls_own_tools(
        env_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@127.0.0.1:5432/conversation")
    assert main(["--env-file", str(env_file), "backup", str(tmp_path / "copy.db")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "backup works on the SQLite file (DATABASE_PATH), but DATABASE_URL is set" in error
    assert "pg_dump" in error and "pw" not in error.replace("pg_dump", "")
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://app:s3cr%40t@db.example:5432/conversation", "postgresql://app:***@db.example:5432/conversation"),
    ("postgres://app@db.example/conversation?password=s3cr%40t&sslmode=require",
     "postgres://app@db.example/conversation?password=***&sslmode=require"),
    ("postgresql:///conversation?host=/run/postgresql", "postgresql:///conversation?host=/run/postgresql"),
])
def test_database_url_is_accepted_and_shown_without_its_password(url: str, shown: str) -> None:
    settings = load_settings({"DATABASE_URL": url}, require_token=False)
    assert settings.database_url == url
    assert dict(settings.summary())["DATABASE_URL"] == shown
    assert "s3cr" not in repr(settings)


def test_import_and_export_on_postgresql(postgresql_url: str, env_file: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", postgresql_url)
    assert main(["--env-file", str(env_file), "migrate"]) == 0

    async def seed() -> None:
        database = await open_postgresql(postgresql_url)
        try:
            await add_post(database, FIRST, "First post", thread_id=next_id())
        finally:
            await database.close()

    asyncio.run(seed())
    capsys.readouterr()
    assert main(["--env-file", str(env_file), "import", "--format", "wxr", str(FIXTURES / "small.wxr.xml")]) == 0
    assert "added" in capsys.readouterr().out
    assert main(["--env-file", str(env_file), "export", "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    authors = [comment["author"]["name"] for post in exported["posts"] for comment in post["comments"]]
    assert {"Alice", "Bob"} <= set(authors)
    assert not (env_file.parent / "conversation.db").exists()  # nothing went to the SQLite file
