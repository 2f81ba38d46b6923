"""Log-in for miners (sr25519 hotkey signature) and workers (EIP-191 wallet signature or an
invite link), and the sessions they open.

Both signature log-ins are a challenge: the platform issues a single-use nonce that expires
(``nonce_ttl_seconds``, 5 minutes by default) inside a message binding the platform's public
URL, the subject and the expiry; the client signs that exact text; the platform verifies the
signature against the stored message, consumes the nonce with a conditional UPDATE (so a
replay, even a concurrent one, fails), and opens a session. Session tokens are returned once
and stored hashed.

Functions take an open SQLAlchemy session; the caller owns the transaction
(``Database.session()``). Errors are :mod:`dojo.platform.errors`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from bittensor import sp_core
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import is_address, to_checksum_address
from loguru import logger
from sqlalchemy import CursorResult, Update, select, update
from sqlalchemy.orm import Session

from commons.dojo_wire import iso
from commons.platform_contract import LOGIN_MESSAGE_HEADER
from dojo.platform.credentials import (
    INVITE_PREFIX,
    MINER_TOKEN_PREFIX,
    WORKER_TOKEN_PREFIX,
    hash_secret,
    new_secret,
)
from dojo.platform.errors import Forbidden, Gone, Invalid, NotFound, Unauthorized
from dojo.platform.services.registry import HotkeyRegistry
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.models import (
    Invite,
    LoginNonce,
    Miner,
    MinerSession,
    Subscription,
    Worker,
    WorkerSession,
)
from dojo.platform.storage.rawsql import RawStatement
from template.clock import utcnow
from template.log import quoted

MINER = "miner"
WORKER = "worker"


@dataclass(frozen=True)
class Challenge:
    nonce: str
    expires_at: datetime
    message: str


@dataclass(frozen=True)
class OpenedSession:
    token: str
    expires_at: datetime


def _expiry(settings: PlatformSettings) -> datetime:
    return (utcnow() + timedelta(seconds=settings.nonce_ttl_seconds)).replace(microsecond=0)


# --- miners ------------------------------------------------------------------------------------


def check_hotkey(hotkey: str) -> str:
    try:
        sp_core.Keypair(ss58_address=hotkey)
    except ValueError as exc:
        raise Invalid(f"hotkey {hotkey!r} is not an SS58 address: {exc}") from None
    return hotkey


def miner_login_message(base_url: str, hotkey: str, nonce: str, expires_at: datetime) -> str:
    return (
        f"{LOGIN_MESSAGE_HEADER}\n"
        f"platform: {base_url}\n"
        f"hotkey: {hotkey}\n"
        f"nonce: {nonce}\n"
        f"expires: {iso(expires_at)}"
    )


def miner_challenge(db: Session, settings: PlatformSettings, hotkey: str) -> Challenge:
    check_hotkey(hotkey)
    nonce = secrets.token_hex(16)
    expires_at = _expiry(settings)
    message = miner_login_message(settings.base_url, hotkey, nonce, expires_at)
    db.add(LoginNonce(nonce=nonce, kind=MINER, subject=hotkey, message=message, expires_at=expires_at))
    return Challenge(nonce, expires_at, message)


def _signature_bytes(signature: str) -> bytes:
    text = signature[2:] if signature.startswith(("0x", "0X")) else signature
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise Unauthorized("signature must be hex (0x…) of the signed message") from None


def verify_sr25519(message: str, signature: str, hotkey: str) -> bool:
    """The hotkey signed ``message`` (as raw bytes, or wrapped in ``<Bytes>`` as polkadot.js does)."""
    raw = _signature_bytes(signature)
    data = message.encode()
    try:
        signed: bool = sp_core.verify(data, raw, hotkey, sp_core.CRYPTO_SR25519) or sp_core.verify(
            b"<Bytes>" + data + b"</Bytes>", raw, hotkey, sp_core.CRYPTO_SR25519
        )
        return signed
    except ValueError:
        return False


def _updated(db: Session, statement: Update) -> int:
    """The rows ``statement`` changed. Session.execute is typed as returning a Result; an
    UPDATE's is a CursorResult, which counts them."""
    return cast(CursorResult[Any], db.execute(statement)).rowcount


