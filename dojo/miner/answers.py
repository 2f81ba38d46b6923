"""The miner's rules for what a backend reports: which answers count, and why the others do not.

Whatever a worker backend guarantees (the Dojo platform holds tasks to distinct workers and
whole answers; Label Studio's community edition does neither under load), the miner counts
an answer only when it is

1. an answer, not a skip or a cancelled annotation;
2. submitted before the task's deadline;
3. by a worker with no answer counted for this task yet (one answer per person);
4. whole: exactly the criteria the task asked for, each naming exactly the task's
   completions, a ranking being the ranks 1..n each once (1 is best);
5. within the number of answers the task asked for: the first ``max_results`` count.

Answers are judged in the order the backend received them, once: a verdict is pinned in
the miner's database (:meth:`dojo.miner.store.MinerStore.pin_answers`) and never revised,
so an answer never counts twice and a later one never displaces an earlier one. Every
answer not counted is logged with its reason.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dojo.miner.backends import Answer, BackendTask


def worker_pseudonym_for_validators(secret: bytes, platform_worker_id: str) -> str:
    """Stable for one worker of this miner; says nothing of the backend's id without the secret."""
    return "w" + hmac.new(secret, platform_worker_id.encode("utf-8"), hashlib.sha256).hexdigest()[:24]


@dataclass(frozen=True)
class Verdict:
    """What the miner made of one answer: counted (with its values) or not (with the reason)."""

    answer_id: str
    worker: str  # the pseudonym
    counted: bool
    reason: str | None
    submitted_at: datetime
    lead_time: float | None
    values: dict[str, dict[str, float]]
    rationale: str | None = None


def whole_answer_problem(task: BackendTask, values: Any) -> str | None:
    """Why ``values`` ({criterion: {completion id: rank or score}}) is not one whole answer to
    ``task``, or None when it is."""
    if not isinstance(values, dict):
        return "it is not an answer per criterion"
    asked, given = sorted(task.criteria_types), sorted(values)
    if asked != given:
        return f"it answers criteria {given}, the task asked for {asked}"
    expected = sorted(task.completion_ids)
    for criterion, answer in values.items():
        if not isinstance(answer, dict) or sorted(answer) != expected:
            named = sorted(answer) if isinstance(answer, dict) else answer
            return f"its {criterion} names completions {named}, not {expected}"
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in answer.values()
        ):
            return f"its {criterion} holds values that are not finite numbers"
        if criterion == "ranking" and sorted(answer.values()) != list(range(1, len(expected) + 1)):
            return f"its ranking is not the ranks 1..{len(expected)} each once: {sorted(answer.values())}"
    return None


def judge(
    task: BackendTask, answers: Sequence[Answer], pinned: Iterable[Verdict], secret: bytes
) -> list[Verdict]:
    """Verdicts for the ``answers`` not yet ``pinned``, in the backend's order, after the pinned ones."""
    pinned = list(pinned)
    seen = {v.answer_id for v in pinned}
    counted_workers = {v.worker for v in pinned if v.counted}
    count = len(counted_workers)
    verdicts: list[Verdict] = []
    for answer in answers:
        if answer.answer_id in seen:
            continue
        seen.add(answer.answer_id)
        worker = worker_pseudonym_for_validators(secret, answer.worker_id)
        values = {k: dict(v) for k, v in answer.values.items()}
        reason: str | None
        if answer.skipped:
            reason = "skipped or cancelled"
        elif answer.problem is not None:
            reason = answer.problem
        elif answer.submitted_at > task.expire_at:
            reason = f"submitted at {answer.submitted_at.isoformat()}, after the deadline {task.expire_at.isoformat()}"
        elif worker in counted_workers:
            reason = "a second answer by a worker already counted for this task"
        else:
            reason = whole_answer_problem(task, values)
            if reason is None and count >= task.max_results:
                reason = f"beyond the {task.max_results} answers the task asked for"
        if reason is None:
            counted_workers.add(worker)
            count += 1
        verdicts.append(
            Verdict(
                answer_id=answer.answer_id,
                worker=worker,
                counted=reason is None,
                reason=reason,
                submitted_at=answer.submitted_at,
                lead_time=answer.lead_time,
                values=values if reason is None else {},
                rationale=answer.rationale if reason is None else None,
            )
        )
    return verdicts


__all__ = ["Verdict", "judge", "whole_answer_problem", "worker_pseudonym_for_validators"]
