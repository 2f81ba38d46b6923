"""API keys (a miner's scripts call the task endpoints with them) and subscription keys
(a miner hands them to workers, who add them to see the miner's tasks).

A key is a prefix naming its kind and 256 random bits, returned once by :func:`create_key`
and stored as its SHA-256:

- ``dojo_api_…`` for API keys, ``dojo_sub_…`` for subscription keys. One look tells a
  person (and code: :func:`looks_like_api_key`) which kind a pasted key is, so a worker
  who pastes the miner's API key can be told so instead of "no such key", and a miner
  sees at once that a subscription key does not belong in ``DOJO_API_KEY``. The ``dojo_``
  start says whose secret it is: the old shared ``sk-`` is also OpenAI's key prefix, so
  secret scanners and people mistook one for the other.
- Keys issued before, ``sk-…`` of either kind, keep working: lookups are by hash and kind,
  never by prefix.

Lists show the first :data:`DISPLAY_LENGTH` characters (the prefix column holds 16),
creation and last use, whether the key is disabled, and which API key the running miner
uses (:func:`key_in_use`: the one it used last). Disabling takes effect at once:
every lookup checks ``disabled_at``, nothing is cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from dojo.platform.credentials import hash_secret, new_secret
from dojo.platform.errors import Conflict, NotFound, Unauthorized
from dojo.platform.storage.models import KEY_KIND_API, KEY_KIND_SUBSCRIPTION, ApiKey, Miner
from template.clock import utcnow

API_KEY_PREFIX = "dojo_api_"
SUBSCRIPTION_KEY_PREFIX = "dojo_sub_"
KEY_PREFIXES = {KEY_KIND_API: API_KEY_PREFIX, KEY_KIND_SUBSCRIPTION: SUBSCRIPTION_KEY_PREFIX}
KINDS = tuple(KEY_PREFIXES)
# The prefix and 7 random characters (42 bits): enough to tell keys apart in a list, and
# what fits ``api_keys.prefix`` (16 characters). An old ``sk-`` key shows its first 11.
DISPLAY_LENGTH = 16
MAX_ACTIVE_KEYS = 50
# last_used_at is written at most this often per key, so a busy key does not write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# An API key used this recently is taken for the one the running miner uses: a miner calls
# the platform whenever a validator sends it a task, collects results or reports a score.
IN_USE_WITHIN = timedelta(hours=24)


def display_prefix(key: str) -> str:
    """What a key list shows of a key: its first characters, never enough to use it."""
    return key[:DISPLAY_LENGTH]


def looks_like_api_key(key: str) -> bool:
    """Whether ``key`` is written as an API key (by its prefix; an old ``sk-`` key is
    either kind, so it is not). For telling a worker who pasted one where it belongs."""
    return key.strip().startswith(API_KEY_PREFIX)


def create_key(db: Session, miner: Miner, kind: str) -> tuple[ApiKey, str]:
    """A new key; the returned string is the only time the full key exists outside the caller."""
    assert kind in KINDS
    active = db.execute(
        select(func.count()).where(
            ApiKey.miner_id == miner.id, ApiKey.kind == kind, ApiKey.disabled_at.is_(None)
        )
    ).scalar_one()
    if active >= MAX_ACTIVE_KEYS:
        raise Conflict(f"at most {MAX_ACTIVE_KEYS} active {kind} keys; disable one first")
    key = new_secret(KEY_PREFIXES[kind])
    row = ApiKey(miner_id=miner.id, kind=kind, key_hash=hash_secret(key), prefix=display_prefix(key))
    db.add(row)
    db.flush()
    return row, key


def list_keys(db: Session, miner: Miner, kind: str) -> list[ApiKey]:
    return list(
        db.scalars(select(ApiKey).where(ApiKey.miner_id == miner.id, ApiKey.kind == kind).order_by(ApiKey.id))
    )


def key_in_use(keys: Sequence[ApiKey], now: datetime | None = None) -> int | None:
    """The id of the API key the running miner most likely uses: the active one it used
    last, if within :data:`IN_USE_WITHIN`; else None."""
    now = now or utcnow()
    recent = [
        k
        for k in keys
        if k.kind == KEY_KIND_API
        and k.disabled_at is None
        and k.last_used_at is not None
        and now - k.last_used_at <= IN_USE_WITHIN
    ]
    return max(recent, key=lambda k: (k.last_used_at, k.id)).id if recent else None


def disable_key(db: Session, miner: Miner, kind: str, key_id: int) -> ApiKey:
    row = db.scalar(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.miner_id == miner.id, ApiKey.kind == kind)
    )
    if row is None:
        raise NotFound(f"no {kind} key with id {key_id} among yours")
    if row.disabled_at is None:
        row.disabled_at = utcnow()
    return row


def miner_for_api_key(db: Session, key: str | None) -> Miner:
    """The miner an ``x-api-key`` belongs to; 401 for a missing, unknown or disabled key."""
    if not key:
        raise Unauthorized("send your API key in the x-api-key header (dojo api-key generate)")
    row = db.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(key), ApiKey.kind == KEY_KIND_API))
    if row is None:
        raise Unauthorized("unknown API key")
    if row.disabled_at is not None:
        raise Unauthorized("this API key is disabled; generate a new one")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        db.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    miner = db.get(Miner, row.miner_id)
    assert miner is not None
    return miner


def active_subscription_key(db: Session, key: str) -> ApiKey:
    """The enabled subscription key ``key`` is; 404 otherwise (never says whether it existed)."""
    row = db.scalar(
        select(ApiKey).where(
            ApiKey.key_hash == hash_secret(key),
            ApiKey.kind == KEY_KIND_SUBSCRIPTION,
            ApiKey.disabled_at.is_(None),
        )
    )
    if row is None:
        raise NotFound("no active subscription key matches; check it with the miner")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row
