"""``dojo organic``: have your own completions ranked by Dojo's workers, through a validator's
organic API (``docs/organic.md``).

- ``dojo organic submit tasks.jsonl --validator URL --key K [--wait] [--out results.jsonl]
  [--format results|pairs]``: one task per input line (the API's ``POST /v1/tasks`` body), one
  result per output line; ``--format pairs`` writes preference pairs in the dataset export's
  columns (``prompt, chosen, rejected, margin, agreement, task_id, chosen_id, rejected_id``).
- ``dojo organic status ID --validator URL --key K [--raw]``: one task's state and result.

Another subnet's validator signs with its hotkey instead of a key: ``--wallet.name W
--wallet.hotkey H --validator-hotkey SS58``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO

# The one name of the variable, which the local net's organic caller reads too.
from dojo.localnet.state import ORGANIC_KEY_ENV as KEY_ENV


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("organic", help="submit your own tasks to a validator's organic API")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    submit = commands.add_parser(
        "submit",
        help="submit tasks from a JSON-lines file",
        description="Submit one task per line of FILE "
        "(the body of POST /v1/tasks); print each task id, or with --wait each result, one JSON line per task.",
    )
    submit.add_argument("file", help="JSON lines, one task each ('-' for standard input)")
    submit.add_argument(
        "--wait", action="store_true", help="wait until every task is scored, expired or failed"
    )
    submit.add_argument("--out", help="write the lines here instead of standard output")
    submit.add_argument(
        "--format",
        choices=("results", "pairs"),
        default="results",
        help="results: one task per line; pairs: preference pairs as the dataset export writes them",
    )
    submit.add_argument("--poll", type=float, default=10.0, help="seconds between status checks with --wait")
    submit.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    _connection(submit)
    submit.set_defaults(handler=_submit)
    status = commands.add_parser("status", help="one task's state and result")
    status.add_argument("task_id")
    status.add_argument("--raw", action="store_true", help="each worker's answer too, under a pseudonym")
    _connection(status)
    status.set_defaults(handler=_status)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--validator", required=True, help="the organic API's URL (http://host:9604)")
    parser.add_argument("--key", help=f"your API key (default ${KEY_ENV}, from the environment or .env)")
    parser.add_argument(
        "--wallet.name", dest="wallet_name", help="sign with this wallet's hotkey instead of a key"
    )
    parser.add_argument("--wallet.hotkey", dest="wallet_hotkey", default="default")
    parser.add_argument("--wallet.path", dest="wallet_path", default="~/.bittensor/wallets")
    parser.add_argument(
        "--validator-hotkey", help="the validator's hotkey (ss58), which signed requests name"
    )


def _client(args: argparse.Namespace) -> Any:
    from commons.organic import OrganicClient

    if args.wallet_name:
        from template.wallets import load_wallet

        if not args.validator_hotkey:
            raise SystemExit("dojo organic: --validator-hotkey is needed to sign with a hotkey")
        wallet = load_wallet(args.wallet_name, args.wallet_hotkey, args.wallet_path)
        return OrganicClient(args.validator, keypair=wallet.hotkey, validator_hotkey=args.validator_hotkey)
    key = args.key or _configured_key()
    if not key:
        raise SystemExit(f"dojo organic: give --key (or ${KEY_ENV}), or sign with --wallet.name")
    return OrganicClient(args.validator, api_key=key)


def _configured_key() -> str | None:
    """``DOJO_ORGANIC_KEY`` from the environment, else ``.env``, as every setting is read."""
    from template.config import environment

    return environment().get(KEY_ENV) or None


def _read_tasks(path: str) -> list[Any]:
    from pydantic import ValidationError

    from commons.organic import TaskRequest
    from template.validation import validation_detail

    lines = sys.stdin.read().splitlines() if path == "-" else Path(path).read_text().splitlines()
    tasks = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            tasks.append(TaskRequest.model_validate_json(line))
        except ValidationError as exc:
            raise SystemExit(f"dojo organic: {path}:{number}: {validation_detail(exc)}") from None
    return tasks


def _submit(args: argparse.Namespace) -> int:
    from commons.organic import OrganicAPIError

    tasks = _read_tasks(args.file)
    out: TextIO = open(args.out, "w") if args.out else sys.stdout  # noqa: SIM115 - closed below
    try:
        return asyncio.run(_submit_all(args, tasks, out))
    except OrganicAPIError as exc:
        print(f"dojo organic: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()


async def _submit_all(args: argparse.Namespace, tasks: list[Any], out: TextIO) -> int:
    from rich.console import Console
    from rich.progress import Progress

    async with _client(args) as client:
        accepted = []
        for task in tasks:
            accepted.append(await client.submit(task))
            if not args.wait:
                print(accepted[-1].model_dump_json(), file=out, flush=True)
        if not args.wait:
            return 0
        with Progress(transient=True, console=Console(stderr=True)) as progress:
            bar = progress.add_task("waiting for results", total=len(accepted))

            def advance(done: int, total: int) -> None:
                progress.update(bar, completed=done, total=total)

            views = await client.wait(
                [a.task_id for a in accepted], poll=args.poll, timeout=args.timeout, on_progress=advance
            )
    failed = 0
    for task, a in zip(tasks, accepted, strict=True):
        view = views[a.task_id]
        failed += view.status != "scored"
        if args.format == "results":
            print(view.model_dump_json(), file=out)
        else:
            for row in pairs(task, view):
                print(json.dumps(row), file=out)
    return 1 if failed else 0


def pairs(task: Any, view: Any) -> list[dict[str, Any]]:
    """A scored task's preference pairs in the dataset export's columns."""
    from dojo.export import preference_pairs, render_content

    if view.result is None:
        return []
    by_id = {c.id: c for c in view.result.completions}
    labels = task.labels()
    # The consensus's mean ranks; for scores, the consensus ranks (higher score, lower rank).
    ranks = [
        by_id[label].mean if view.result.criteria_type == "ranking" else by_id[label].consensus_rank
        for label in labels
    ]
    contents = [c.content.model_dump(mode="json") for c in task.completions]
    return [
        {
            "prompt": task.prompt,
            "chosen": render_content(contents[i]),
            "rejected": render_content(contents[j]),
            "margin": margin,
            "agreement": view.result.agreement,
            "task_id": view.task_id,
            "chosen_id": labels[i],
            "rejected_id": labels[j],
        }
        for i, j, margin in preference_pairs(ranks)
    ]


def _status(args: argparse.Namespace) -> int:
    from commons.organic import OrganicAPIError

    async def one() -> str:
        async with _client(args) as client:
            return str((await client.task(args.task_id, raw=args.raw)).model_dump_json(indent=2))

    try:
        print(asyncio.run(one()))
    except OrganicAPIError as exc:
        print(f"dojo organic: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
