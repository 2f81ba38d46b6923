"""Alembic migrations of the validator's task database."""
