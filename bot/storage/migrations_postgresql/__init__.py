"""PostgreSQL schema migrations: ``NNNN_name.sql``, numbered 1..N, each applied in one transaction
(bot/storage/postgres.py). Version 1 equals the schema the SQLite migrations 0001..0006 build."""
