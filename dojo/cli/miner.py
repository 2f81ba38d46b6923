"""``dojo miner status``: what a miner has received from validators and sent back, from its database.

    dojo miner status [--data-dir D] [--db URL] [--json]

Reads the database the miner neuron writes, found as the neuron finds it (:mod:`template.config`:
flag > environment > ``.env``): ``--db`` (the neuron's ``--neuron.database_url``,
``MINER_DATABASE_URL``), else ``miner.sqlite`` in ``--data-dir`` (its ``--neuron.data_dir``,
``NEURON_DATA_DIR``, default ``~/.dojo``). It never creates or migrates anything. ``--json`` prints::

    {"tasks_received": n, "results_returned": n, "rankings_returned": n, "scores_received": n,
     "validators": {hotkey: {"tasks_received", "results_returned", "rankings_returned",
                             "scores_received", "mean_score", "latest_score", "latest_score_at"}}}

``results_returned`` counts the tasks whose results went back to the validator,
``rankings_returned`` the workers' rankings in them (each task's latest reply).

Exit codes: 0 printed, 1 no miner database where it looked.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_MISSING = 0, 1
# The neuron's settings this command reads, under this command's flags.
NEURON_SETTINGS = {"neuron.data_dir": "--data-dir", "neuron.database_url": "--db"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from dojo.cli._deferred import DeferredParser

    group = subparsers.add_parser("miner", help="the miner's own records: tasks, results, scores")
    group.set_defaults(handler=lambda args, p=group: _usage(p))
    commands = group.add_subparsers(dest="command", metavar="COMMAND", parser_class=DeferredParser)
    status = commands.add_parser("status", help="tasks received, results returned and scores, per validator")
    status.defer(_add_neuron_flags)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)


def _add_neuron_flags(parser: argparse.ArgumentParser) -> None:
    from dojo.miner.config import MinerConfig
    from template.config import add_options

    add_options(parser, MinerConfig, NEURON_SETTINGS)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage()
    return 2


def _status(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from dojo.miner.config import MinerConfig
    from dojo.miner.store import MinerStore, miner_database_url
    from template.config import ConfigError, print_config_error, resolve_args

    try:
        neuron = resolve_args(MinerConfig, args).neuron
    except ConfigError as exc:
        return print_config_error("dojo miner status", exc)
    url = miner_database_url(neuron.data_dir, neuron.database_url)
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_file():
        # Opening it would create an empty file, and the operator would read zeros.
        print(
            f"no miner database at {parsed.database}: has the miner run with --neuron.data_dir "
            f"{neuron.data_dir}? Give its data dir with --data-dir or its database with --db.",
            file=sys.stderr,
        )
        return EXIT_MISSING
    store = MinerStore(url, migrate_schema=False)
    try:
        try:
            if not inspect(store.engine).has_table("miner_tasks"):
                print(f"{shown} holds no miner tables: it is not a miner database", file=sys.stderr)
                return EXIT_MISSING
            summary = store.summary()
        except SQLAlchemyError as exc:
            print(f"cannot read the miner database {shown}: {exc}", file=sys.stderr)
            return EXIT_MISSING
    finally:
        store.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_table(summary, shown))
    return EXIT_OK


def _table(summary: dict[str, Any], where: str) -> str:
    def score(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        f"miner database {where}",
        f"tasks received {summary['tasks_received']}, results returned {summary['results_returned']} "
        f"({summary['rankings_returned']} rankings), scores received {summary['scores_received']}",
    ]
    if not summary["validators"]:
        lines.append("no validator has sent a task yet")
        return "\n".join(lines)
    header = ("validator", "tasks", "returned", "rankings", "scores", "mean", "latest", "latest at")
    rows = [
        (
            hotkey,
            str(v["tasks_received"]),
            str(v["results_returned"]),
            str(v["rankings_returned"]),
            str(v["scores_received"]),
            score(v["mean_score"]),
            score(v["latest_score"]),
            v["latest_score_at"] or "-",
        )
        for hotkey, v in summary["validators"].items()
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines.append("")
    for row in (header, *rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
