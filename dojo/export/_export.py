"""``export_dataset``: the validator's scored tasks as files people can load and train on."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dojo.export._card import dataset_card
from dojo.export._reader import ExportError, ExportTaskRow, Snapshot
from dojo.export._records import (
    DEFAULT_MIN_AGREEMENT,
    Consensus,
    Pseudonyms,
    consensus_batch,
    content_record,
    conversation,
    image_record,
    preference_pairs,
    render_content,
)
from dojo.export._summary import ExportSummary
from dojo.validator.store import ORGANIC_SOURCE

Progress = Callable[[int, int], None]  # (tasks written, tasks in the snapshot)

CARD = "README.md"


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how; the flags of ``dojo export``."""

    format: str = "parquet"  # or "jsonl"
    since: datetime | None = None  # tasks created at or after this (UTC)
    min_agreement: float = DEFAULT_MIN_AGREEMENT  # task kappa a task's pairs need
    include_synthetic_metadata: bool = False
    # Also write the text and dialogue pairs in TRL's conversational form.
    conversational: bool = False
    batch_size: int = 1000  # tasks per read and per Parquet row group

    def __post_init__(self) -> None:
        if self.format not in ("parquet", "jsonl"):
            raise ExportError(f"format {self.format!r}: accepts parquet or jsonl")
        if not math.isfinite(self.min_agreement):
            raise ExportError("min_agreement must be a number (a kappa, at most 1)")
        if self.batch_size < 1:
            raise ExportError("batch_size must be at least 1")
        if self.since is not None and self.since.tzinfo is None:
            raise ExportError("since must be timezone-aware (UTC)")


def export_dataset(
    db: str | Path,
    out: str | Path,
    options: ExportOptions | None = None,
    *,
    progress: Progress | None = None,
    pseudonym_key: bytes | None = None,
) -> ExportSummary:
    """Export the scored tasks of the validator database ``db`` (URL or SQLite path) to ``out``.

    Writes ``tasks.<ext>``, ``preferences.<ext>`` and the dataset card ``README.md`` (see
    ``docs/dataset.md``), reading one consistent snapshot in batches of
    ``options.batch_size`` tasks, so memory holds one batch whatever the database's size.
    ``progress(done, total)`` is called after each batch. ``pseudonym_key`` fixes the
    pseudonyms' key (tests); by default each export draws its own and forgets it.
    """
    from template import __version__

    options = options or ExportOptions()
    started = time.perf_counter()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    ext = options.format
    names = Pseudonyms(pseudonym_key)
    files = {"tasks": f"tasks.{ext}", "preferences": f"preferences.{ext}", "card": CARD}
    if options.conversational:
        files["preferences_conversational"] = f"preferences_conversational.{ext}"
    summary = ExportSummary(
        out=out,
        format=options.format,
        files=files,
        exported_at=datetime.now(timezone.utc),
        since=options.since,
        min_agreement=options.min_agreement,
        synthetic_metadata=options.include_synthetic_metadata,
        software_version=__version__,
    )
    from dojo.export._schema import conversational_schema, preferences_schema, tasks_schema
    from dojo.export._writers import BackgroundWriter, open_sink

    sinks = []
    writer = BackgroundWriter()
    try:
        with Snapshot(
            db, since=options.since, synthetic_metadata=options.include_synthetic_metadata
        ) as snapshot:
            total = snapshot.count()
            summary.exported_at = datetime.now(timezone.utc)  # the snapshot's moment
            tasks_sink = open_sink(
                options.format, out / summary.files["tasks"], tasks_schema(options.include_synthetic_metadata)
            )
            sinks.append(tasks_sink)
            prefs_sink = open_sink(options.format, out / summary.files["preferences"], preferences_schema())
            sinks.append(prefs_sink)
            chat_sink = None
            if options.conversational:
                chat_sink = open_sink(
                    options.format, out / summary.files["preferences_conversational"], conversational_schema()
                )
                sinks.append(chat_sink)
            done = 0
            for batch in snapshot.batches(options.batch_size):
                consensus = consensus_batch(
                    [t.answers for t in batch],
                    [len(t.completions) for t in batch],
                    [t.criteria_type == "multi-score" for t in batch],
                )
                task_rows, pref_rows, chat_rows = [], [], []
                for task, cons in zip(batch, consensus, strict=True):
                    task_rows.append(
                        _task_record(task, cons, names, options.include_synthetic_metadata, summary)
                    )
                    pref_rows.extend(_preference_records(task, cons, options.min_agreement, summary))
                    if chat_sink is not None:
                        chat_rows.extend(_conversational_records(task, cons, options.min_agreement, summary))
                writer.write(tasks_sink, task_rows)
                writer.write(prefs_sink, pref_rows)
                if chat_sink is not None:
                    writer.write(chat_sink, chat_rows)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        writer.finish()
        for sink in sinks:
            sink.commit()
    except BaseException:
        # The error being raised says what went wrong first; the writer's would only follow it.
        with contextlib.suppress(Exception):
            writer.finish()
        for sink in sinks:
            sink.abort()
        raise
    summary.miners, summary.workers = len(summary._miners), len(summary._workers)
    summary.mean_task_kappa = summary._kappa_sum / summary._kappa_n if summary._kappa_n else None
    summary.mean_rho = summary._rho_sum / summary._rho_n if summary._rho_n else None
    _remove_other_format(out, options.format)
    summary.seconds = time.perf_counter() - started
    _write_atomic(out / CARD, dataset_card(summary))
    summary.seconds = time.perf_counter() - started
    return summary


