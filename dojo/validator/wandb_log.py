"""The validator's Weights & Biases logger: one run per validator process, fed in the background.

After each scoring round the validator calls :meth:`RoundLogger.log_round` (the round's metrics,
e.g. its task count and mean agreement, plus every miner's score, logged as a histogram with its
mean, median, min and max); after each weight-setting attempt, :meth:`RoundLogger.log_weights`;
after each scheduled dataset export, :meth:`RoundLogger.log_artifact` (the export's folder as
a ``dataset`` artifact). Each only puts an event on a bounded queue and return; a single daemon thread imports wandb,
starts the run and logs the events, so a slow, hanging or failing wandb never holds up or stops
the validator. The first wandb error is logged once and turns the logger off.

Logged keys: ``round/id`` (the x-axis of the ``round/*`` charts), ``round/<metric>`` for each
metric given, ``round/miners_scored`` and ``round/score_{hist,mean,median,min,max}``. The
validator's metrics are the round's own (``tasks_in_round``, ``mean_task_agreement``) and the
task database's running totals at that round, named as such (``total_tasks_created``,
``total_tasks_collected``, ``total_tasks_scored``);
``weights/attempt`` (x-axis), ``weights/{block,outcome,count,nonzero}``, ``weights/hist`` (their
distribution) and ``weights/by_uid`` (one histogram bin per uid, its height the weight).

The run is offline (files under ``<directory>/wandb/offline-run-*``, to ``wandb sync`` later)
when no API key is given, online otherwise; with ``enabled=False`` wandb is never imported.
"""

from __future__ import annotations

import queue
import statistics
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loguru import logger

_QUEUE_SIZE = 256
_MAX_HISTOGRAM_BINS = 512  # wandb.Histogram refuses more
_STOP = object()  # tells the thread to finish the run
# wandb's own bounds, so that neither init nor an online run's upload at finish (also run from
# wandb's atexit hook) can hold the thread, or the process at exit, forever.
_INIT_TIMEOUT_S = 60.0
_FINISH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class _InitArgs:
    """What the thread passes to ``wandb.init`` when it starts."""

    project: str
    entity: str | None
    api_key: str | None
    directory: Path
    run_name: str
    config: dict[str, Any]