def _consume_nonce(db: Session, kind: str, subject: str, nonce: str) -> None:
    consumed = _updated(
        db,
        update(LoginNonce)
        .where(
            LoginNonce.nonce == nonce,
            LoginNonce.kind == kind,
            LoginNonce.subject == subject,
            LoginNonce.used_at.is_(None),
            LoginNonce.expires_at > utcnow(),
        )
        .values(used_at=utcnow()),
    )
    if consumed != 1:
        raise Unauthorized("this challenge was already used; request a new one")


def _live_nonce(db: Session, kind: str, subject: str, nonce: str | None) -> LoginNonce:
    query = select(LoginNonce).where(LoginNonce.kind == kind, LoginNonce.subject == subject)
    if nonce is not None:
        query = query.where(LoginNonce.nonce == nonce)
    else:
        query = query.where(LoginNonce.used_at.is_(None)).order_by(LoginNonce.created_at.desc()).limit(1)
    row = db.scalar(query)
    if row is None:
        raise Unauthorized("unknown challenge: request one first, then sign its message")
    if row.used_at is not None:
        raise Unauthorized("this challenge was already used; request a new one")
    if row.expires_at <= utcnow():
        raise Unauthorized("this challenge has expired; request a new one")
    return row


def open_miner_session(
    db: Session,
    settings: PlatformSettings,
    registry: HotkeyRegistry,
    hotkey: str,
    nonce: str,
    signature: str,
) -> OpenedSession:
    """Verify the signed challenge and registration; open a session. 401 or 403 otherwise."""
    check_hotkey(hotkey)
    challenge = _live_nonce(db, MINER, hotkey, nonce)
    if not verify_sr25519(challenge.message, signature, hotkey):
        raise Unauthorized("the signature does not match the challenge message and hotkey")
    if not registry.is_registered(hotkey):
        raise Forbidden(f"hotkey {hotkey} is not registered on subnet {registry.netuid}; register it first")
    _consume_nonce(db, MINER, hotkey, nonce)
    miner = db.scalar(select(Miner).where(Miner.hotkey == hotkey))
    if miner is None:
        miner = Miner(hotkey=hotkey)
        db.add(miner)
        db.flush()
    token = new_secret(MINER_TOKEN_PREFIX)
    expires_at = (utcnow() + timedelta(seconds=settings.miner_session_ttl_seconds)).replace(microsecond=0)
    db.add(MinerSession(token_hash=hash_secret(token), miner_id=miner.id, expires_at=expires_at))
    logger.info("miner {} logged in", quoted(hotkey))
    return OpenedSession(token, expires_at)


def miner_for_token(db: Session, token: str) -> Miner | None:
    if not token.startswith(MINER_TOKEN_PREFIX):
        return None
    return db.scalar(
        select(Miner)
        .join(MinerSession, MinerSession.miner_id == Miner.id)
        .where(MinerSession.token_hash == hash_secret(token), MinerSession.expires_at > utcnow())
    )


def end_miner_session(db: Session, token: str) -> None:
    db.execute(
        update(MinerSession).where(MinerSession.token_hash == hash_secret(token)).values(expires_at=utcnow())
    )


def get_or_create_miner(db: Session, hotkey: str) -> Miner:
    check_hotkey(hotkey)
    miner = db.scalar(select(Miner).where(Miner.hotkey == hotkey))
    if miner is None:
        miner = Miner(hotkey=hotkey)
        db.add(miner)
        db.flush()
    return miner


# --- workers -----------------------------------------------------------------------------------


def check_address(address: str) -> str:
    if not is_address(address):
        raise Invalid(f"{address!r} is not an Ethereum address (0x and 40 hex digits)")
    return to_checksum_address(address)


def worker_login_message(base_url: str, address: str, nonce: str, expires_at: datetime) -> str:
    return (
        "dojo-platform-worker-login\n"
        f"platform: {base_url}\n"
        f"address: {address}\n"
        f"nonce: {nonce}\n"
        f"expires: {iso(expires_at)}"
    )


def worker_challenge(db: Session, settings: PlatformSettings, address: str) -> Challenge:
    address = check_address(address)
    nonce = secrets.token_hex(16)
    expires_at = _expiry(settings)
    message = worker_login_message(settings.base_url, address, nonce, expires_at)
    db.add(LoginNonce(nonce=nonce, kind=WORKER, subject=address, message=message, expires_at=expires_at))
    return Challenge(nonce, expires_at, message)


