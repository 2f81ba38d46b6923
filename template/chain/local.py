"""A local chain: one SQLite file that plays the subnet's chain state for a local network.

Every process of a localnet (validators, miners, the CLI) opens the same
``<dir>/chain.sqlite``. Writes run in ``BEGIN IMMEDIATE`` transactions under WAL with a
busy timeout, so several processes can register, stake, serve and set weights at once;
each call opens its own short-lived connection, which keeps the object safe to use from
threads and across ``fork``.

What it simulates:

- subnets with the hyperparameters that matter to Dojo (tempo, weight rules, validator
  permits, size, immunity period);
- registration with stake; a full subnet replaces the neuron with the lowest incentive
  outside its immunity period, so a new hotkey can take over an old uid;
- validator permits: the ``max_validators`` neurons with the most stake (stake > 0),
  recomputed on every read rather than once per tempo;
- served axons (ip, port) for registered hotkeys;
- blocks derived from wall-clock time: ``1 + (now - genesis_time) // block_time``;
- weights checked like subtensor's ``set_weights`` (see :mod:`template.chain.weights`),
  the caller's validator permit and the rate limit in blocks, and kept per validator.

What it does not simulate: no Yuma consensus, no emissions, no bonds, no dividends, no
commit-reveal, no transaction fees, no signatures (the caller is trusted to hold the
hotkey it names). The ``incentive`` it reports is only the stake-weighted mean of the
permitted validators' normalised weights, for display and for choosing whom to replace.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

from template.chain.base import (
    AxonEndpoint,
    Chain,
    ChainError,
    ChainUnavailable,
    Hyperparameters,
    Metagraph,
    NeuronInfo,
    NotRegistered,
)
from template.chain.weights import WeightRules, WeightsRejected, check_weights

DB_NAME = "chain.sqlite"
DEFAULT_BLOCK_TIME = 12.0
# Long enough for a whole localnet to queue behind one writer without "database is locked".
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chain (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    genesis_time REAL NOT NULL,
    block_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subnets (
    netuid INTEGER PRIMARY KEY,
    tempo INTEGER NOT NULL,
    min_allowed_weights INTEGER NOT NULL,
    max_weight_limit REAL NOT NULL,
    weights_rate_limit INTEGER NOT NULL,
    weights_version INTEGER NOT NULL,
    max_validators INTEGER NOT NULL,
    max_uids INTEGER NOT NULL,
    immunity_period INTEGER NOT NULL,
    created_block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS neurons (
    netuid INTEGER NOT NULL REFERENCES subnets(netuid),
    uid INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    coldkey TEXT NOT NULL,
    stake REAL NOT NULL,
    registered_block INTEGER NOT NULL,
    last_update INTEGER NOT NULL DEFAULT 0,
    axon_ip TEXT,
    axon_port INTEGER,
    axon_protocol INTEGER,
    PRIMARY KEY (netuid, uid),
    UNIQUE (netuid, hotkey)
);
CREATE TABLE IF NOT EXISTS weights (
    netuid INTEGER NOT NULL,
    validator_uid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    weight INTEGER NOT NULL,
    PRIMARY KEY (netuid, validator_uid, uid)
);
"""


