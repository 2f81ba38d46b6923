"""Alembic migrations of the nonce store's file, applied by :class:`~template.transport.nonces.SQLiteNonceStore` on opening."""
