"""A local chain: one SQLite file that plays the subnet's chain state for a local network.

Every process of a localnet (validators, miners, the CLI) opens the same
``<dir>/chain.sqlite``. Writes run in ``BEGIN IMMEDIATE`` transactions under WAL with a
busy timeout, so several processes can register, stake, serve and set weights at once;
each call opens its own short-lived connection, which keeps the object safe to use from
threads and across ``fork``. The file is opened through :mod:`template.storage` as the
neurons' databases are, and its schema comes from the Alembic migrations in
``template/chain/migrations/``, applied when a chain is created or opened; the statements
themselves are plain SQL on the driver, the cheapest way to the hot path's few rows.

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

- commit-reveal of weights as a subnet setting (``commit_reveal_period``, in tempos; 0 is
  off): weights set in epoch ``e`` are stored as a commitment and become visible, to
  every reader and to consensus, at the start of epoch ``e + period``; until then the
  validator's previous revealed weights stand, as on subtensor;
- Yuma consensus once per tempo (:mod:`template.chain.yuma`): at each epoch boundary the
  weights visible at that block and the stakes of the permitted validators give consensus,
  incentive, validator trust, bonds and dividends. Bonds are kept in the file between
  epochs. Epochs are computed when the chain is next written to or :meth:`LocalChain.epoch_view`
  is read; nothing changes between two writes, so a late computation sees the state the
  boundary block saw (an idle stretch longer than ``MAX_CATCH_UP_EPOCHS`` only runs its last
  epochs, by then the bonds' moving average has forgotten the rest).

What it does not simulate: no emissions, no transaction fees, no signatures (the caller is
trusted to hold the hotkey it names), no activity cutoff. The ``incentive`` the metagraph
reports is the stake-weighted mean of the permitted validators' visible normalised weights,
for display and for choosing whom to replace; the consensus incentive is in
:meth:`LocalChain.epoch_view`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from loguru import logger
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from template.chain.base import (
    AxonEndpoint,
    Chain,
    ChainError,
    ChainUnavailable,
    EpochView,
    Hyperparameters,
    Metagraph,
    MinerView,
    NeuronInfo,
    NotRegistered,
    ValidatorView,
)
from template.chain.weights import WeightRules, WeightsRejected, check_weights
from template.chain.yuma import EpochResult, YumaParams, yuma_epoch
from template.storage import database_url, make_engine, migrate, migrate_if_behind

DB_NAME = "chain.sqlite"
DEFAULT_BLOCK_TIME = 12.0
# Epochs run at most this far back when the chain was idle: bonds move by 1 - 0.9 per epoch,
# so after 100 epochs of the same weights what came before weighs 0.9^100 < 3e-5.
MAX_CATCH_UP_EPOCHS = 100

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class SubnetParams(WeightRules):
    """A local subnet's hyperparameters, as stored: the weight rules and the rest."""

    tempo: int = 360
    max_validators: int = 64
    max_uids: int = 256
    immunity_period: int = 4096
    commit_reveal_period: int = 0
    kappa: float = 0.5
    bonds_moving_average: float = 0.9

    @property
    def weight_rules(self) -> WeightRules:
        """The hyperparameters among these that govern weights."""
        return WeightRules(
            min_allowed_weights=self.min_allowed_weights,
            max_weight_limit=self.max_weight_limit,
            weights_rate_limit=self.weights_rate_limit,
            weights_version=self.weights_version,
        )

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
            "commit_reveal_period": self.commit_reveal_period >= 0,
            "kappa": 0.0 < self.kappa <= 1.0,
            "bonds_moving_average": 0.0 <= self.bonds_moving_average < 1.0,
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

    def __init__(self, directory: Path | str, netuid: int = 1, *, engine: Engine | None = None):
        """Open subnet ``netuid`` of the chain file in ``directory`` on an engine of its own,
        migrating the file if it is behind (once it is known to be a chain's); or on
        ``engine``, one on that file already at the head (:meth:`init`'s)."""
        self.directory = Path(directory).expanduser()
        self.path = self.directory / DB_NAME
        self.netuid = int(netuid)
        if not self.path.is_file():
            raise ChainUnavailable(
                f"no local chain at {self.directory} ({DB_NAME} is missing); "
                f"create one with `dojo chain init --dir {self.directory}`"
            )
        self._engine = _engine(self.path) if engine is None else engine
        try:
            with self._read() as db:
                row = db.execute("SELECT genesis_time, block_time FROM chain WHERE id = 0").fetchone()
                subnet = db.execute("SELECT 1 FROM subnets WHERE netuid = ?", (self.netuid,)).fetchone()
        except (sqlite3.DatabaseError, DBAPIError) as exc:
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
        if engine is None:
            # What later versions store (commitments, epochs, bonds), added to an older file.
            with self._unavailable_on_database_error():
                migrate_if_behind(self._engine, MIGRATIONS_DIR, label="local chain")

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
        commit_reveal_period: int = 0,
        kappa: float = 0.5,
        bonds_moving_average: float = 0.9,
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
            commit_reveal_period=commit_reveal_period,
            kappa=kappa,
            bonds_moving_average=bonds_moving_average,
        )
        params.validate()
        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        engine = _engine(directory / DB_NAME)
        migrate(engine, MIGRATIONS_DIR, label="local chain")
        with _connection(engine) as db, _immediate(db):
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
                values = dataclasses.asdict(params)
                columns = ", ".join(["netuid", *values, "created_block"])
                marks = ", ".join("?" * (len(values) + 2))
                db.execute(
                    f"INSERT INTO subnets ({columns}) VALUES ({marks})",
                    (netuid, *values.values(), _block_at(time.time(), genesis, chain_block_time)),
                )
                logger.info(f"local chain {directory}: created subnet {netuid} {params}")
        return cls(directory, netuid=netuid, engine=engine)

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
            weights=p.weight_rules,
            commit_reveal=p.commit_reveal_period > 0,
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
        """The u16 weights of the neuron at ``validator_uid`` that the chain shows now, by target uid.

        Under commit-reveal these are the last revealed weights, not a pending commitment:
        what anyone reading the chain (a weight copier too) can see.
        """
        return self.weights_visible().get(int(validator_uid), {})

    def weights_visible(self, block: int | None = None) -> dict[int, dict[int, int]]:
        """Every validator's visible u16 weights at ``block`` (default: now), by validator uid.

        A block in the past is answered from the commitments still kept (those not yet
        folded into the revealed weights by a later write); the present is always exact.
        """
        with self._read() as db:
            at = self.block() if block is None else int(block)
            return self._visible_weights(db, at)

    def epoch_view(self) -> EpochView:
        """The last epoch's Yuma consensus: runs the epochs due since the chain was last written.

        Takes the write lock only when an epoch is due, so a live view polling it does not
        queue the neurons' writes behind it.
        """
        with self._read() as db:
            due = self._epoch_due(db, self.block())
        with self._write() if due else self._read() as db:
            if due:
                self._run_due_epochs(db, self.block())
            state = db.execute("SELECT block FROM epochs WHERE netuid = ?", (self.netuid,)).fetchone()
            rows = db.execute(
                "SELECT e.*, n.hotkey FROM epoch_neurons e JOIN neurons n"
                " ON n.netuid = e.netuid AND n.uid = e.uid WHERE e.netuid = ? ORDER BY e.uid",
                (self.netuid,),
            ).fetchall()
            neurons = self._neuron_rows(db)
        if state is None:
            params = self.params()
            permits = _permits(neurons, params.max_validators)
            return EpochView(
                block=0,
                validators=[
                    ValidatorView(int(r["uid"]), r["hotkey"], float(r["stake"]), 0.0, 0.0, {})
                    for r in neurons
                    if int(r["uid"]) in permits
                ],
                miners=[
                    MinerView(int(r["uid"]), r["hotkey"], 0.0, 0.0)
                    for r in neurons
                    if int(r["uid"]) not in permits
                ],
            )
        validators = [
            ValidatorView(
                uid=int(r["uid"]),
                hotkey=r["hotkey"],
                stake=float(r["stake"]),
                trust=float(r["trust"]),
                dividend=float(r["dividend"]),
                weights={int(k): float(v) for k, v in json.loads(r["weights"]).items()},
            )
            for r in rows
            if r["validator"]
        ]
        miners = [
            MinerView(
                uid=int(r["uid"]),
                hotkey=r["hotkey"],
                consensus=float(r["consensus"]),
                incentive=float(r["incentive"]),
            )
            for r in rows
            if not r["validator"]
        ]
        return EpochView(block=int(state["block"]), validators=validators, miners=miners)

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
            self._run_due_epochs(db, block)
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
                db.execute(
                    "DELETE FROM bonds WHERE netuid = ? AND (validator_uid = ? OR uid = ?)",
                    (self.netuid, uid, uid),
                )
                db.execute(
                    "DELETE FROM weight_commits WHERE netuid = ? AND validator_uid = ?", (self.netuid, uid)
                )
                # Commitments naming the replaced uid would hand the newcomer its weight.
                self._drop_target_from_commits(db, uid)
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
            self._run_due_epochs(db, self.block())
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

        Under commit-reveal (``commit_reveal_period > 0``) they are stored as a commitment
        instead, revealed at the first block of the epoch ``commit_reveal_period`` tempos
        after this one; the rate limit counts from the commitment.

        Raises :class:`WeightsRejected` with one of the reason codes of
        :func:`template.chain.weights.check_weights`, or ``hotkey_not_registered``,
        ``no_validator_permit``, ``rate_limited``.
        """
        hotkey = _hotkey_of(wallet)
        with self._write() as db:
            block = self.block()
            self._run_due_epochs(db, block)
            params = self._params(db)
            rows = self._neuron_rows(db)
            me = next((r for r in rows if r["hotkey"] == hotkey), None)
            if me is None:
                raise WeightsRejected(
                    "hotkey_not_registered", f"hotkey {hotkey} is not registered on subnet {self.netuid}"
                )
            own_uid = int(me["uid"])
            check_weights(
                uids,
                weights,
                n_neurons=len(rows),
                own_uid=own_uid,
                rules=params.weight_rules,
                version_key=version_key,
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
            if params.commit_reveal_period > 0:
                reveal = self._reveal_block(db, params, block)
                db.execute(
                    "INSERT OR REPLACE INTO weight_commits (netuid, validator_uid, commit_block, reveal_block,"
                    " weights) VALUES (?, ?, ?, ?, ?)",
                    (self.netuid, own_uid, block, reveal, json.dumps(nonzero)),
                )
            else:
                self._store_weights(db, own_uid, nonzero)
            db.execute(
                "UPDATE neurons SET last_update = ? WHERE netuid = ? AND uid = ?",
                (block, self.netuid, own_uid),
            )
            self._fold_revealed(db, block)
        if params.commit_reveal_period > 0:
            logger.info(
                f"local chain: uid {own_uid} committed {len(nonzero)} weights at block {block}, "
                f"revealed at block {reveal}"
            )
        else:
            logger.info(f"local chain: uid {own_uid} set {len(nonzero)} weights at block {block}")

    def describe(self) -> str:
        return f"LocalChain({self.directory}, netuid={self.netuid}, block_time={self.block_time}s)"

    # ----------------------------------------------------------------- internals

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._unavailable_on_database_error(), _connection(self._engine) as db:
            # One read transaction so a snapshot is consistent across its queries.
            db.execute("BEGIN")
            yield db
            db.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._unavailable_on_database_error(), _connection(self._engine) as db, _immediate(db):
            yield db

    @contextlib.contextmanager
    def _unavailable_on_database_error(self) -> Iterator[None]:
        # A damaged or unreadable file is the chain being unavailable, which callers handle;
        # a raw sqlite3 error would escape the adapter's error tree.
        try:
            yield
        except (sqlite3.DatabaseError, DBAPIError) as exc:
            raise ChainUnavailable(f"cannot use the local chain at {self.path}: {exc}") from exc

    def _params(self, db: sqlite3.Connection) -> SubnetParams:
        row = db.execute("SELECT * FROM subnets WHERE netuid = ?", (self.netuid,)).fetchone()
        if row is None:
            raise ChainUnavailable(
                f"subnet {self.netuid} does not exist on the local chain at {self.directory}"
            )
        names = {f.name for f in dataclasses.fields(SubnetParams)}
        return SubnetParams(**{k: v for k, v in dict(row).items() if k in names})

    def _created_block(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT created_block FROM subnets WHERE netuid = ?", (self.netuid,)).fetchone()
        return int(row[0])

    def _reveal_block(self, db: sqlite3.Connection, params: SubnetParams, block: int) -> int:
        """The first block of the epoch ``commit_reveal_period`` tempos after the one holding ``block``."""
        created = self._created_block(db)
        epoch = (block - created) // params.tempo
        return created + (epoch + params.commit_reveal_period) * params.tempo

    def _store_weights(
        self, db: sqlite3.Connection, validator_uid: int, nonzero: list[tuple[int, int]]
    ) -> None:
        db.execute("DELETE FROM weights WHERE netuid = ? AND validator_uid = ?", (self.netuid, validator_uid))
        db.executemany(
            "INSERT INTO weights (netuid, validator_uid, uid, weight) VALUES (?, ?, ?, ?)",
            [(self.netuid, validator_uid, u, w) for u, w in nonzero],
        )

    def _visible_weights(self, db: sqlite3.Connection, block: int) -> dict[int, dict[int, int]]:
        """Revealed weights, overridden per validator by its latest commitment revealed by ``block``."""
        visible: dict[int, dict[int, int]] = {}
        for v, u, w in db.execute(
            "SELECT validator_uid, uid, weight FROM weights WHERE netuid = ? ORDER BY validator_uid, uid",
            (self.netuid,),
        ):
            visible.setdefault(int(v), {})[int(u)] = int(w)
        for v, payload in db.execute(
            "SELECT validator_uid, weights FROM weight_commits WHERE netuid = ? AND reveal_block <= ?"
            " ORDER BY commit_block",
            (self.netuid, block),
        ):
            visible[int(v)] = {int(u): int(w) for u, w in json.loads(payload)}
        return {v: row for v, row in visible.items() if row}

    def _fold_revealed(self, db: sqlite3.Connection, block: int) -> None:
        """Move commitments revealed by ``block`` into the weights table (epochs up to it have run)."""
        due = db.execute(
            "SELECT validator_uid, weights FROM weight_commits WHERE netuid = ? AND reveal_block <= ?"
            " ORDER BY commit_block",
            (self.netuid, block),
        ).fetchall()
        latest = {int(v): payload for v, payload in due}
        for v, payload in latest.items():
            self._store_weights(db, v, [(int(u), int(w)) for u, w in json.loads(payload)])
        db.execute("DELETE FROM weight_commits WHERE netuid = ? AND reveal_block <= ?", (self.netuid, block))

    def _drop_target_from_commits(self, db: sqlite3.Connection, uid: int) -> None:
        for v, commit_block, payload in db.execute(
            "SELECT validator_uid, commit_block, weights FROM weight_commits WHERE netuid = ?", (self.netuid,)
        ).fetchall():
            kept = [(u, w) for u, w in json.loads(payload) if int(u) != uid]
            db.execute(
                "UPDATE weight_commits SET weights = ? WHERE netuid = ? AND validator_uid = ? AND commit_block = ?",
                (json.dumps(kept), self.netuid, v, commit_block),
            )

    def _epoch_due(self, db: sqlite3.Connection, block: int) -> bool:
        params = self._params(db)
        current = (block - self._created_block(db)) // params.tempo
        state = db.execute("SELECT epoch FROM epochs WHERE netuid = ?", (self.netuid,)).fetchone()
        return current > (0 if state is None else int(state["epoch"]))

    def _run_due_epochs(self, db: sqlite3.Connection, block: int) -> None:
        """Run every epoch whose boundary block has passed since the last one run (in a write).

        The state read is the state at each of those boundaries, because every write runs
        this first; commitments are applied as of each boundary. The epochs run in memory
        and only the last one's bonds and figures are written.
        """
        params = self._params(db)
        created = self._created_block(db)
        current = (block - created) // params.tempo
        state = db.execute("SELECT epoch FROM epochs WHERE netuid = ?", (self.netuid,)).fetchone()
        last = 0 if state is None else int(state["epoch"])
        if current <= last:
            return
        first = max(last + 1, current - MAX_CATCH_UP_EPOCHS + 1)

        rows = self._neuron_rows(db)
        permits = _permits(rows, params.max_validators)
        uids = [int(r["uid"]) for r in rows]
        column = {u: j for j, u in enumerate(uids)}
        validators = [u for u in uids if u in permits]
        row_of = {v: i for i, v in enumerate(validators)}
        stake = {int(r["uid"]): float(r["stake"]) for r in rows}
        stakes = np.array([stake[v] for v in validators])
        bonds = np.zeros((len(validators), len(uids)))
        for v, u, bond in db.execute(
            "SELECT validator_uid, uid, bond FROM bonds WHERE netuid = ?", (self.netuid,)
        ):
            if v in row_of and u in column:
                bonds[row_of[v], column[u]] = bond
        revealed: dict[int, dict[int, int]] = {}
        for v, u, weight in db.execute(
            "SELECT validator_uid, uid, weight FROM weights WHERE netuid = ?", (self.netuid,)
        ):
            revealed.setdefault(int(v), {})[int(u)] = int(weight)
        commits = [
            (int(reveal), int(v), {int(u): int(w) for u, w in json.loads(payload)})
            for reveal, v, payload in db.execute(
                "SELECT reveal_block, validator_uid, weights FROM weight_commits WHERE netuid = ?"
                " ORDER BY commit_block",
                (self.netuid,),
            )
        ]
        yuma = YumaParams(kappa=params.kappa, bond_moving_average=params.bonds_moving_average)

        def matrix(at: int) -> np.ndarray:
            visible = dict(revealed)
            for reveal, v, row in commits:
                if reveal <= at:
                    visible[v] = row
            w = np.zeros((len(validators), len(uids)))
            for v, row in visible.items():
                i = row_of.get(v)
                if i is None:
                    continue
                for u, weight in row.items():
                    # Self-weight is masked as on subtensor (inplace_mask_diag).
                    if u in column and u != v:
                        w[i, column[u]] = weight
            return w

        w = matrix(created + first * params.tempo)
        result = yuma_epoch(w, stakes, bonds, yuma)
        for epoch in range(first + 1, current + 1):
            at = created + epoch * params.tempo
            if any(created + (epoch - 1) * params.tempo < reveal <= at for reveal, _, _ in commits):
                w = matrix(at)
            result = yuma_epoch(w, stakes, result.bonds, yuma)
        self._store_epoch(db, uids, validators, stake, w, result)
        db.execute(
            "INSERT OR REPLACE INTO epochs (netuid, epoch, block) VALUES (?, ?, ?)",
            (self.netuid, current, created + current * params.tempo),
        )
        logger.debug(f"local chain: subnet {self.netuid} epochs {first}..{current} run at block {block}")

    def _store_epoch(
        self,
        db: sqlite3.Connection,
        uids: list[int],
        validators: list[int],
        stake: dict[int, float],
        w: np.ndarray,
        result: EpochResult,
    ) -> None:
        db.execute("DELETE FROM bonds WHERE netuid = ?", (self.netuid,))
        nz_rows, nz_cols = np.nonzero(result.bonds)
        db.executemany(
            "INSERT INTO bonds (netuid, validator_uid, uid, bond) VALUES (?, ?, ?, ?)",
            zip(
                [self.netuid] * len(nz_rows),
                [validators[i] for i in nz_rows.tolist()],
                [uids[j] for j in nz_cols.tolist()],
                result.bonds[nz_rows, nz_cols].tolist(),
                strict=True,
            ),
        )
        db.execute("DELETE FROM epoch_neurons WHERE netuid = ?", (self.netuid,))
        row_of = {v: i for i, v in enumerate(validators)}
        row_sums = w.sum(axis=1)
        records = []
        for j, u in enumerate(uids):
            row = row_of.get(u)
            shown: dict[str, float] = {}
            if row is not None and row_sums[row] > 0:
                cols = np.flatnonzero(w[row])
                shown = dict(
                    zip(
                        [str(uids[k]) for k in cols.tolist()],
                        (w[row, cols] / row_sums[row]).tolist(),
                        strict=True,
                    )
                )
            records.append(
                (
                    self.netuid,
                    u,
                    int(row is not None),
                    stake[u],
                    float(result.consensus[j]),
                    float(result.incentive[j]),
                    float(result.validator_trust[row]) if row is not None else 0.0,
                    float(result.dividends[row]) if row is not None else 0.0,
                    json.dumps(shown),
                )
            )
        db.executemany(
            "INSERT INTO epoch_neurons (netuid, uid, validator, stake, consensus, incentive, trust, dividend,"
            " weights) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            records,
        )

    def _neuron_rows(self, db: sqlite3.Connection) -> list[sqlite3.Row]:
        return db.execute("SELECT * FROM neurons WHERE netuid = ? ORDER BY uid", (self.netuid,)).fetchall()

    def _incentive(
        self, db: sqlite3.Connection, rows: list[sqlite3.Row], permits: set[int]
    ) -> dict[int, float]:
        """Stake-weighted mean, over permitted validators, of their visible normalised weights."""
        stake = {int(r["uid"]): float(r["stake"]) for r in rows}
        per_validator: dict[int, dict[int, int]] = {}
        for v, row in self._visible_weights(db, self.block()).items():
            for u, w in row.items():
                if v in permits and u in stake:
                    per_validator.setdefault(v, {})[u] = w
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


def _engine(path: Path) -> Engine:
    """The chain file's engine: WAL, a busy timeout long enough for a whole localnet to queue
    behind one writer, the file private (0600, as the wallets whose keys register in it), and
    no pool, so each call's connection is its own and none crosses a ``fork``."""
    return make_engine(database_url(path), pooled=False)


@contextlib.contextmanager
def _connection(engine: Engine) -> Iterator[sqlite3.Connection]:
    # The driver's connection in autocommit: we issue BEGIN ourselves, so writes take the
    # lock up front (BEGIN IMMEDIATE) instead of upgrading a read lock and failing with SQLITE_BUSY.
    proxy = engine.raw_connection()
    try:
        db = cast(sqlite3.Connection, proxy.driver_connection)
        db.row_factory = sqlite3.Row
        yield db
    finally:
        proxy.close()


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
