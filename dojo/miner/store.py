"""The miner's store: task mappings, validators' scores and the pseudonym secret, on disk.

A mapping (validator hotkey, request id) → platform task is committed before the miner
replies, so a restarted miner answers a validator's repeat with the same task and a later
``TaskResultRequest`` finds it. Every method is synchronous and short; the neuron calls
them through ``asyncio.to_thread`` so that the event loop never waits on the disk.

The database is ``--neuron.database_url`` (``MINER_DATABASE_URL``) when set, else the SQLite file
``<data dir>/miner.sqlite``; its schema comes from the Alembic migrations in
``dojo/miner/migrations/`` (run by :class:`MinerStore` on opening), never from
``create_all``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dojo.miner.answers import Verdict
from dojo.miner.models import JudgedAnswer, MinerSecret, MinerTask, ValidatorScore
from template.clock import utcnow
from template.storage import database_url, make_engine, migrate, record

__all__ = [
    "DB_FILENAME",
    "MIGRATIONS_DIR",
    "MinerStore",
    "StoredScore",
    "StoredTask",
    "miner_database_url",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
DB_FILENAME = "miner.sqlite"
SECRET_BYTES = 32


def miner_database_url(data_dir: str | Path, database_url_setting: str | None = None) -> str:
    """The miner's database: the configured URL if any, else ``<data_dir>/miner.sqlite``."""
    if database_url_setting:
        return database_url(database_url_setting)
    return database_url(Path(data_dir).expanduser() / DB_FILENAME)


@dataclass(frozen=True)
class StoredTask:
    """One accepted request and the platform task it became."""

    validator_hotkey: str
    request_id: str
    dojo_task_id: str
    request_hash: str
    completion_ids: tuple[str, ...]
    criteria_types: tuple[str, ...]
    expire_at: datetime
    created_at: datetime
    results_returned_at: datetime | None
    backend: str = "dojo"
    max_results: int | None = None
    withdrawn_at: datetime | None = None


@dataclass(frozen=True)
class StoredScore:
    validator_hotkey: str
    request_id: str
    score: float
    received_at: datetime


def _stored(row: MinerTask) -> StoredTask:
    return record(
        StoredTask, row, completion_ids=tuple(row.completion_ids), criteria_types=tuple(row.criteria_types)
    )


def _verdict(row: JudgedAnswer) -> Verdict:
    return record(Verdict, row, values=dict(row.answer_values))


