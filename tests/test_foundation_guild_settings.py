"""Per-guild settings follow the environment until an admin changes them."""

from __future__ import annotations

from pathlib import Path

from bot.announce.admin import get_guild_settings, update_guild_settings
from bot.config import Settings
from bot.storage import Database, utcnow
from bot.storage.announcements import guild_overrides
from bot.storage.comments import claim_intent_warning
from tests.conftest import BOTH_ENGINES

pytestmark = BOTH_ENGINES  # the storage contract: SQLite and PostgreSQL

GUILD = 111111111111111111


async def test_a_guild_row_made_for_other_reasons_does_not_freeze_the_defaults(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / "conversation.db")
    try:
        assert await database.write(claim_intent_warning(GUILD, utcnow())) is True
        settings = Settings(discord_token="", announcements_per_cycle=3, thread_auto_archive_minutes=1440)
        current = await get_guild_settings(database, GUILD, settings)
        assert (current.announcements_per_cycle, current.thread_auto_archive_minutes) == (3, 1440)
        assert current.customised is False
        assert await guild_overrides(database) == {}

        changed = await update_guild_settings(database, GUILD, settings, announcements_per_cycle=7)
        assert (changed.announcements_per_cycle, changed.thread_auto_archive_minutes) == (7, 1440)
        later = Settings(discord_token="", announcements_per_cycle=3, thread_auto_archive_minutes=60)
        assert (await get_guild_settings(database, GUILD, later)).thread_auto_archive_minutes == 60
        overrides = await guild_overrides(database)
        assert overrides[GUILD].announcements_per_cycle == 7
        assert overrides[GUILD].thread_auto_archive_minutes is None
    finally:
        await database.close()
