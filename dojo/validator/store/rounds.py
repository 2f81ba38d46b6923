"""Rounds and scores: the rounds of collected tasks, the scores of each miner on each task
and their delivery, the moving scores and the carried reliability (step 4 of
:mod:`dojo.validator.store`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.orm import Session

from commons.scoring import MovingScores
from dojo.validator.models import (
    Assignment,
    MinerReliability,
    MinerResult,
    MinerScore,
    Round,
    SendStatus,
    Task,
    TaskCompletion,
    TaskScore,
    TaskStatus,
)
from dojo.validator.organic.store import record_organic_results
from dojo.validator.store._base import ORGANIC_SOURCE, StoreBase
from dojo.validator.store.tasks import AcceptedResult


@dataclass
class RoundTask:
    task_id: str
    completion_ids: list[str]  # the task's own order
    ground_truth: list[int | None]
    criteria: list[dict[str, Any]]
    organic: bool = False  # an outside caller's task: no ground truth, scored by consensus alone


@dataclass
class RoundAssignment:
    assignment_id: int
    task_id: str
    miner_hotkey: str
    miner_uid: int
    results: list[AcceptedResult] = field(default_factory=list)


@dataclass
class RoundInputs:
    round_id: int
    tasks: list[RoundTask]
    assignments: list[RoundAssignment]
    # Each miner's reliability carried from earlier rounds (miner_reliability), by hotkey.
    reliability: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskMinerScore:
    task_id: str
    assignment_id: int
    miner_hotkey: str
    miner_uid: int
    answered: bool
    score: float
    agreement: float
    kappa: float
    rho_consensus: float
    rho_ground_truth: float
    distance: float
    answer: list[float] | None
    n_workers: int


@dataclass(frozen=True)
class RoundScores:
    round_id: int
    task_scores: list[TaskMinerScore]
    # task id -> (task agreement, consensus trust)
    task_agreement: dict[str, tuple[float, float]]
    # hotkey -> (uid, the miner's score for the round)
    miner_round_scores: dict[str, tuple[int, float]]
    # hotkey -> (uid, reliability carried after this round), for the miners that have one
    reliability: dict[str, tuple[int, float]] = field(default_factory=dict)
    # organic task id -> what its caller gets (in the task's completion ids), or None when no
    # miner answered it
    organic_results: dict[str, dict[str, Any] | None] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreToSend:
    assignment_id: int
    miner_hotkey: str
    miner_uid: int
    request_id: str
    score: float


class RoundRecords(StoreBase):
    """The rounds, the task scores, the moving scores and the carried reliability."""

    def unfinished_round(self) -> int | None:
        """A round opened but never committed (the validator stopped while scoring it)."""
        with self._sessions.begin() as db:
            return db.scalar(select(Round.round_id).where(Round.status == "scoring").order_by(Round.round_id))

    def open_round(self, max_tasks: int, now: datetime) -> int | None:
        """Put up to ``max_tasks`` collected tasks, oldest first, into a new round."""
        with self._sessions.begin() as db:
            task_ids = db.scalars(
                select(Task.task_id)
                .where(Task.status == TaskStatus.COLLECTED)
                .order_by(Task.expire_at, Task.task_id)
                .limit(max_tasks)
            ).all()
            if not task_ids:
                return None
            round_ = Round(created_at=now, status="scoring", n_tasks=len(task_ids))
            db.add(round_)
            db.flush()
            db.execute(
                update(Task)
                .where(Task.task_id.in_(task_ids))
                .values(status=TaskStatus.SCORING, round_id=round_.round_id)
                .execution_options(synchronize_session=False)
            )
            return round_.round_id

    def round_inputs(self, round_id: int) -> RoundInputs:
        """What scoring needs of a round's tasks: ids, ground truth, assignments, results
        (only those columns: completion contents are never read here)."""
        in_round = Task.round_id == round_id
        with self._sessions.begin() as db:
            tasks = {
                task_id: RoundTask(task_id, [], [], list(criteria), source == ORGANIC_SOURCE)
                for task_id, criteria, source in db.execute(
                    select(Task.task_id, Task.criteria, Task.source).where(in_round).order_by(Task.task_id)
                )
            }
            for task_id, completion_id, rank in db.execute(
                select(TaskCompletion.task_id, TaskCompletion.completion_id, TaskCompletion.ground_truth_rank)
                .join(Task, Task.task_id == TaskCompletion.task_id)
                .where(in_round)
                .order_by(TaskCompletion.task_id, TaskCompletion.position)
            ):
                tasks[task_id].completion_ids.append(completion_id)
                tasks[task_id].ground_truth.append(rank)
            assignments = {
                row[0]: RoundAssignment(*row)
                for row in db.execute(
                    select(
                        Assignment.assignment_id,
                        Assignment.task_id,
                        Assignment.miner_hotkey,
                        Assignment.miner_uid,
                    )
                    .join(Task, Task.task_id == Assignment.task_id)
                    .where(in_round, Assignment.send_status != SendStatus.UNSENT)
                    .order_by(Assignment.assignment_id)
                )
            }
            for assignment_id, worker_id, kind, values, submitted_at, rationale in db.execute(
                select(
                    MinerResult.assignment_id,
                    MinerResult.worker_id,
                    MinerResult.criteria_type,
                    MinerResult.values,
                    MinerResult.submitted_at,
                    # For an organic task's caller (scoring reads none): short, one line each.
                    case((Task.source == ORGANIC_SOURCE, MinerResult.rationale), else_=None),
                )
                .join(Assignment, Assignment.assignment_id == MinerResult.assignment_id)
                .join(Task, Task.task_id == Assignment.task_id)
                .where(in_round)
                .order_by(MinerResult.result_id)
            ):
                if assignment_id in assignments:
                    assignments[assignment_id].results.append(
                        AcceptedResult(worker_id, kind, dict(values), submitted_at, rationale)
                    )
            reliability = {
                h: float(r)
                for h, r in db.execute(select(MinerReliability.miner_hotkey, MinerReliability.reliability))
            }
            return RoundInputs(
                round_id=round_id,
                tasks=list(tasks.values()),
                assignments=list(assignments.values()),
                reliability=reliability,
            )

    def commit_round(
        self, scores: RoundScores, alpha: float, uid_to_hotkey: Mapping[int, str], now: datetime
    ) -> bool:
        """Write a round's scores and fold them into the moving scores, once.

        One transaction: the per-task scores, each assignment's score, the tasks marked
        scored, the moving scores (forgetting hotkeys no longer on the metagraph first)
        and the round marked scored. Returns False, changing nothing, when the round was
        already committed.
        """
        with self._scores_lock, self._sessions.begin() as db:
            round_ = db.get(Round, scores.round_id, with_for_update=True)
            if round_ is None or round_.status != "scoring":
                return False
            # Bulk statements: one per table, not one per row (a round is up to 1 000 tasks).
            if scores.task_scores:
                db.execute(
                    insert(TaskScore),
                    [
                        {
                            "round_id": scores.round_id,
                            "task_id": s.task_id,
                            "miner_hotkey": s.miner_hotkey,
                            "miner_uid": s.miner_uid,
                            "answered": s.answered,
                            "score": s.score,
                            "agreement": s.agreement,
                            "kappa": s.kappa,
                            "rho_consensus": s.rho_consensus,
                            "rho_ground_truth": s.rho_ground_truth,
                            "distance": s.distance,
                            "answer": s.answer,
                            "n_workers": s.n_workers,
                        }
                        for s in scores.task_scores
                    ],
                )
                db.execute(
                    update(Assignment),
                    [{"assignment_id": s.assignment_id, "score": s.score} for s in scores.task_scores],
                )
            if scores.task_agreement:
                db.execute(
                    update(Task),
                    [
                        {
                            "task_id": task_id,
                            "status": TaskStatus.SCORED,
                            "task_agreement": a,
                            "consensus_trust": trust,
                        }
                        for task_id, (a, trust) in scores.task_agreement.items()
                    ],
                )
            moving = self._moving(db, alpha)
            moving.sync(uid_to_hotkey)
            hotkeys = list(scores.miner_round_scores)
            moving.update(
                hotkeys,
                [scores.miner_round_scores[h][0] for h in hotkeys],
                [scores.miner_round_scores[h][1] for h in hotkeys],
            )
            latest = {h: v[1] for h, v in scores.miner_round_scores.items()}
            self._write_moving(db, moving, now, latest)
            self._write_reliability(db, scores.reliability, uid_to_hotkey, now)
            if scores.organic_results:
                record_organic_results(db, scores.organic_results, now)
            round_.status = "scored"
            round_.scored_at = now
            round_.n_miners = len(hotkeys)
            agreements = [a for a, _ in scores.task_agreement.values()]
            round_.mean_task_agreement = sum(agreements) / len(agreements) if agreements else None
            return True

    def scores_to_send(self, since: datetime, limit: int = 4096) -> list[ScoreToSend]:
        """Scores not yet delivered to their miner, from rounds scored since ``since``."""
        with self._sessions.begin() as db:
            rows = db.execute(
                select(Assignment)
                .join(Task, Task.task_id == Assignment.task_id)
                .join(Round, Round.round_id == Task.round_id)
                .where(
                    Assignment.score.is_not(None),
                    Assignment.score_sent_at.is_(None),
                    Assignment.send_status == SendStatus.ACCEPTED,
                    Round.status == "scored",
                    Round.scored_at >= since,
                )
                .order_by(Assignment.assignment_id)
                .limit(limit)
            ).scalars()
            return [
                ScoreToSend(a.assignment_id, a.miner_hotkey, a.miner_uid, a.request_id, float(a.score or 0.0))
                for a in rows
            ]

    def mark_scores_sent(self, assignment_ids: Sequence[int], now: datetime) -> None:
        if not assignment_ids:
            return
        with self._sessions.begin() as db:
            db.execute(
                update(Assignment)
                .where(Assignment.assignment_id.in_(list(assignment_ids)))
                .values(score_sent_at=now)
                .execution_options(synchronize_session=False)
            )

    # -- moving scores -----------------------------------------------------------------------

    def _moving(self, db: Session, alpha: float) -> MovingScores:
        rows = db.scalars(select(MinerScore)).all()
        return MovingScores.from_dict(
            {
                "version": 1,
                "alpha": alpha,
                "miners": {
                    r.miner_hotkey: {"uid": r.miner_uid, "score": r.moving_score, "rounds": r.rounds}
                    for r in rows
                },
            }
        )

    def _write_moving(
        self, db: Session, moving: MovingScores, now: datetime, latest: Mapping[str, float] | None = None
    ) -> None:
        state = moving.to_dict()["miners"]
        existing = {r.miner_hotkey: r for r in db.scalars(select(MinerScore))}
        for hotkey in set(existing) - set(state):
            db.delete(existing[hotkey])
        for hotkey, rec in state.items():
            row = existing.get(hotkey)
            if row is None:
                row = MinerScore(
                    miner_hotkey=hotkey, miner_uid=rec["uid"], moving_score=0.0, rounds=0, updated_at=now
                )
                db.add(row)
            changed = (
                row.moving_score != rec["score"] or row.rounds != rec["rounds"] or row.miner_uid != rec["uid"]
            )
            row.miner_uid, row.moving_score, row.rounds = rec["uid"], rec["score"], rec["rounds"]
            if latest is not None and hotkey in latest:
                row.latest_score = latest[hotkey]
            if changed:
                row.updated_at = now

    def _write_reliability(
        self,
        db: Session,
        carried: Mapping[str, tuple[int, float]],
        uid_to_hotkey: Mapping[int, str],
        now: datetime,
    ) -> None:
        """The reliability carried after a round; a hotkey no longer at its uid is forgotten
        (as its moving score is), so a new registration inherits nothing."""
        existing: dict[str, MinerReliability] = {}
        for row in db.scalars(select(MinerReliability)):
            if uid_to_hotkey.get(row.miner_uid) != row.miner_hotkey:
                db.delete(row)
            else:
                existing[row.miner_hotkey] = row
        db.flush()
        for hotkey, (uid, value) in carried.items():
            if uid_to_hotkey.get(uid) != hotkey:
                continue
            held = existing.get(hotkey)
            if held is None:
                db.add(
                    MinerReliability(
                        miner_hotkey=hotkey, miner_uid=uid, reliability=value, rounds=1, updated_at=now
                    )
                )
            else:
                held.reliability, held.rounds, held.updated_at = value, held.rounds + 1, now

    def moving_scores(self, alpha: float) -> MovingScores:
        with self._sessions.begin() as db:
            return self._moving(db, alpha)

    def sync_miners(self, uid_to_hotkey: Mapping[int, str], alpha: float, now: datetime) -> list[str]:
        """Forget the moving scores of hotkeys no longer at their uid; returns those dropped."""
        with self._scores_lock, self._sessions.begin() as db:
            moving = self._moving(db, alpha)
            before = set(moving.scores())
            moving.sync(uid_to_hotkey)
            dropped = sorted(before - set(moving.scores()))
            if dropped:
                db.execute(delete(MinerScore).where(MinerScore.miner_hotkey.in_(dropped)))
            return dropped


# What the package re-exports; RoundRecords is a part of its TaskStore.
__all__ = ["RoundAssignment", "RoundInputs", "RoundScores", "RoundTask", "ScoreToSend", "TaskMinerScore"]
