"""Settings: every bad value gives one clear line naming the variable, and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.storage.migrate import latest_version

GOOD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789AB"


def run_cli(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bot`` in an empty folder (no .env) with only ``env`` set (plus what Python needs)."""
    environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("ANNOUNCE_CHANNEL_ID", "general", "Discord id"),
        ("ANNOUNCE_CHANNEL_ID", "12345", "Discord id"),
        ("LOG_LEVEL", "LOUD", "one of CRITICAL, ERROR, WARNING, INFO, DEBUG"),
        ("POLL_INTERVAL_SECONDS", "30", "from 60"),
        ("POLL_INTERVAL_SECONDS", "ten", "whole number"),
        ("FEED_URLS", "ftp://blog.example.com/feed", "http:// or https:// URL"),
        ("DISCORD_API_BASE", "discord.com/api", "http:// or https:// URL"),
        ("DISCORD_GATEWAY_URL", "https://gateway.discord.gg", "ws:// or wss:// URL"),
        ("ALLOW_PRIVATE_FEEDS", "maybe", "true or false"),
        ("THREAD_AUTO_ARCHIVE_MINUTES", "90", "one of 60, 1440, 4320, 10080"),
        ("WEB_PORT", "99999", "from 1 to 65535"),
        ("CATCH_UP_DAYS", "0", "whole number from 1 to 365"),
        # Digits of other scripts: int() and float() take some of them, the settings do not.
        ("POLL_INTERVAL_SECONDS", "\u0663\u0660\u0660", "whole number from 60 to 86400"),  # Arabic-Indic 300
        ("WEB_PORT", "8\u00b2", "whole number from 1 to 65535"),  # superscript two
        ("THREAD_AUTO_ARCHIVE_MINUTES", "\u00b2", "one of 60, 1440, 4320, 10080"),
        ("RECONCILE_INTERVAL_HOURS", "\u0663", "number of hours"),
        ("RECONCILE_INTERVAL_HOURS", "1e1", "number of hours"),
        ("ANNOUNCE_CHANNEL_ID", "\u0661" * 18, "Discord id"),
        # Ids are Discord's 64-bit snowflakes: neither 20 digits nor zero.
        ("ANNOUNCE_CHANNEL_ID", "12345678901234567890", "at most 9223372036854775807"),
        ("ANNOUNCE_CHANNEL_ID", "9223372036854775808", "at most 9223372036854775807"),
        ("ANNOUNCE_CHANNEL_ID", "0", "Discord id"),
        ("ANNOUNCE_CHANNEL_ID", "000000000000000000", "Discord id"),
        # URLs urlsplit() cannot split (it raises ValueError) or whose port is not a port.
        ("DISCORD_API_BASE", "http://[::1", "http:// or https:// URL"),
        ("DISCORD_GATEWAY_URL", "ws://[::1/", "ws:// or wss:// URL"),
        ("DISCORD_INVITE_URL", "https://discord.gg:99999/x", "http:// or https:// URL"),
        ("FEED_URLS", "http://[::1", "http:// or https:// URL"),
        ("WEB_ALLOWED_ORIGINS", "https://[blog.example.com", "origins like https://blog.example.com"),
    ],
)
def test_bad_setting_exits_2_with_one_clear_line(tmp_path: Path, variable: str, value: str, expected: str) -> None:
    env = {"DISCORD_TOKEN": GOOD_TOKEN, variable: value}
    if variable == "FEED_URLS":
        env["ANNOUNCE_CHANNEL_ID"] = "123456789012345678"
    result = run_cli(tmp_path, env, "check")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0] and expected in lines[0] and repr(value) in lines[0]
    assert "Traceback" not in result.stderr
    assert GOOD_TOKEN not in result.stderr + result.stdout


def test_missing_token_explains_how_to_get_one(tmp_path: Path) -> None:
    result = run_cli(tmp_path, {}, "run")
    assert result.returncode == 2
    assert "DISCORD_TOKEN" in result.stderr
    assert "developers/applications" in result.stderr and "README" in result.stderr
    assert "Traceback" not in result.stderr


def test_feed_urls_without_channel_is_refused() -> None:
    with pytest.raises(ConfigError, match="ANNOUNCE_CHANNEL_ID"):
        load_settings({"FEED_URLS": "https://blog.example.com/feed"}, require_token=False)


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(f"DISCORD_TOKEN={GOOD_TOKEN}\nLOG_LEVEL=LOUD\nPOLL_INTERVAL_SECONDS=120\n")
    result = run_cli(tmp_path, {}, "--env-file", str(env_file), "check")
    assert result.returncode == 2 and "LOG_LEVEL" in result.stderr
    result = run_cli(tmp_path, {"LOG_LEVEL": "debug"}, "--env-file", str(env_file), "check")
    assert result.returncode == 0, result.stderr
    assert "POLL_INTERVAL_SECONDS" in result.stdout and "120" in result.stdout
    assert GOOD_TOKEN not in result.stdout


