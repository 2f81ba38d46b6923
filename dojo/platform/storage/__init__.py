"""The platform's database: ``db`` (engine, sessions, the hot path's connections), ``models``
(the tables), ``migrations/`` (Alembic), ``groupcommit`` (SQLite's writers), ``rawsql``
(statements on the driver) and ``state`` (values the platform keeps for itself).
"""
