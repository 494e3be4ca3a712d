"""PostgreSQL schema migrations: ``NNNN_name.sql``, numbered 1..N, each applied in one transaction
(bot/storage/postgres.py). Their versions are PostgreSQL's own: version 1 equals the schema the SQLite
migrations 0001..0006 build, 2 = SQLite 7 (feed_filters), 3 = SQLite 8 (websub); 4 changes only what
PostgreSQL alone has (the weighted post search documents). The newest PostgreSQL version always has the tables and columns of the newest
SQLite schema (tests/test_postgres_schema.py compares them table by table).
"""