def test_defaults_and_lists() -> None:
    settings = load_settings({
        "FEED_URLS": "https://a.example/feed,  https://b.example/rss\nhttps://c.example/atom",
        "ANNOUNCE_CHANNEL_ID": "123456789012345678",
        "WEB_ALLOWED_ORIGINS": "https://Blog.Example.com/ http://localhost:8000",
    }, require_token=False)
    assert settings.feed_urls == ("https://a.example/feed", "https://b.example/rss", "https://c.example/atom")
    assert settings.poll_interval_seconds == 600
    assert str(settings.database_path) == "data/conversation.db"
    assert settings.web_allowed_origins == ("https://blog.example.com", "http://localhost:8000")
    assert settings.allow_private_feeds is False
    assert settings.catch_up_days == 7
    assert load_settings({"CATCH_UP_DAYS": "30"}, require_token=False).catch_up_days == 30


def test_token_never_in_repr() -> None:
    settings = Settings(discord_token=GOOD_TOKEN)
    assert GOOD_TOKEN not in repr(settings) and GOOD_TOKEN not in str(settings)


def test_check_creates_nothing_and_migrate_creates_the_folder(tmp_path: Path) -> None:
    env = {"DATABASE_PATH": str(tmp_path / "nested" / "db" / "conversation.db")}
    assert run_cli(tmp_path, env, "check").returncode == 0
    assert not (tmp_path / "nested").exists()
    result = run_cli(tmp_path, env, "migrate")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nested" / "db" / "conversation.db").is_file()
    result = run_cli(tmp_path, env, "check")
    assert result.returncode == 0, result.stderr
    assert "engine SQLite 3." in result.stdout
    assert f", schema version {latest_version()}, up to date; integrity ok" in result.stdout


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_non_utf8_env_file_is_one_line(tmp_path: Path) -> None:
    env_file = tmp_path / "latin1.env"
    env_file.write_bytes(f"DISCORD_TOKEN={GOOD_TOKEN}\nDISCORD_INVITE_URL=https://caf\xe9.example/\n".encode("latin-1"))
    line = assert_one_line_exit_2(run_cli(tmp_path, {}, "--env-file", str(env_file), "check"),
                                  "--env-file", str(env_file), "UTF-8")
    assert GOOD_TOKEN not in line


def test_a_missing_env_file_is_an_error_but_a_missing_default_env_is_not(tmp_path: Path) -> None:
    missing = tmp_path / "typo.env"
    assert_one_line_exit_2(run_cli(tmp_path, {}, "--env-file", str(missing), "check"), "--env-file", str(missing))
    assert_one_line_exit_2(run_cli(tmp_path, {}, "--env-file", str(tmp_path), "check"), "--env-file")
    assert not (tmp_path / ".env").exists()
    result = run_cli(tmp_path, {}, "check")
    assert result.returncode == 0, result.stderr
    (tmp_path / ".env").write_text("POLL_INTERVAL_SECONDS=120\n", encoding="utf-8")
    result = run_cli(tmp_path, {}, "check")
    assert result.returncode == 0 and "120" in result.stdout, result.stderr


def test_folders_that_cannot_be_created_are_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    assert_one_line_exit_2(run_cli(tmp_path, {"DATABASE_PATH": str(blocker / "db" / "conversation.db")}, "migrate"),
                           "DATABASE_PATH", str(blocker / "db"))
    database = tmp_path / "conversation.db"
    env = {"DATABASE_PATH": str(database)}
    assert run_cli(tmp_path, env, "migrate").returncode == 0
    assert_one_line_exit_2(run_cli(tmp_path, env, "backup", str(blocker / "copies" / "copy.db")),
                           "backup", str(blocker / "copies"))
    assert_one_line_exit_2(run_cli(tmp_path, env, "export", "-o", str(blocker / "out" / "comments.json")),
                           "export -o", str(blocker / "out"))
    assert_one_line_exit_2(run_cli(tmp_path, env, "backup", str(tmp_path)), "backup", "is a folder")
    assert blocker.read_text(encoding="utf-8") == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_folders_that_cannot_be_written_are_one_line(tmp_path: Path) -> None:
    database = tmp_path / "conversation.db"
    env = {"DATABASE_PATH": str(database)}
    assert run_cli(tmp_path, env, "migrate").returncode == 0
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_one_line_exit_2(run_cli(tmp_path, {"DATABASE_PATH": str(locked / "conversation.db")}, "migrate"),
                               "DATABASE_PATH", "not writable")
        assert_one_line_exit_2(run_cli(tmp_path, env, "backup", str(locked / "copy.db")), "backup", "not writable")
        assert_one_line_exit_2(run_cli(tmp_path, env, "export", "-o", str(locked / "out.json")),
                               "export -o", "not writable")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]"])
def test_listening_on_every_address_is_warned_about(tmp_path: Path, host: str) -> None:
    result = run_cli(tmp_path, {"WEB_PORT": "8080", "WEB_HOST": host}, "check")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and f"WEB_HOST={host}" in warnings[0] and "other machines" in warnings[0]


def test_listening_on_loopback_is_not_warned_about(tmp_path: Path) -> None:
    for env in ({"WEB_PORT": "8080"}, {"WEB_PORT": "8080", "WEB_HOST": "::1"}, {"WEB_HOST": "0.0.0.0"}):
        result = run_cli(tmp_path, env, "check")
        assert result.returncode == 0 and "WARNING" not in result.stderr, (env, result.stderr)
