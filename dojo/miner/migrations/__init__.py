"""Alembic migrations of the miner database, applied by the miner at start."""
