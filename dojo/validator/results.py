"""Checking what a miner returns for a task, before any of it is stored or scored.

A miner's reply is accepted whole or refused whole: every result must be one worker's
complete answer to the criterion the task asked for, in the completion ids this miner was
given, and no worker may answer twice. The workers are the miner's pseudonyms
(:data:`~commons.protocol.WORKER_PSEUDONYM`), at most the
:data:`~commons.protocol.MAX_WORKERS_PER_TASK` the validator asked each miner for: a miner
that invents more workers than it was asked for, or names them otherwise, has its whole reply
refused, so none of them reaches a round or the dataset. A refused reply counts as no answer (the miner
scores 0 on the task) and its reason is logged and stored with the assignment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from commons.protocol import MAX_WORKERS_PER_TASK, WORKER_PSEUDONYM, WorkerResult
from dojo.validator.store import AcceptedResult

# Clocks differ between machines; a result stamped a little in the future is not a lie.
CLOCK_SKEW = timedelta(minutes=5)
_PSEUDONYM = re.compile(WORKER_PSEUDONYM)


class ResultsRefused(ValueError):
    """The miner's results break a rule; the message says which result and why."""


def check_results(
    results: Sequence[WorkerResult],
    *,
    completion_ids: Mapping[str, str],
    criteria: Sequence[Mapping[str, Any]],
    sent_at: datetime | None,
    now: datetime,
) -> list[AcceptedResult]:
    """The results in the task's completion ids, or :class:`ResultsRefused`.

    ``completion_ids`` maps the miner's completion ids to the task's; ``criteria`` are the
    task's criteria as sent (``{"type": "ranking"}``, ``{"type": "multi-score", "min", "max"}``).
    """
    workers = {r.worker_id for r in results}
    if len(workers) > MAX_WORKERS_PER_TASK:
        raise ResultsRefused(
            f"the reply names {len(workers)} workers; a miner is asked for at most {MAX_WORKERS_PER_TASK}"
        )
    by_type = {str(c["type"]): c for c in criteria}
    expected = set(completion_ids)
    n = len(expected)
    seen: set[tuple[str, str]] = set()
    accepted = []
    for i, result in enumerate(results):
        where = f"result {i} (worker {result.worker_id!r})"
        if not _PSEUDONYM.fullmatch(result.worker_id):
            raise ResultsRefused(f"{where}: not a worker pseudonym ('w' and 24 hex digits)")
        criterion = by_type.get(result.criteria_type)
        if criterion is None:
            raise ResultsRefused(f"{where}: criterion {result.criteria_type!r} was not asked for")
        key = (result.worker_id, result.criteria_type)
        if key in seen:
            raise ResultsRefused(f"{where}: the worker answers twice")
        seen.add(key)
        given = set(result.values)
        if unknown := sorted(given - expected):
            raise ResultsRefused(f"{where}: names completions this miner was not given: {unknown[:3]}")
        if missing := sorted(expected - given):
            raise ResultsRefused(f"{where}: misses {len(missing)} of the {n} completions")
        values = list(result.values.values())
        if not all(math.isfinite(v) for v in values):
            raise ResultsRefused(f"{where}: values must be finite numbers")
        if result.criteria_type == "ranking":
            if sorted(values) != list(range(1, n + 1)):
                raise ResultsRefused(f"{where}: ranks {sorted(values)} are not a ranking 1..{n}")
        else:
            lo, hi = float(criterion["min"]), float(criterion["max"])
            if any(not lo <= v <= hi for v in values):
                raise ResultsRefused(f"{where}: scores outside the criterion's range [{lo:g}, {hi:g}]")
        if result.submitted_at > now + CLOCK_SKEW:
            raise ResultsRefused(f"{where}: submitted at {result.submitted_at.isoformat()}, in the future")
        if sent_at is not None and result.submitted_at < sent_at - CLOCK_SKEW:
            raise ResultsRefused(
                f"{where}: submitted at {result.submitted_at.isoformat()}, before the task was sent"
            )
        accepted.append(
            AcceptedResult(
                worker_id=result.worker_id,
                criteria_type=result.criteria_type,
                values={completion_ids[cid]: float(v) for cid, v in result.values.items()},
                submitted_at=result.submitted_at,
                rationale=result.rationale,
            )
        )
    return accepted
