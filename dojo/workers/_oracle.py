"""Where a simulated worker learns the true order of a task's completions.

Only the simulation knows it: nothing the miner or the platform sends carries a ground
truth. An :class:`Oracle` maps the completion ids a worker sees to their true ranks;
:class:`ValidatorDatabaseOracle` reads them from the validator's task database (for the
localnet and the end-to-end tests), :class:`ValidatorDatabasesOracle` from several (a
subnet of several validators, whose tasks a miner's workers cannot tell apart),
:class:`DictOracle` from a mapping (for tests).

Organic tasks have no ground truth in the validator's database: their caller knows the order
it intends. A simulated caller writes it down (:class:`IntendedOrders`, one JSON line per
task: ``{"external_id", "ranks": {completion id: rank}}``), and the oracle finds it through
the organic task's external id and its completions' labels, as it finds synthetic truth.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from loguru import logger
from sqlalchemy import and_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from dojo.validator.models import Assignment, AssignmentCompletion, OrganicTask, TaskCompletion
from template.storage import database_url, read_only_engine

# Beyond this many remembered ids the cache starts afresh, so a long run stays small.
MAX_CACHED_IDS = 100_000


class Oracle(Protocol):
    def true_ranks(self, completion_ids: Sequence[str]) -> dict[str, int] | None:
        """True rank (1 = best) of each id it knows, or None when it knows none of them.

        May block (it is called from a thread).
        """
        ...


class DictOracle:
    """An oracle over a fixed mapping of completion id to true rank."""

    def __init__(self, mapping: Mapping[str, int]):
        self._ranks = dict(mapping)

    def true_ranks(self, completion_ids: Sequence[str]) -> dict[str, int] | None:
        known = {cid: self._ranks[cid] for cid in completion_ids if cid in self._ranks}
        return known or None


class IntendedOrders:
    """The orders a (simulated) organic caller intends, by external id, from a JSON-lines file
    it appends to; read again as it grows."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._orders: dict[str, dict[str, int]] = {}
        self._offset = 0
        self._lock = threading.Lock()

    @staticmethod
    def append(path: str | Path, external_id: str, ranks: Mapping[str, int]) -> None:
        with Path(path).open("a") as fh:
            fh.write(json.dumps({"external_id": external_id, "ranks": dict(ranks)}) + "\n")
            fh.flush()

    def ranks(self, external_id: str) -> dict[str, int] | None:
        with self._lock:
            if external_id not in self._orders:
                self._read()
            return self._orders.get(external_id)

    def _read(self) -> None:
        if not self.path.is_file():
            return
        with self.path.open() as fh:
            fh.seek(self._offset)
            while line := fh.readline():
                if not line.endswith("\n"):
                    break  # being written: read it whole next time
                self._offset = fh.tell()
                entry: Any = json.loads(line)
                self._orders[str(entry["external_id"])] = {str(k): int(v) for k, v in entry["ranks"].items()}


class ValidatorDatabaseOracle:
    """True ranks from the validator's task database, read-only.

    The ids a worker sees are the ones the miner put on the platform: the validator's
    per-miner ids (``assignment_completions.miner_completion_id``), whose ground truth is
    ``task_completions.ground_truth_rank`` of the same task and completion. ``db`` is a
    SQLAlchemy URL or a SQLite file path. A database that does not exist yet, or has no
    tables yet, knows nothing (None); a rank once found is remembered, an absence never.
    """

    def __init__(self, db: str | Path, intended: IntendedOrders | None = None):
        self.url = database_url(db)
        self._engine = read_only_engine(self.url)
        self._found: dict[str, int] = {}
        self._lock = threading.Lock()
        self.intended = intended

    def true_ranks(self, completion_ids: Sequence[str]) -> dict[str, int] | None:
        with self._lock:
            wanted = [cid for cid in dict.fromkeys(completion_ids) if cid not in self._found]
        if wanted:
            found = self._look_up(wanted)
            with self._lock:
                if len(self._found) + len(found) > MAX_CACHED_IDS:
                    self._found.clear()
                self._found.update(found)
        with self._lock:
            known = {cid: self._found[cid] for cid in completion_ids if cid in self._found}
        return known or None

    def _look_up(self, ids: list[str]) -> dict[str, int]:
        statement = (
            select(
                AssignmentCompletion.miner_completion_id,
                TaskCompletion.ground_truth_rank,
                Assignment.task_id,
                AssignmentCompletion.completion_id,
            )
            .join(Assignment, Assignment.assignment_id == AssignmentCompletion.assignment_id)
            .join(
                TaskCompletion,
                and_(
                    TaskCompletion.task_id == Assignment.task_id,
                    TaskCompletion.completion_id == AssignmentCompletion.completion_id,
                ),
            )
            .where(AssignmentCompletion.miner_completion_id.in_(ids))
        )
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(statement).all()
                found = {str(cid): int(rank) for cid, rank, _, _ in rows if rank is not None}
                unknown = [
                    (str(cid), task_id, completion_id)
                    for cid, rank, task_id, completion_id in rows
                    if rank is None
                ]
                if unknown and self.intended is not None:
                    found.update(self._intended(conn, unknown))
        except DBAPIError as exc:
            # Before the validator has created (or migrated) its database there is nothing to know.
            logger.debug("oracle: cannot read the validator database ({}): {}", self._shown_url, exc.orig)
            return {}
        return found

    def _intended(self, conn: Any, unknown: list[tuple[str, str, str]]) -> dict[str, int]:
        """The intended ranks of organic completions, through their task's external id and labels."""
        assert self.intended is not None
        tasks = {
            task_id: (external_id, labels or {})
            for task_id, external_id, labels in conn.execute(
                select(OrganicTask.task_id, OrganicTask.external_id, OrganicTask.labels).where(
                    OrganicTask.task_id.in_({t for _, t, _ in unknown})
                )
            )
        }
        found: dict[str, int] = {}
        for cid, task_id, completion_id in unknown:
            external_id, labels = tasks.get(task_id, (None, {}))
            ranks = self.intended.ranks(external_id) if external_id else None
            label = labels.get(completion_id)
            if ranks is not None and label in ranks:
                found[cid] = ranks[label]
        return found

    @property
    def _shown_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()


class ValidatorDatabasesOracle:
    """True ranks from several validators' databases: a miner serves every validator, and
    its workers see a task without knowing which validator sent it. Each id is looked up
    in the databases in turn until found (the ids are the validators' own, never shared)."""

    def __init__(self, dbs: Sequence[str | Path], intended: IntendedOrders | None = None):
        if not dbs:
            raise ValueError("no validator database to read")
        self.oracles = [ValidatorDatabaseOracle(db, intended) for db in dbs]

    @property
    def url(self) -> str:
        return ", ".join(o.url for o in self.oracles)

    def true_ranks(self, completion_ids: Sequence[str]) -> dict[str, int] | None:
        known: dict[str, int] = {}
        for oracle in self.oracles:
            wanted = [cid for cid in completion_ids if cid not in known]
            if not wanted:
                break
            known.update(oracle.true_ranks(wanted) or {})
        return known or None

    def close(self) -> None:
        for oracle in self.oracles:
            oracle.close()
