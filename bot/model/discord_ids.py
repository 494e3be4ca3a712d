"""Discord ids (snowflakes) are time-ordered: the milliseconds since Discord's epoch, shifted left."""

from __future__ import annotations

from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000
TIMESTAMP_SHIFT = 22  # the low 22 bits are worker, process and increment


def snowflake_time(snowflake: int) -> datetime:
    """When a Discord id was made (ids are time-ordered)."""
    return datetime.fromtimestamp(((snowflake >> TIMESTAMP_SHIFT) + DISCORD_EPOCH_MS) / 1000, tz=UTC)


def snowflake_floor(moment: datetime) -> int:
    """The smallest Discord id made at or after ``moment`` (ids grow with time)."""
    return max(0, (int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << TIMESTAMP_SHIFT)
