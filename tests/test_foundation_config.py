"""Settings: every bad value gives one clear line naming the variable, and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings

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
    assert result.returncode == 0 and "schema up to date" in result.stdout
