"""``dojo export``: the validator's scored tasks as a preference dataset (see docs/dataset.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any


def _since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date: give YYYY-MM-DD or an ISO 8601 time (UTC unless it names a zone)"
        ) from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _agreement(value: str) -> float:
    try:
        k = float(value)
    except ValueError:
        k = float("nan")
    if not -1.0 <= k <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r}: a kappa, between -1 and 1")
    return k


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export the validator's scored tasks as a preference dataset",
        description="Write the scored tasks of a validator's task database to DIR: tasks.<fmt> (each task "
        "with its completions, ground truth, every miner's and worker's ranking under pseudonyms, the "
        "consensus and agreement), preferences.<fmt> (prompt, chosen, rejected pairs for preference "
        "tuning) and README.md (the dataset card). Reads one consistent snapshot, in batches: a live "
        "validator's database can be exported while it runs. See docs/dataset.md.",
    )
    parser.add_argument(
        "--db",
        required=True,
        metavar="URL_OR_PATH",
        help="the validator database: its validator.sqlite, or its DATABASE_URL",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write to (created if missing)")
    parser.add_argument(
        "--format", choices=("parquet", "jsonl"), default="parquet", help="parquet (default) or JSON lines"
    )
    parser.add_argument(
        "--since",
        type=_since,
        default=None,
        metavar="DATE",
        help="only tasks created at or after DATE (YYYY-MM-DD or ISO 8601; UTC)",
    )
    parser.add_argument(
        "--min-agreement",
        type=_agreement,
        default=None,
        metavar="K",
        help="task agreement (kappa, -1 to 1) a task needs for its preference pairs; default: "
        "the kappa below which scoring gives the consensus no trust (0.2)",
    )
    parser.add_argument(
        "--include-synthetic-metadata",
        action="store_true",
        help="also write where each task came from, its criteria, deadline, round and consensus "
        "trust, and each completion as miners got it (obfuscated)",
    )
    parser.add_argument(
        "--conversational",
        action="store_true",
        help="also write the text and dialogue pairs in TRL's conversational form "
        "(preferences_conversational: prompt, chosen, rejected as message lists)",
    )
    parser.add_argument("--batch-size", type=int, default=1000, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from dojo.export import DEFAULT_MIN_AGREEMENT, ExportError, ExportOptions, export_dataset

    try:
        options = ExportOptions(
            format=args.format,
            since=args.since,
            min_agreement=DEFAULT_MIN_AGREEMENT if args.min_agreement is None else args.min_agreement,
            include_synthetic_metadata=args.include_synthetic_metadata,
            conversational=args.conversational,
            batch_size=args.batch_size,
        )
        with _progress(enabled=sys.stdout.isatty() and not args.json) as progress:
            summary = export_dataset(args.db, args.out, options, progress=progress)
    except ExportError as exc:
        print(f"dojo export: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.to_dict()))
        return 0
    print(
        f"exported {summary.tasks} tasks and {summary.preferences} preference pairs "
        f"(from {summary.tasks_with_preferences} tasks with agreement >= {summary.min_agreement:g}) "
        f"to {summary.out} in {summary.seconds:.1f} s"
    )
    for name in summary.files:
        print(f"  {summary.out / summary.files[name]}")
    kinds = ", ".join(f"{n} {k}" for k, n in summary.tasks_by_modality.items())
    if kinds:
        print(f"  tasks by kind: {kinds}")
    if summary.completions_original_unknown:
        print(
            f"  {summary.completions_original_unknown} of {summary.completions} completions without their "
            "original content (tasks from before the validator kept it): exported as sent, flagged"
        )
    return 0


class _progress:
    """A rich progress bar on a terminal; nothing otherwise. Yields the export's callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("exporting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks"),
            TimeRemainingColumn(),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("export", total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