@dataclass(frozen=True)
class SubnetParams:
    """A local subnet's hyperparameters, as stored."""

    tempo: int = 360
    min_allowed_weights: int = 1
    max_weight_limit: float = 1.0
    weights_rate_limit: int = 100
    weights_version: int = 0
    max_validators: int = 64
    max_uids: int = 256
    immunity_period: int = 4096

    def validate(self) -> None:
        checks = {
            "tempo": self.tempo >= 1,
            "min_allowed_weights": self.min_allowed_weights >= 0,
            "max_weight_limit": 0.0 < self.max_weight_limit <= 1.0,
            "weights_rate_limit": self.weights_rate_limit >= 0,
            "weights_version": self.weights_version >= 0,
            "max_validators": self.max_validators >= 0,
            "max_uids": self.max_uids >= 1,
            "immunity_period": self.immunity_period >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid subnet hyperparameters: {', '.join(bad)} ({self})")


def _hotkey_of(wallet: Any) -> str:
    """The ss58 address of a wallet's hotkey: a ``bt.Wallet``, a ``Keypair``, or the address itself.

    The local chain checks no signature, so an address is as good as a key here.
    """
    hotkey = getattr(wallet, "hotkey", wallet)
    address = getattr(hotkey, "ss58_address", hotkey)
    if not isinstance(address, str):
        raise TypeError(f"expected a wallet or a hotkey ss58 address, got {type(wallet).__name__}")
    return address


class LocalChain(Chain):
    """One subnet of the local chain stored under ``directory``.

    Open an existing chain with ``LocalChain(directory, netuid)``; create one with
    :meth:`LocalChain.init`.
    """

    def __init__(self, directory: Path | str, netuid: int = 1):
        self.directory = Path(directory).expanduser()
        self.path = self.directory / DB_NAME
        self.netuid = int(netuid)
        if not self.path.is_file():
            raise ChainUnavailable(
                f"no local chain at {self.directory} ({DB_NAME} is missing); "
                f"create one with `dojo chain init --dir {self.directory}`"
            )
        try:
            with self._read() as db:
                row = db.execute("SELECT genesis_time, block_time FROM chain WHERE id = 0").fetchone()
                subnet = db.execute("SELECT 1 FROM subnets WHERE netuid = ?", (self.netuid,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise ChainUnavailable(f"cannot read the local chain at {self.path}: {exc}") from exc
        if row is None:
            raise ChainUnavailable(f"{self.path} is not an initialised local chain")
        if subnet is None:
            raise ChainUnavailable(
                f"subnet {self.netuid} does not exist on the local chain at {self.directory}; "
                f"create it with `dojo chain init --dir {self.directory} --netuid {self.netuid}`"
            )
        self.genesis_time: float = float(row[0])
        self.block_time: float = float(row[1])

    # ----------------------------------------------------------------- creation

    @classmethod
    def init(
        cls,
        directory: Path | str,
        *,
        netuid: int = 1,
        block_time: float = DEFAULT_BLOCK_TIME,
        exist_ok: bool = False,
        tempo: int = 360,
        min_allowed_weights: int = 1,
        max_weight_limit: float = 1.0,
        weights_rate_limit: int = 100,
        weights_version: int = 0,
        max_validators: int = 64,
        max_uids: int = 256,
        immunity_period: int = 4096,
    ) -> LocalChain:
        """Create the chain file if needed and the subnet ``netuid`` on it.

        The block time belongs to the chain and is fixed when the file is created; creating
        a second subnet on an existing chain keeps it. An existing subnet raises
        :class:`ChainError` unless ``exist_ok``, in which case it is opened unchanged.
        """
        if not block_time > 0 or not math.isfinite(block_time):
            raise ValueError(f"block_time must be a positive number of seconds, got {block_time}")
        params = SubnetParams(
            tempo=tempo,
            min_allowed_weights=min_allowed_weights,
            max_weight_limit=max_weight_limit,
            weights_rate_limit=weights_rate_limit,
            weights_version=weights_version,
            max_validators=max_validators,
            max_uids=max_uids,
            immunity_period=immunity_period,
        )
        params.validate()
        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / DB_NAME
        db = _connect(path)
        try:
            # WAL is a property of the file: set once here, every later connection uses it.
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            with _immediate(db):
                db.execute(
                    "INSERT OR IGNORE INTO chain (id, genesis_time, block_time) VALUES (0, ?, ?)",
                    (time.time(), float(block_time)),
                )
                genesis, chain_block_time = db.execute(
                    "SELECT genesis_time, block_time FROM chain WHERE id = 0"
                ).fetchone()
                exists = db.execute("SELECT 1 FROM subnets WHERE netuid = ?", (netuid,)).fetchone()
                if exists and not exist_ok:
                    raise ChainError(f"subnet {netuid} already exists on the local chain at {directory}")
                if not exists:
                    db.execute(
                        "INSERT INTO subnets (netuid, tempo, min_allowed_weights, max_weight_limit,"
                        " weights_rate_limit, weights_version, max_validators, max_uids,"
                        " immunity_period, created_block) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            netuid,
                            params.tempo,
                            params.min_allowed_weights,
                            params.max_weight_limit,
                            params.weights_rate_limit,
                            params.weights_version,
                            params.max_validators,
                            params.max_uids,
                            params.immunity_period,
                            _block_at(time.time(), genesis, chain_block_time),
                        ),
                    )
                    logger.info(f"local chain {directory}: created subnet {netuid} {params}")
        finally:
            db.close()
        return cls(directory, netuid=netuid)

    # ----------------------------------------------------------------- reads

    def block(self) -> int:
        return _block_at(time.time(), self.genesis_time, self.block_time)

    def params(self) -> SubnetParams:
        with self._read() as db:
            return self._params(db)

    def hyperparameters(self) -> Hyperparameters:
        p = self.params()
        return Hyperparameters(
            tempo=p.tempo,
            weights=WeightRules(
                min_allowed_weights=p.min_allowed_weights,
                max_weight_limit=p.max_weight_limit,
                weights_rate_limit=p.weights_rate_limit,
                weights_version=p.weights_version,
            ),
            commit_reveal=False,
            max_validators=p.max_validators,
        )

    def metagraph(self) -> Metagraph:
        with self._read() as db:
            block = self.block()
            params = self._params(db)
            rows = self._neuron_rows(db)
            permits = _permits(rows, params.max_validators)
            incentive = self._incentive(db, rows, permits)
        neurons = tuple(
            NeuronInfo(
                uid=r["uid"],
                hotkey=r["hotkey"],
                coldkey=r["coldkey"],
                stake=float(r["stake"]),
                validator_permit=r["uid"] in permits,
                axon=(
                    AxonEndpoint(r["axon_ip"], int(r["axon_port"]), int(r["axon_protocol"]))
                    if r["axon_ip"] is not None
                    else None
                ),
                last_update=int(r["last_update"]),
                incentive=incentive.get(r["uid"], 0.0),
            )
            for r in rows
        )
        return Metagraph(netuid=self.netuid, block=block, neurons=neurons)

    def is_registered(self, hotkey: str) -> bool:
        return self.uid_of(hotkey) is not None

    def uid_of(self, hotkey: str) -> int | None:
        with self._read() as db:
            row = db.execute(
                "SELECT uid FROM neurons WHERE netuid = ? AND hotkey = ?", (self.netuid, hotkey)
            ).fetchone()
        return None if row is None else int(row[0])

    def weights_of(self, validator_uid: int) -> dict[int, int]:
        """The u16 weights the neuron at ``validator_uid`` last set, by target uid."""
        with self._read() as db:
            rows = db.execute(
                "SELECT uid, weight FROM weights WHERE netuid = ? AND validator_uid = ? ORDER BY uid",
                (self.netuid, validator_uid),
            ).fetchall()
        return {int(uid): int(w) for uid, w in rows}

    # ----------------------------------------------------------------- writes

    def register(self, hotkey_ss58: str, coldkey_ss58: str, stake: float = 0.0) -> int:
        """Register a hotkey with ``stake`` and return its uid.

        Registering a hotkey that is already on the subnet returns its uid and sets its
        stake to ``stake``. On a full subnet the neuron with the lowest incentive outside
        its immunity period (oldest registration first on ties) is replaced, and the
        weights it had set or received are dropped: the new hotkey inherits nothing.
        """
        stake = _check_stake(stake)
        with self._write() as db:
            block = self.block()
            row = db.execute(
                "SELECT uid, coldkey FROM neurons WHERE netuid = ? AND hotkey = ?",
                (self.netuid, hotkey_ss58),
            ).fetchone()
            if row is not None:
                if row["coldkey"] != coldkey_ss58:
                    raise ChainError(
                        f"hotkey {hotkey_ss58} is already registered on subnet {self.netuid} "
                        f"under coldkey {row['coldkey']}"
                    )
                db.execute(
                    "UPDATE neurons SET stake = ? WHERE netuid = ? AND uid = ?",
                    (stake, self.netuid, row["uid"]),
                )
                return int(row["uid"])
            params = self._params(db)
            rows = self._neuron_rows(db)
            if len(rows) < params.max_uids:
                uid = len(rows)
            else:
                uid = self._uid_to_replace(db, rows, params, block)
                old = next(r for r in rows if r["uid"] == uid)
                db.execute("DELETE FROM neurons WHERE netuid = ? AND uid = ?", (self.netuid, uid))
                db.execute(
                    "DELETE FROM weights WHERE netuid = ? AND (validator_uid = ? OR uid = ?)",
                    (self.netuid, uid, uid),
                )
                logger.info(f"local chain: subnet {self.netuid} full, uid {uid} {old['hotkey']} replaced")
            db.execute(
                "INSERT INTO neurons (netuid, uid, hotkey, coldkey, stake, registered_block)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self.netuid, uid, hotkey_ss58, coldkey_ss58, stake, block),
            )
        logger.info(f"local chain: registered {hotkey_ss58} as uid {uid} on subnet {self.netuid}")
        return uid

    def add_stake(self, hotkey_ss58: str, amount: float) -> float:
        """Add ``amount`` to a registered hotkey's stake; returns the new stake."""
        amount = _check_stake(amount)
        with self._write() as db:
            cur = db.execute(
                "UPDATE neurons SET stake = stake + ? WHERE netuid = ? AND hotkey = ? RETURNING stake",
                (amount, self.netuid, hotkey_ss58),
            )
            row = cur.fetchone()
            if row is None:
                raise self._not_registered(hotkey_ss58)
            return float(row[0])

    def serve_axon(self, wallet: Any, ip: str, port: int) -> None:
        hotkey = _hotkey_of(wallet)
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0..65535, got {port!r}")
        protocol = 6 if ":" in ip else 4
        with self._write() as db:
            cur = db.execute(
                "UPDATE neurons SET axon_ip = ?, axon_port = ?, axon_protocol = ?"
                " WHERE netuid = ? AND hotkey = ?",
                (ip, port, protocol, self.netuid, hotkey),
            )
            if cur.rowcount == 0:
                raise self._not_registered(hotkey)
        logger.info(f"local chain: {hotkey} serves {ip}:{port} on subnet {self.netuid}")

    def set_weights(self, wallet: Any, uids: list[int], weights: list[int], version_key: int) -> None:
        """Check the weights as subtensor would and store them as the caller's row.

        Raises :class:`WeightsRejected` with one of the reason codes of
        :func:`template.chain.weights.check_weights`, or ``hotkey_not_registered``,
        ``no_validator_permit``, ``rate_limited``.
        """
        hotkey = _hotkey_of(wallet)
        with self._write() as db:
            block = self.block()
            params = self._params(db)
            rows = self._neuron_rows(db)
            me = next((r for r in rows if r["hotkey"] == hotkey), None)
            if me is None:
                raise WeightsRejected(
                    "hotkey_not_registered", f"hotkey {hotkey} is not registered on subnet {self.netuid}"
                )
            own_uid = int(me["uid"])
            rules = WeightRules(
                min_allowed_weights=params.min_allowed_weights,
                max_weight_limit=params.max_weight_limit,
                weights_rate_limit=params.weights_rate_limit,
                weights_version=params.weights_version,
            )
            check_weights(
                uids, weights, n_neurons=len(rows), own_uid=own_uid, rules=rules, version_key=version_key
            )
            nonzero = [(int(u), int(w)) for u, w in zip(uids, weights, strict=True) if int(w) > 0]
            self_only = len(nonzero) == 1 and nonzero[0][0] == own_uid
            if not self_only and own_uid not in _permits(rows, params.max_validators):
                raise WeightsRejected(
                    "no_validator_permit",
                    f"uid {own_uid} holds no validator permit (top {params.max_validators} by stake, stake > 0)",
                )
            last = int(me["last_update"])
            # Subtensor treats last_update 0 as "never set", so the first call is never limited.
            if last > 0 and block - last < params.weights_rate_limit:
                raise WeightsRejected(
                    "rate_limited",
                    f"last set at block {last}, now {block}; the subnet allows one update "
                    f"every {params.weights_rate_limit} blocks",
                )
            db.execute("DELETE FROM weights WHERE netuid = ? AND validator_uid = ?", (self.netuid, own_uid))
            db.executemany(
                "INSERT INTO weights (netuid, validator_uid, uid, weight) VALUES (?, ?, ?, ?)",
                [(self.netuid, own_uid, u, w) for u, w in nonzero],
            )
            db.execute(
                "UPDATE neurons SET last_update = ? WHERE netuid = ? AND uid = ?",
                (block, self.netuid, own_uid),
            )
        logger.info(f"local chain: uid {own_uid} set {len(nonzero)} weights at block {block}")

    def describe(self) -> str:
        return f"LocalChain({self.directory}, netuid={self.netuid}, block_time={self.block_time}s)"

    # ----------------------------------------------------------------- internals

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._unavailable_on_database_error():
            db = _connect(self.path)
            try:
                # One read transaction so a snapshot is consistent across its queries.
                db.execute("BEGIN")
                yield db
                db.execute("COMMIT")
            finally:
                db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._unavailable_on_database_error():
            db = _connect(self.path)
            try:
                with _immediate(db):
                    yield db
            finally:
                db.close()

    @contextlib.contextmanager
    def _unavailable_on_database_error(self) -> Iterator[None]:
        # A damaged or unreadable file is the chain being unavailable, which callers handle;
        # a raw sqlite3 error would escape the adapter's error tree.
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise ChainUnavailable(f"cannot use the local chain at {self.path}: {exc}") from exc

    def _params(self, db: sqlite3.Connection) -> SubnetParams:
        row = db.execute(
            "SELECT tempo, min_allowed_weights, max_weight_limit, weights_rate_limit, weights_version,"
            " max_validators, max_uids, immunity_period FROM subnets WHERE netuid = ?",
            (self.netuid,),
        ).fetchone()
        if row is None:
            raise ChainUnavailable(
                f"subnet {self.netuid} does not exist on the local chain at {self.directory}"
            )
        return SubnetParams(**dict(row))

    def _neuron_rows(self, db: sqlite3.Connection) -> list[sqlite3.Row]:
        return db.execute("SELECT * FROM neurons WHERE netuid = ? ORDER BY uid", (self.netuid,)).fetchall()

    def _incentive(
        self, db: sqlite3.Connection, rows: list[sqlite3.Row], permits: set[int]
    ) -> dict[int, float]:
        """Stake-weighted mean, over permitted validators that set weights, of their normalised weights."""
        stake = {int(r["uid"]): float(r["stake"]) for r in rows}
        per_validator: dict[int, dict[int, int]] = {}
        for v, u, w in db.execute(
            "SELECT validator_uid, uid, weight FROM weights WHERE netuid = ?", (self.netuid,)
        ):
            if v in permits and u in stake:
                per_validator.setdefault(int(v), {})[int(u)] = int(w)
        total_stake = sum(stake[v] for v, row in per_validator.items() if sum(row.values()) > 0)
        if total_stake <= 0:
            return {}
        incentive: dict[int, float] = {}
        for v, row in per_validator.items():
            row_sum = sum(row.values())
            if row_sum <= 0:
                continue
            for u, w in row.items():
                incentive[u] = incentive.get(u, 0.0) + stake[v] * w / row_sum / total_stake
        return incentive

    def _uid_to_replace(
        self, db: sqlite3.Connection, rows: list[sqlite3.Row], params: SubnetParams, block: int
    ) -> int:
        incentive = self._incentive(db, rows, _permits(rows, params.max_validators))
        candidates = [r for r in rows if block - int(r["registered_block"]) >= params.immunity_period]
        if not candidates:
            raise ChainError(
                f"subnet {self.netuid} is full ({params.max_uids} uids) and every neuron is within its "
                f"immunity period of {params.immunity_period} blocks; try again later"
            )
        victim = min(
            candidates,
            key=lambda r: (incentive.get(int(r["uid"]), 0.0), int(r["registered_block"]), int(r["uid"])),
        )
        return int(victim["uid"])

    def _not_registered(self, hotkey: str) -> NotRegistered:
        return NotRegistered(
            hotkey,
            self.netuid,
            hint=f"register it with `dojo chain register --dir {self.directory} --netuid {self.netuid} ...`",
        )


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN ourselves, so writes take the lock up front
    # (BEGIN IMMEDIATE) instead of upgrading a read lock and failing with SQLITE_BUSY.
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return db


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _block_at(now: float, genesis_time: float, block_time: float) -> int:
    # Block 1 is genesis: subtensor reads last_update 0 as "never set weights", so no real
    # update may ever be recorded at block 0.
    return 1 + max(0, int((now - genesis_time) // block_time))


def _permits(rows: list[sqlite3.Row], max_validators: int) -> set[int]:
    """Top ``max_validators`` uids by stake (lower uid first on ties); zero stake never qualifies."""
    staked = sorted(
        (r for r in rows if float(r["stake"]) > 0), key=lambda r: (-float(r["stake"]), int(r["uid"]))
    )
    return {int(r["uid"]) for r in staked[:max_validators]}


def _check_stake(stake: float) -> float:
    value = float(stake)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"stake must be a finite non-negative amount, got {stake!r}")
    return value


__all__ = ["DB_NAME", "DEFAULT_BLOCK_TIME", "LocalChain", "SubnetParams"]