class RoundLogger:
    """Logs scoring rounds and weight-setting attempts to one wandb run, from a background thread.

    Calls never raise for wandb's sake and never wait for it; ``logged`` and ``dropped`` count the
    events, and ``failed`` says wandb broke and logging is off. ``config`` is stored in the run (and
    uploaded when online): keep secrets out of it.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        project: str,
        entity: str | None,
        api_key: str | None,
        directory: Path,
        run_name: str,
        config: dict[str, Any],
    ) -> None:
        self._init_args = _InitArgs(
            project=project,
            entity=entity,
            api_key=api_key,
            directory=directory,
            run_name=run_name,
            config=config,
        )
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_SIZE + 1)
        self._lock = threading.Lock()
        self._logged = 0
        self._dropped = 0
        self._failed = False
        self._closed = not enabled
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="wandb-log", daemon=True)
            self._thread.start()

    @property
    def logged(self) -> int:
        return self._logged

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def failed(self) -> bool:
        return self._failed

    def log_round(self, round_id: int, metrics: Mapping[str, float], miner_scores: Sequence[float]) -> None:
        # Copied now: the caller may reuse its containers while the event waits in the queue.
        self._put(("round", round_id, dict(metrics), list(miner_scores)))

    def log_weights(
        self, block: int | None, uids: Sequence[int], weights: Sequence[int], outcome: str
    ) -> None:
        self._put(("weights", block, list(uids), list(weights), outcome))

    def log_artifact(self, path: str | Path, name: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Log the folder ``path`` as a dataset artifact ``name`` (alias ``latest``).

        The files are referenced where they are, not copied (``policy="immutable"``): they must
        not change, and an offline run needs them still there when it is synced.
        """
        self._put(("artifact", str(path), name, dict(metadata or {})))

    def close(self, timeout: float = 10.0) -> None:
        """Log what is queued and finish the run, waiting at most ``timeout`` seconds; never raises."""
        with self._lock:
            if self._thread is None or self._closed:
                return
            self._closed = True
        self._queue.put_nowait(_STOP)  # fits: the last slot is kept for it and producers are refused now
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning(f"wandb run not finished after {timeout:.1f}s; leaving it to its thread")

    def _put(self, event: tuple[object, ...]) -> None:
        with self._lock:
            if self._closed or self._failed:
                self._dropped += 1
                return
            if self._queue.qsize() < _QUEUE_SIZE:
                self._queue.put_nowait(event)
            else:
                # Drop the newest: the queue only fills while wandb is stuck, and then any event is lost.
                self._dropped += 1

    def _drain(self) -> None:
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return
            if event is not _STOP:
                with self._lock:
                    self._dropped += 1

    def _run(self) -> None:
        args = self._init_args
        run = None
        try:
            import wandb  # here, not at module level: importing wandb takes a while

            online = bool(args.api_key)
            settings = wandb.Settings(
                mode="online" if online else "offline",
                api_key=args.api_key
                if online
                else None,  # passed, never written to ~/.netrc nor prompted for
                console="off",
                silent=True,
                # System metrics and machine info are useless here and probe cloud metadata endpoints.
                x_disable_stats=True,
                x_disable_meta=True,
                x_disable_machine_info=True,
                disable_git=True,
                save_code=False,
                init_timeout=_INIT_TIMEOUT_S,
                # Online only: offline there is no upload to bound, and with a timeout wandb 0.31's
                # offline finish returns before the run's file is written more often than without.
                finish_timeout=_FINISH_TIMEOUT_S if online else 0.0,
            )
            # wandb's terminal messages (e.g. at login) follow the process-wide settings, not init's.
            wandb.setup(settings=wandb.Settings(silent=True))
            directory = Path(args.directory)
            directory.mkdir(parents=True, exist_ok=True)
            run = wandb.init(
                project=args.project,
                entity=args.entity,
                dir=directory,
                name=args.run_name,
                config=args.config,
                settings=settings,
                reinit="create_new",
            )
            run.define_metric("round/*", step_metric="round/id")
            run.define_metric("weights/*", step_metric="weights/attempt")
            attempts = 0
            while (event := self._queue.get()) is not _STOP:
                if event[0] == "round":
                    run.log(_round_record(wandb, *event[1:]))
                elif event[0] == "artifact":
                    _, path, name, metadata = event
                    artifact = wandb.Artifact(name, type="dataset", metadata=metadata)
                    artifact.add_dir(path, policy="immutable", skip_cache=True)
                    run.log_artifact(artifact, aliases=["latest"])
                else:
                    attempts += 1
                    run.log({"weights/attempt": attempts, **_weights_record(wandb, *event[1:])})
                with self._lock:
                    self._logged += 1
        except Exception as exc:
            with self._lock:
                self._failed = True
            logger.warning(f"wandb logging off: {'init' if run is None else 'log'} failed: {_one_line(exc)}")
            self._drain()
        finally:
            if run is not None:
                try:
                    run.finish(exit_code=1 if self._failed else 0)
                except Exception as exc:
                    logger.warning(f"wandb run.finish failed: {_one_line(exc)}")


def _one_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _round_record(
    wandb: Any, round_id: int, metrics: dict[str, float], scores: list[float]
) -> dict[str, Any]:
    scores = [float(score) for score in scores]  # numpy and torch scalars included
    record: dict[str, Any] = {"round/id": round_id, "round/miners_scored": len(scores)}
    record.update({f"round/{key}": value for key, value in metrics.items()})
    if scores:  # wandb.Histogram and the statistics functions reject an empty sequence
        record.update(
            {
                "round/score_hist": wandb.Histogram(scores),
                "round/score_mean": statistics.fmean(scores),
                "round/score_median": statistics.median(scores),
                "round/score_min": min(scores),
                "round/score_max": max(scores),
            }
        )
    return record


def _weights_record(
    wandb: Any, block: int | None, uids: list[int], weights: list[int], outcome: str
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "weights/outcome": outcome,
        "weights/count": len(weights),
        "weights/nonzero": sum(1 for w in weights if w),
    }
    if block is not None:
        record["weights/block"] = block
    if weights:
        record["weights/hist"] = wandb.Histogram(weights)
    if uids and weights and min(uids) >= 0 and max(uids) < _MAX_HISTOGRAM_BINS:
        # Per-uid weights as a histogram with one bin per uid, not a wandb.Table: wandb 0.31 leaves a
        # temporary directory behind for every logged table until the process exits.
        by_uid = [0] * (max(uids) + 1)
        for uid, weight in zip(uids, weights, strict=False):
            by_uid[uid] = weight
        record["weights/by_uid"] = wandb.Histogram(np_histogram=(by_uid, list(range(len(by_uid) + 1))))
    return record