def _task_record(
    task: ExportTaskRow, cons: Consensus, names: Pseudonyms, metadata: bool, summary: ExportSummary
) -> dict[str, Any]:
    completions = []
    for c in task.completions:
        record = {
            "completion_id": c.completion_id,
            "model": c.model,
            "content": content_record(c.content, c.completion_id),
            "original_known": c.original_known,
        }
        if metadata:
            record["sent_content"] = (
                None if c.sent_content is None else content_record(c.sent_content, c.completion_id)
            )
        completions.append(record)
        summary.completions_original_unknown += not c.original_known
    miners = []
    n_workers = 0
    for a, weight in zip(task.answers, cons.weights, strict=True):
        miner = names.miner(a.hotkey)
        worker_names = [names.worker(a.hotkey, w) for w, _, _ in a.workers]
        workers = [
            {"worker": name, "values": values, "rationale": why}
            for name, (_, values, why) in zip(worker_names, a.workers, strict=True)
        ]
        summary._miners.add(miner)
        summary._workers.update(worker_names)
        summary.worker_rankings += len(workers)
        n_workers += a.n_workers
        miners.append(
            {
                "miner": miner,
                "answer": a.answer,
                "n_workers": a.n_workers,
                "weight": weight,
                "score": a.score,
                "workers": workers,
            }
        )
    summary.tasks += 1
    summary.completions += len(completions)
    kind = modality(task)
    summary.tasks_by_modality[kind] = summary.tasks_by_modality.get(kind, 0) + 1
    if task.task_agreement is not None:
        summary._kappa_sum += task.task_agreement
        summary._kappa_n += 1
    if cons.mean_rho is not None:
        summary._rho_sum += cons.mean_rho
        summary._rho_n += 1
    row: dict[str, Any] = {
        "task_id": task.task_id,
        "created_at": task.created_at,
        "task_type": task.task_type,
        "modality": kind,
        "criteria_type": task.criteria_type,
        "prompt": task.prompt,
        "completions": completions,
        "ground_truth_ranking": [c.ground_truth_rank for c in task.completions],
        "miners": miners,
        "consensus_mean_ranks": cons.mean_ranks,
        "consensus_ranking": cons.ranks,
        "task_kappa": task.task_agreement,
        "mean_rho": cons.mean_rho,
        "n_miners": len(miners),
        "n_workers": n_workers,
        "origin": "organic" if task.source == ORGANIC_SOURCE else "synthetic",
    }
    if metadata:
        import json

        row.update(
            {
                "source": task.source,
                "criteria": json.dumps(task.criteria),
                "expire_at": task.expire_at,
                "round_id": task.round_id,
                "consensus_trust": task.consensus_trust,
            }
        )
    return row


def _preference_records(
    task: ExportTaskRow, cons: Consensus, min_agreement: float, summary: ExportSummary
) -> list[dict[str, Any]]:
    if cons.mean_ranks is None or task.task_agreement is None or task.task_agreement < min_agreement:
        return []
    pairs = preference_pairs(cons.mean_ranks)
    if not pairs:
        return []
    kind = modality(task)
    ids = [c.completion_id for c in task.completions]
    if kind == "image":
        texts: list[str | None] = [None] * len(ids)
        images = [image_record(c.content, c.completion_id) for c in task.completions]
    else:
        texts = [render_content(c.content) for c in task.completions]
        images = [None] * len(ids)
    summary.preferences += len(pairs)
    summary.tasks_with_preferences += 1
    summary.preferences_by_modality[kind] = summary.preferences_by_modality.get(kind, 0) + len(pairs)
    return [
        {
            "prompt": task.prompt,
            "chosen": texts[i],
            "rejected": texts[j],
            "modality": kind,
            "chosen_image": images[i],
            "rejected_image": images[j],
            "margin": margin,
            "agreement": task.task_agreement,
            "task_id": task.task_id,
            "chosen_id": ids[i],
            "rejected_id": ids[j],
        }
        for i, j, margin in pairs
    ]


def _conversational_records(
    task: ExportTaskRow, cons: Consensus, min_agreement: float, summary: ExportSummary
) -> list[dict[str, Any]]:
    kind = modality(task)
    if kind not in ("text", "dialogue"):
        return []
    if cons.mean_ranks is None or task.task_agreement is None or task.task_agreement < min_agreement:
        return []
    rows = []
    for i, j, margin in preference_pairs(cons.mean_ranks):
        chosen, rejected = task.completions[i], task.completions[j]
        pair = conversation(task.prompt, chosen.content, rejected.content)
        if pair is None:
            continue
        rows.append(
            {
                **pair,
                "modality": kind,
                "margin": margin,
                "agreement": task.task_agreement,
                "task_id": task.task_id,
                "chosen_id": chosen.completion_id,
                "rejected_id": rejected.completion_id,
            }
        )
    summary.conversational_pairs += len(rows)
    return rows


def modality(task: ExportTaskRow) -> str:
    """The kind of the task's completions (code for a task from before there were others)."""
    kinds = {str(c.content.get("kind") or "code") for c in task.completions}
    return kinds.pop() if len(kinds) == 1 else "code"


def _remove_other_format(out: Path, fmt: str) -> None:
    """A previous export in the other format would sit beside this one and contradict its card."""
    for other in ("parquet", "jsonl"):
        if other != fmt:
            for name in ("tasks", "preferences", "preferences_conversational"):
                (out / f"{name}.{other}").unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
