"""SQLite storage: the database object, migrations, and one module of typed queries per domain."""

from bot.storage.db import Database, WriteQueue, from_db_time, to_db_time, utcnow
from bot.storage.migrate import MigrationError

__all__ = ["Database", "MigrationError", "WriteQueue", "from_db_time", "to_db_time", "utcnow"]
