"""Alembic migrations of the synthetic service's database."""
