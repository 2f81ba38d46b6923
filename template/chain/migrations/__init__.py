"""Alembic migrations of the local chain's file, applied by :class:`~template.chain.local.LocalChain` on opening."""