def _new_worker(db: Session, address: str | None = None) -> Worker:
    worker = Worker(public_id=uuid.uuid4().hex, address=address)
    db.add(worker)
    db.flush()
    return worker


def open_worker_session_for(db: Session, settings: PlatformSettings, worker: Worker) -> OpenedSession:
    token = new_secret(WORKER_TOKEN_PREFIX)
    expires_at = (utcnow() + timedelta(seconds=settings.worker_session_ttl_seconds)).replace(microsecond=0)
    db.add(WorkerSession(token_hash=hash_secret(token), worker_id=worker.id, expires_at=expires_at))
    return OpenedSession(token, expires_at)


def open_worker_session(
    db: Session, settings: PlatformSettings, address: str, signature: str, nonce: str | None = None
) -> tuple[Worker, OpenedSession]:
    """Verify an EIP-191 ``personal_sign`` of the challenge; the worker is created on first log-in."""
    address = check_address(address)
    challenge = _live_nonce(db, WORKER, address, nonce)
    try:
        signer = Account.recover_message(encode_defunct(text=challenge.message), signature=signature)
    except Exception:  # eth-account raises several types for malformed signatures
        raise Unauthorized(
            "the signature is not a valid EIP-191 signature of the challenge message"
        ) from None
    if signer != address:
        raise Unauthorized("the signature was made by another address than the one logging in")
    _consume_nonce(db, WORKER, address, challenge.nonce)
    worker = db.scalar(select(Worker).where(Worker.address == address)) or _new_worker(db, address)
    logger.info("worker {} logged in with wallet", worker.public_id)
    return worker, open_worker_session_for(db, settings, worker)


# worker_for_token in one statement on the driver's connection, for the queue's hot path
# (dojo.platform.http.deps.lookup_worker on SQLite, pgqueue on PostgreSQL).
WORKER_FOR_TOKEN = RawStatement(
    "SELECT w.id, w.public_id, w.address, w.created_at FROM workers w"
    " JOIN worker_sessions s ON s.worker_id = w.id"
    " WHERE s.token_hash = :token_hash AND s.expires_at > :now",
    times=["now"],
    columns=[None, None, None, "datetime"],
)


def worker_for_token(db: Session, token: str) -> Worker | None:
    if not token.startswith(WORKER_TOKEN_PREFIX):
        return None
    return db.scalar(
        select(Worker)
        .join(WorkerSession, WorkerSession.worker_id == Worker.id)
        .where(WorkerSession.token_hash == hash_secret(token), WorkerSession.expires_at > utcnow())
    )


def end_worker_session(db: Session, token: str) -> None:
    db.execute(
        update(WorkerSession)
        .where(WorkerSession.token_hash == hash_secret(token))
        .values(expires_at=utcnow())
    )


# --- recovery codes ----------------------------------------------------------------------------
# An invited worker has no wallet: its session cookie is its only identity, and a new invite
# after logging out would make a second worker, offered tasks the same person already ranked.
# A recovery code (shown once, stored as its SHA-256) logs back in to the same worker.

RECOVERY_PREFIX = "dojo-rc"
_RECOVERY_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no look-alikes (0/O, 1/I/L, U/V)
_RECOVERY_GROUPS = 5  # 5 groups of 5 from 30 symbols: about 123 bits


def _normalise_recovery_code(code: str) -> str:
    cleaned = "".join(ch for ch in code.upper() if ch.isalnum())
    prefix = RECOVERY_PREFIX.replace("-", "").upper()
    return cleaned.removeprefix(prefix)


def new_recovery_code(db: Session, worker: Worker) -> str:
    """A fresh recovery code for ``worker``; any earlier one stops working."""
    symbols = [secrets.choice(_RECOVERY_ALPHABET) for _ in range(5 * _RECOVERY_GROUPS)]
    groups = ["".join(symbols[i : i + 5]) for i in range(0, len(symbols), 5)]
    code = "-".join([RECOVERY_PREFIX, *groups])
    db.execute(
        update(Worker)
        .where(Worker.id == worker.id)
        .values(recovery_hash=hash_secret(_normalise_recovery_code(code)))
    )
    worker.recovery_hash = hash_secret(_normalise_recovery_code(code))
    return code


