"""PostgreSQL schema migrations: ``NNNN_name.sql``, numbered 1..N, each applied in one transaction
(bot/storage/postgres.py). Their versions are PostgreSQL's own: version 1 equals the schema the SQLite
migrations 0001..0006 build, and each later file is one later SQLite migration (2 = SQLite 7
feed_filters, 3 = SQLite 8 websub); the newest PostgreSQL version always equals the newest SQLite
schema (tests/test_postgres_schema.py compares them table by table).
"""
