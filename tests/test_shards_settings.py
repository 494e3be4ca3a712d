"""SHARD_COUNT and SHARD_IDS: parsed, checked against each other, shown by ``check``."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from tests.test_foundation_config import GOOD_TOKEN, assert_one_line_exit_2, run_cli


def test_unset_lets_discord_decide() -> None:
    settings = load_settings({}, require_token=False)
    assert settings.shard_count is None and settings.shard_ids is None


def test_count_and_ids_are_read() -> None:
    settings = load_settings({"SHARD_COUNT": "4", "SHARD_IDS": " 2, 0 "}, require_token=False)
    assert settings.shard_count == 4 and settings.shard_ids == (2, 0)
    assert load_settings({"SHARD_COUNT": "2"}, require_token=False).shard_ids is None


@pytest.mark.parametrize(
    ("environment", "variable", "expected"),
    [
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_COUNT": "-1"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0;1"}, "SHARD_IDS", "comma-separated shard ids"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0,,1"}, "SHARD_IDS", "comma-separated shard ids"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "1,1"}, "SHARD_IDS", "distinct"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "0,2"}, "SHARD_IDS", "less than SHARD_COUNT=2"),
        ({"SHARD_IDS": "0"}, "SHARD_IDS", "SHARD_COUNT"),
    ],
)
def test_bad_values_name_the_variable(environment: dict[str, str], variable: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environment, require_token=False)
    message = str(caught.value)
    assert message.startswith(f"{variable}:") and expected in message and "\n" not in message


def test_check_shows_them_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    result = run_cli(tmp_path, {"DISCORD_TOKEN": GOOD_TOKEN, "SHARD_COUNT": "4", "SHARD_IDS": "0,1"}, "check")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines() if line.strip()}
    assert lines["SHARD_COUNT"] == "4" and lines["SHARD_IDS"] == "0,1"
    assert_one_line_exit_2(run_cli(tmp_path, {"DISCORD_TOKEN": GOOD_TOKEN, "SHARD_IDS": "1"}, "check"),
                           "SHARD_IDS", "SHARD_COUNT")