def recover_worker_session(
    db: Session, settings: PlatformSettings, code: str
) -> tuple[Worker, OpenedSession]:
    """Log in with a recovery code: the same worker as before, a new session. 401 otherwise."""
    normalised = _normalise_recovery_code(code)
    worker = (
        db.scalar(select(Worker).where(Worker.recovery_hash == hash_secret(normalised)))
        if normalised
        else None
    )
    if worker is None:
        raise Unauthorized("unknown recovery code; check it, or ask the miner for a new invite link")
    logger.info("worker {} logged in with a recovery code", worker.public_id)
    return worker, open_worker_session_for(db, settings, worker)


def worker_pseudonym_for_miner(worker_public_id: str, miner_hotkey: str) -> str:
    """The worker id a miner sees: stable for this miner, unlinkable across miners."""
    return hashlib.sha256(f"{worker_public_id}:{miner_hotkey}".encode()).hexdigest()[:16]


# --- invites -----------------------------------------------------------------------------------


def create_invite(db: Session, settings: PlatformSettings, miner_hotkey: str) -> str:
    """A one-time link that logs a new worker in (no wallet) and subscribes them to the miner."""
    miner = get_or_create_miner(db, miner_hotkey)
    token = new_secret(INVITE_PREFIX)
    expires_at = utcnow() + timedelta(seconds=settings.invite_ttl_seconds)
    db.add(Invite(token_hash=hash_secret(token), miner_id=miner.id, expires_at=expires_at))
    return f"{settings.base_url}/invite/{token}"


_INVITE_SPENT = "this invite link was already used or has expired; ask the miner for a new one"
_INVITE_REVOKED = "the miner took this invite link back; ask the miner for a new one"


def _invite(db: Session, token: str) -> Invite:
    invite = db.scalar(select(Invite).where(Invite.token_hash == hash_secret(token)))
    if invite is None:
        raise NotFound("unknown invite link; ask the miner for a new one")
    return invite


def look_at_invite(db: Session, token: str) -> tuple[Miner, datetime]:
    """The miner whose team an unused, unexpired invite joins, and when the invite stops
    working (naive UTC); the invite stays unused. 404 for an unknown link, 410 for a used
    or expired one."""
    invite = _invite(db, token)
    if invite.revoked_at is not None:
        raise Gone(_INVITE_REVOKED)
    if invite.used_at is not None or invite.expires_at <= utcnow():
        raise Gone(_INVITE_SPENT)
    miner = db.get(Miner, invite.miner_id)
    assert miner is not None
    return miner, invite.expires_at


def accept_invite(
    db: Session, settings: PlatformSettings, token: str, current: Worker | None = None
) -> tuple[Worker, OpenedSession | None, str | None]:
    """Use the invite: the current worker (if logged in) or a new one joins the miner's team.

    Returns the worker and, for a new worker, the session to set as its cookie and its
    recovery code (to show once: the way back to this worker after logging out).
    """
    invite = _invite(db, token)
    now = utcnow()
    used = _updated(
        db,
        update(Invite)
        .where(
            Invite.id == invite.id,
            Invite.used_at.is_(None),
            Invite.revoked_at.is_(None),
            Invite.expires_at > now,
        )
        .values(used_at=now),
    )
    if used != 1:
        raise Gone(_INVITE_REVOKED if invite.revoked_at is not None else _INVITE_SPENT)
    worker = current if current is not None else _new_worker(db)
    db.execute(update(Invite).where(Invite.id == invite.id).values(worker_id=worker.id))
    miner = db.get(Miner, invite.miner_id)
    assert miner is not None
    existing = db.scalar(
        select(Subscription).where(Subscription.worker_id == worker.id, Subscription.miner_id == miner.id)
    )
    if existing is None:
        db.add(
            Subscription(
                worker_id=worker.id, miner_id=miner.id, key_id=None, name=f"invite from {miner.hotkey[:8]}"
            )
        )
    else:
        existing.key_id = None  # an invite is access that no key's disabling takes away
    session, code = None, None
    if current is None:
        session = open_worker_session_for(db, settings, worker)
        code = new_recovery_code(db, worker)
    logger.info("worker {} joined miner {} by invite", worker.public_id, miner.hotkey)
    return worker, session, code
