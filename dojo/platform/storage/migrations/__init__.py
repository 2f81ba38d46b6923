"""Alembic migrations of the platform database, applied by ``dojo platform migrate`` and at start."""
