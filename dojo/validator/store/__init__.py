"""The validator's task database (:mod:`dojo.validator.models`): every write of a task's life.

Each method is one transaction and blocks; the neuron calls them through
``asyncio.to_thread``. The order of writes is what makes a restart lose nothing:

1. :meth:`TaskStore.add_task` writes the task, its completions and ground truth, and every
   miner's assignment (request id, completion ids and order) **before** anything is sent.
2. :meth:`record_sends` stores each miner's answer to ``FeedbackRequest``; an assignment
   still ``pending`` after a crash is sent again with the same request id, which the miner
   answers with the same task (:meth:`pending_sends`).
3. After the deadline, :meth:`due_collections` lists what to ask for; :meth:`record_collection`
   stores what came back, or :meth:`retry_collection` schedules another try within the grace.
4. :meth:`open_round` puts collected tasks in a round; :meth:`commit_round` writes the
   round's scores, the moving scores and the round's end in one transaction, and refuses
   to do it twice, so a round cut short by a crash is scored again, once.

:class:`TaskStore` is one object over three modules, by what each stores: ``tasks``
(tasks and assignments: steps 1-3), ``rounds`` (rounds and scores, moving scores and
carried reliability: step 4) and ``weights`` (every weights attempt); ``_base`` holds the
engine and sessions they share.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, inspect, select
from sqlalchemy.orm import sessionmaker

from dojo.validator.models import (
    Assignment,
    CollectStatus,
    MinerResult,
    MinerScore,
    Round,
    SendStatus,
    Task,
    TaskStatus,
    WeightSet,
)
from dojo.validator.store import rounds, tasks
from dojo.validator.store._base import DB_FILE, MIGRATIONS, ORGANIC_SOURCE, _iso
from dojo.validator.store.rounds import *  # noqa: F403
from dojo.validator.store.tasks import *  # noqa: F403
from dojo.validator.store.weights import WeightRecords, _weights_view
from template.clock import utcnow
from template.storage import database_url, read_only_engine


class TaskStore(tasks.TaskRecords, rounds.RoundRecords, WeightRecords):
    """The validator's database at ``url`` (SQLAlchemy URL or SQLite file path), migrated on
    open: its tasks and assignments, its rounds and scores, and its weights."""

    @classmethod
    def read_only(cls, url: str | Path) -> TaskStore:
        """The database at ``url`` for reading only (``status`` and the other reads): it is
        neither migrated nor written, and no write lock is taken from the running validator."""
        store = cls.__new__(cls)
        store.url = database_url(url)
        store.engine = read_only_engine(store.url)
        store._sessions = sessionmaker(store.engine, expire_on_commit=False)
        store._scores_lock = threading.Lock()
        return store

    def ready(self) -> bool:
        """Whether the database has its tables: a reader can open the file the validator has
        just made while its first migration (one transaction) is not yet committed."""
        return "alembic_version" in inspect(self.engine).get_table_names()

    @classmethod
    def for_config(cls, database_url_setting: str | None, data_dir: Path) -> TaskStore:
        return cls(database_url_setting or (data_dir / DB_FILE))

    def close(self) -> None:
        self.engine.dispose()

    # -- reading, for `dojo validator status` ---------------------------------------------------

    def status(self, now: datetime | None = None) -> dict[str, Any]:
        """What the validator has done: counts of tasks by state, the last round, each miner,
        the last weights. The shape is what ``dojo validator status --json`` prints."""
        now = now or utcnow()
        with self._sessions.begin() as db:
            by_status = dict(db.execute(select(Task.status, func.count()).group_by(Task.status)).all())
            awaiting = db.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.status == TaskStatus.WAITING, Task.expire_at <= now)
            )
            last_round = db.scalars(
                select(Round).where(Round.status == "scored").order_by(Round.round_id.desc()).limit(1)
            ).first()
            per_miner: dict[str, dict[str, Any]] = {}
            counts = db.execute(
                select(
                    Assignment.miner_hotkey,
                    func.max(Assignment.miner_uid),
                    func.count(),
                    func.sum(_flag(Assignment.send_status == SendStatus.ACCEPTED)),
                    func.sum(_flag(Assignment.collect_status == CollectStatus.COLLECTED)),
                    func.sum(_flag(Assignment.score.is_not(None))),
                ).group_by(Assignment.miner_hotkey)
            ).all()
            for hotkey, uid, sent, accepted, answered, scored in counts:
                per_miner[hotkey] = {
                    "uid": int(uid),
                    "tasks_sent": int(sent),
                    "accepted": int(accepted or 0),
                    "answered": int(answered or 0),
                    "scored": int(scored or 0),
                    "latest_score": None,
                    "moving_score": None,
                }
            for row in db.scalars(select(MinerScore)):
                entry = per_miner.setdefault(
                    row.miner_hotkey,
                    {"uid": row.miner_uid, "tasks_sent": 0, "accepted": 0, "answered": 0, "scored": 0},
                )
                entry["latest_score"] = row.latest_score
                entry["moving_score"] = row.moving_score
            last_set = db.scalars(
                select(WeightSet)
                .where(WeightSet.outcome == "set")
                .order_by(WeightSet.weight_set_id.desc())
                .limit(1)
            ).first()
            last_attempt = db.scalars(
                select(WeightSet).order_by(WeightSet.weight_set_id.desc()).limit(1)
            ).first()
            total_sent = db.scalar(select(func.count()).select_from(Assignment)) or 0
            total_results = db.scalar(select(func.count()).select_from(MinerResult)) or 0
            rounds_scored = (
                db.scalar(select(func.count()).select_from(Round).where(Round.status == "scored")) or 0
            )
        waiting = int(by_status.get(TaskStatus.WAITING, 0))
        return {
            "tasks": {
                "total": int(sum(by_status.values())),
                "pending": int(by_status.get(TaskStatus.SENDING, 0)) + waiting - int(awaiting or 0),
                "awaiting_collection": int(awaiting or 0),
                "collected": int(by_status.get(TaskStatus.COLLECTED, 0))
                + int(by_status.get(TaskStatus.SCORING, 0)),
                "scored": int(by_status.get(TaskStatus.SCORED, 0)),
                "unsent": int(by_status.get(TaskStatus.UNSENT, 0)),
            },
            "assignments_sent": int(total_sent),
            "results_collected": int(total_results),
            "rounds_scored": int(rounds_scored),
            "last_round": None
            if last_round is None
            else {
                "round_id": last_round.round_id,
                "scored_at": _iso(last_round.scored_at),
                "tasks": last_round.n_tasks,
                "miners": last_round.n_miners,
                "mean_task_agreement": last_round.mean_task_agreement,
            },
            "miners": dict(sorted(per_miner.items(), key=lambda kv: kv[1]["uid"])),
            "last_weights": None if last_set is None else _weights_view(last_set),
            "last_weights_attempt": None if last_attempt is None else _weights_view(last_attempt),
            "organic": self._organic_counts(),
        }

    def _organic_counts(self) -> dict[str, int] | None:
        """Organic tasks by state and their webhooks; None for a database from before them."""
        from dojo.validator.organic.store import OrganicStore

        if not inspect(self.engine).has_table("organic_tasks"):
            return None
        return OrganicStore(self.engine).counts()


def _flag(condition: Any) -> Any:
    return case((condition, 1), else_=0)


__all__ = [
    "DB_FILE",
    "MIGRATIONS",
    "ORGANIC_SOURCE",
    *rounds.__all__,
    *tasks.__all__,
    "TaskStore",
]
