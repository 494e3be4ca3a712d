"""SQLite storage: the database object, migrations, and one module of typed queries per domain."""

from bot.storage.db import Database, utcnow
from bot.storage.migrate import MigrationError

__all__ = ["Database", "MigrationError", "utcnow"]
