"""The platform's credentials: session tokens, API and subscription keys, invite tokens.

Each carries 256 random bits after a prefix that says what it is, and is stored as its
SHA-256 (a slow hash buys nothing for secrets this long), so that a copy of the database
lets no one in. The HTTP side of security (CSRF, headers, body caps) is
:mod:`dojo.platform.security`'s.
"""

from __future__ import annotations

import hashlib
import secrets

MINER_TOKEN_PREFIX = "dms_"
WORKER_TOKEN_PREFIX = "dws_"
INVITE_PREFIX = "inv_"


def new_secret(prefix: str) -> str:
    """``prefix`` followed by 256 random bits, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
