"""``dojo validator status``: what a validator has done, read from its task database."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("validator", help="inspect a validator")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="tasks, rounds, miners' scores and weights from the validator's database",
        description="Read the validator's task database: tasks pending, awaiting collection and scored; "
        "the last round; per miner: tasks sent, accepted, answered, latest and moving score; "
        "the last weights set.",
    )
    status.add_argument("--data-dir", default="~/.dojo", help="the validator's --neuron.data_dir (default ~/.dojo)")
    status.add_argument("--db", default=None, help="database URL (the validator's DATABASE_URL), instead of --data-dir")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from dojo.validator.store import DB_FILE, TaskStore

    if args.db is None:
        path = Path(args.data_dir).expanduser() / DB_FILE
        if not path.is_file():
            print(f"no validator database at {path}; pass the validator's --data-dir or --db", file=sys.stderr)
            return 1
    # Read only: a status never migrates or locks the database of a running validator.
    store = TaskStore.read_only(args.db or Path(args.data_dir).expanduser() / DB_FILE)
    try:
        status = store.status()
    finally:
        store.close()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(_render(status))
    return 0


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _render(status: dict[str, Any]) -> str:
    t = status["tasks"]
    lines = [
        f"tasks: {t['total']} ({t['pending']} pending, {t['awaiting_collection']} awaiting collection, "
        f"{t['collected']} collected, {t['scored']} scored, {t['unsent']} unsent)",
        f"results collected: {status['results_collected']}; rounds scored: {status['rounds_scored']}",
    ]
    last = status["last_round"]
    if last:
        agreement = _score(last["mean_task_agreement"])
        lines.append(
            f"last round: #{last['round_id']} at {last['scored_at']}: {last['tasks']} tasks, "
            f"{last['miners']} miners, mean task agreement {agreement}"
        )
    weights = status["last_weights"]
    shares = weights["weights"] if weights else {}
    lines.append("")
    lines.append(f"{'uid':>4}  {'hotkey':<48}  {'sent':>5} {'accepted':>8} {'answered':>8}  "
                 f"{'latest':>6} {'moving':>6} {'weight':>6}")
    for hotkey, m in status["miners"].items():
        share = shares.get(hotkey)
        lines.append(
            f"{m['uid']:>4}  {hotkey:<48}  {m['tasks_sent']:>5} {m['accepted']:>8} {m['answered']:>8}  "
            f"{_score(m['latest_score']):>6} {_score(m['moving_score']):>6} {_score(share):>6}"
        )
    lines.append("")
    if weights:
        lines.append(f"last weights set: block {weights['block']} at {weights['attempted_at']}")
    else:
        lines.append("no weights set yet")
    attempt = status["last_weights_attempt"]
    if attempt and attempt["outcome"] != "set":
        lines.append(f"last attempt: {attempt['outcome']} at {attempt['attempted_at']}: {attempt['detail']}")
    return "\n".join(lines)