class MinerStore:
    """The miner database behind ``url`` (see :func:`miner_database_url`).

    ``migrate_schema=True`` (the neuron) upgrades the schema on opening; ``False`` (the
    ``dojo miner status`` command) only reads what is there.
    """

    def __init__(self, url: str, *, migrate_schema: bool = True):
        self.url = url
        self.engine: Engine = make_engine(url)
        self._secret: bytes | None = None
        if migrate_schema:
            migrate(self.engine, MIGRATIONS_DIR, label="miner")

    def close(self) -> None:
        self.engine.dispose()

    def _insert(self, table: Any) -> Any:
        """An INSERT that can say ON CONFLICT, in the dialect of this database."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # --- tasks ---------------------------------------------------------------------------

    def find_task(self, validator_hotkey: str, request_id: str) -> StoredTask | None:
        with Session(self.engine) as db, db.begin():
            row = db.execute(
                select(MinerTask).where(
                    MinerTask.validator_hotkey == validator_hotkey, MinerTask.request_id == request_id
                )
            ).scalar_one_or_none()
            return None if row is None else _stored(row)

    def save_task(
        self,
        *,
        validator_hotkey: str,
        request_id: str,
        dojo_task_id: str,
        request_hash: str,
        completion_ids: Sequence[str],
        criteria_types: Sequence[str],
        expire_at: datetime,
        backend: str = "dojo",
        max_results: int | None = None,
    ) -> StoredTask:
        """Store a mapping in one transaction; returns the stored one.

        When the (validator, request id) is already stored (another process of this miner
        got there first), the earlier mapping is kept and returned: the caller compares
        its hash.
        """
        with Session(self.engine) as db, db.begin():
            db.execute(
                self._insert(MinerTask.__table__)
                .values(
                    validator_hotkey=validator_hotkey,
                    request_id=request_id,
                    dojo_task_id=dojo_task_id,
                    request_hash=request_hash,
                    completion_ids=list(completion_ids),
                    criteria_types=list(criteria_types),
                    expire_at=expire_at,
                    created_at=utcnow(),
                    backend=backend,
                    max_results=max_results,
                )
                .on_conflict_do_nothing(index_elements=["validator_hotkey", "request_id"])
            )
            row = db.execute(
                select(MinerTask).where(
                    MinerTask.validator_hotkey == validator_hotkey, MinerTask.request_id == request_id
                )
            ).scalar_one()
            return _stored(row)

    def record_results_returned(
        self, validator_hotkey: str, request_id: str, count: int, at: datetime | None = None
    ) -> None:
        """Note that ``count`` worker results went back to the validator (the latest time wins)."""
        with Session(self.engine) as db, db.begin():
            db.execute(
                update(MinerTask)
                .where(MinerTask.validator_hotkey == validator_hotkey, MinerTask.request_id == request_id)
                .values(results_returned_at=at or utcnow(), results_returned=count)
            )

    def open_tasks(self, backend: str, now: datetime, limit: int = 1000) -> list[StoredTask]:
        """The tasks on ``backend`` whose deadline has not passed, oldest first."""
        with Session(self.engine) as db, db.begin():
            rows = db.execute(
                select(MinerTask)
                .where(
                    MinerTask.backend == backend, MinerTask.expire_at > now, MinerTask.withdrawn_at.is_(None)
                )
                .order_by(MinerTask.id)
                .limit(limit)
            ).scalars()
            return [_stored(row) for row in rows]

    def expired_tasks(self, backend: str, before: datetime, limit: int = 100) -> list[StoredTask]:
        """The tasks on ``backend`` due before ``before`` and not yet withdrawn, earliest due first."""
        with Session(self.engine) as db, db.begin():
            rows = db.execute(
                select(MinerTask)
                .where(
                    MinerTask.backend == backend,
                    MinerTask.expire_at < before,
                    MinerTask.withdrawn_at.is_(None),
                )
                .order_by(MinerTask.expire_at, MinerTask.id)
                .limit(limit)
            ).scalars()
            return [_stored(row) for row in rows]

    def mark_withdrawn(self, validator_hotkey: str, request_id: str, at: datetime) -> None:
        """Note that the task left its workers' reach at ``at`` (by the miner's clock): it is
        not read nor withdrawn again."""
        with Session(self.engine) as db, db.begin():
            db.execute(
                update(MinerTask)
                .where(MinerTask.validator_hotkey == validator_hotkey, MinerTask.request_id == request_id)
                .values(withdrawn_at=at)
            )

    # --- answers -------------------------------------------------------------------------

    def pinned_answers(self, validator_hotkey: str, request_id: str) -> list[Verdict]:
        """Every answer judged for the task, in the order it was judged."""
        with Session(self.engine) as db, db.begin():
            rows = db.execute(
                select(JudgedAnswer)
                .where(
                    JudgedAnswer.validator_hotkey == validator_hotkey, JudgedAnswer.request_id == request_id
                )
                .order_by(JudgedAnswer.seq)
            ).scalars()
            return [_verdict(row) for row in rows]

    def pin_answers(self, validator_hotkey: str, request_id: str, verdicts: Sequence[Verdict]) -> None:
        """Keep new verdicts for good, after the ones already kept; an answer judged before
        keeps its first verdict."""
        if not verdicts:
            return
        now = utcnow()
        with Session(self.engine) as db, db.begin():
            last = db.execute(
                select(func.max(JudgedAnswer.seq)).where(
                    JudgedAnswer.validator_hotkey == validator_hotkey, JudgedAnswer.request_id == request_id
                )
            ).scalar_one()
            start = (last or 0) + 1
            db.execute(
                self._insert(JudgedAnswer.__table__)
                .values(
                    [
                        {
                            "validator_hotkey": validator_hotkey,
                            "request_id": request_id,
                            "answer_id": v.answer_id,
                            "seq": start + i,
                            "worker": v.worker,
                            "counted": v.counted,
                            "reason": None if v.reason is None else v.reason[:1000],
                            "submitted_at": v.submitted_at,
                            "lead_time": v.lead_time,
                            "answer_values": v.values,
                            "rationale": v.rationale,
                            "judged_at": now,
                        }
                        for i, v in enumerate(verdicts)
                    ]
                )
                .on_conflict_do_nothing(index_elements=["validator_hotkey", "request_id", "answer_id"])
            )

    # --- scores --------------------------------------------------------------------------

    def save_score(
        self, validator_hotkey: str, request_id: str, score: float, received_at: datetime | None = None
    ) -> StoredScore:
        """Store a validator's score for one of its requests; a repeat overwrites it."""
        received_at = received_at or utcnow()
        insert = self._insert(ValidatorScore.__table__).values(
            validator_hotkey=validator_hotkey, request_id=request_id, score=score, received_at=received_at
        )
        with Session(self.engine) as db, db.begin():
            db.execute(
                insert.on_conflict_do_update(
                    index_elements=["validator_hotkey", "request_id"],
                    set_={"score": insert.excluded.score, "received_at": insert.excluded.received_at},
                )
            )
        return StoredScore(validator_hotkey, request_id, score, received_at)

    # --- the pseudonym secret ------------------------------------------------------------

    def worker_secret(self) -> bytes:
        """The miner's random 32-byte secret, created on first use and kept for good.

        Worker pseudonyms are derived from it, so they stay the same across restarts and
        mean nothing without it.
        """
        if self._secret is None:
            with Session(self.engine) as db, db.begin():
                db.execute(
                    self._insert(MinerSecret.__table__)
                    .values(id=1, secret=secrets.token_bytes(SECRET_BYTES), created_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["id"])
                )
                self._secret = db.execute(select(MinerSecret.secret).where(MinerSecret.id == 1)).scalar_one()
        return self._secret

    # --- the operator's view -------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counts and scores per validator, as ``dojo miner status --json`` prints them."""
        with Session(self.engine) as db, db.begin():
            task_rows = db.execute(
                select(
                    MinerTask.validator_hotkey,
                    func.count(),
                    func.count(MinerTask.results_returned_at),
                    func.coalesce(func.sum(MinerTask.results_returned), 0),
                ).group_by(MinerTask.validator_hotkey)
            ).all()
            score_rows = db.execute(
                select(
                    ValidatorScore.validator_hotkey,
                    func.count(),
                    func.avg(ValidatorScore.score),
                ).group_by(ValidatorScore.validator_hotkey)
            ).all()
            latest_rows = db.execute(
                select(
                    ValidatorScore.validator_hotkey, ValidatorScore.score, ValidatorScore.received_at
                ).order_by(ValidatorScore.validator_hotkey, ValidatorScore.received_at)
            ).all()
        validators: dict[str, dict[str, Any]] = {}

        def entry(hotkey: str) -> dict[str, Any]:
            return validators.setdefault(
                hotkey,
                {
                    "tasks_received": 0,
                    "results_returned": 0,
                    "rankings_returned": 0,
                    "scores_received": 0,
                    "mean_score": None,
                    "latest_score": None,
                    "latest_score_at": None,
                },
            )

        for hotkey, received, returned, rankings in task_rows:
            entry(hotkey).update(
                tasks_received=received, results_returned=returned, rankings_returned=rankings
            )
        for hotkey, count, mean in score_rows:
            entry(hotkey).update(scores_received=count, mean_score=float(mean))
        for hotkey, score, received_at in latest_rows:  # ordered by time: the last one stays
            entry(hotkey).update(latest_score=score, latest_score_at=received_at.isoformat())
        return {
            "tasks_received": sum(v["tasks_received"] for v in validators.values()),
            "results_returned": sum(v["results_returned"] for v in validators.values()),
            "rankings_returned": sum(v["rankings_returned"] for v in validators.values()),
            "scores_received": sum(v["scores_received"] for v in validators.values()),
            "validators": dict(sorted(validators.items())),
        }
