"""``dojo validator status``: what a validator has done, read from its task database.
``dojo validator organic-key create|list|revoke``: the organic API's keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("validator", help="inspect a validator")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", required=True)
    status = commands.add_parser(
        "status",
        help="tasks, rounds, miners' scores and weights from the validator's database",
        description="Read the validator's task database: tasks pending, awaiting collection and scored; "
        "the last round; per miner: tasks sent, accepted, answered, latest and moving score; "
        "the last weights set.",
    )
    status.add_argument(
        "--data-dir", default="~/.dojo", help="the validator's --neuron.data_dir (default ~/.dojo)"
    )
    status.add_argument(
        "--db", default=None, help="database URL (the validator's DATABASE_URL), instead of --data-dir"
    )
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_status)

    keys = commands.add_parser(
        "organic-key",
        help="make, list and revoke the organic API's keys",
        description="Keys for outside callers of the organic API (docs/organic.md). A key and its webhook "
        "secret are shown once, when made; the database keeps only the key's hash.",
    )
    key_commands = keys.add_subparsers(dest="key_command", metavar="COMMAND", required=True)
    create = key_commands.add_parser("create", help="make a key: printed once, with its webhook secret")
    create.add_argument("--name", required=True, help="who the key is for")
    create.add_argument("--rate", type=int, default=60, help="requests per minute (default 60)")
    create.add_argument("--daily-quota", type=int, default=1000, help="tasks per UTC day (default 1000)")
    listing = key_commands.add_parser("list", help="every key, its limits and tasks; never the key itself")
    revoke = key_commands.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", help="the key's id (ok_...) or its shown prefix")
    for command in (create, listing, revoke):
        command.add_argument("--data-dir", default="~/.dojo", help="the validator's --neuron.data_dir")
        command.add_argument("--db", default=None, help="database URL (the validator's DATABASE_URL)")
        command.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(handler=_key_create)
    listing.set_defaults(handler=_key_list)
    revoke.set_defaults(handler=_key_revoke)


def _status(args: argparse.Namespace) -> int:
    from dojo.validator.store import DB_FILE, TaskStore

    if args.db is None:
        path = Path(args.data_dir).expanduser() / DB_FILE
        if not path.is_file():
            print(
                f"no validator database at {path}; pass the validator's --data-dir or --db", file=sys.stderr
            )
            return 1
    # Read only: a status never migrates or locks the database of a running validator.
    store = TaskStore.read_only(args.db or Path(args.data_dir).expanduser() / DB_FILE)
    try:
        if not store.ready():
            print(
                f"the validator is still making its database at {store.url}; ask again in a moment",
                file=sys.stderr,
            )
            return 1
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
    organic = status.get("organic")
    if organic and organic["total"]:
        lines.append(
            f"organic tasks: {organic['total']} ({organic['queued']} queued, {organic['sent']} sent, "
            f"{organic['collected']} collected, {organic['scored']} scored, {organic['expired']} expired, "
            f"{organic['failed']} failed); webhooks {organic['delivered']} delivered, "
            f"{organic['delivery_pending']} pending, {organic['delivery_failed']} failed"
        )
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
    lines.append(
        f"{'uid':>4}  {'hotkey':<48}  {'sent':>5} {'accepted':>8} {'answered':>8}  "
        f"{'latest':>6} {'moving':>6} {'weight':>6}"
    )
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


def _organic_store(args: argparse.Namespace) -> Any:
    from dojo.validator.organic.store import OrganicStore
    from dojo.validator.store import DB_FILE, TaskStore

    # Opening migrates: a key can be made before the validator first runs with --organic.enabled.
    store = TaskStore(args.db or Path(args.data_dir).expanduser() / DB_FILE)
    return store, OrganicStore(store.engine)


def _key_create(args: argparse.Namespace) -> int:
    from template.clock import utcnow

    if args.rate < 1 or args.daily_quota < 1:
        print("--rate and --daily-quota must be at least 1", file=sys.stderr)
        return 2
    store, organic = _organic_store(args)
    try:
        key = organic.create_key(args.name, args.rate, args.daily_quota, utcnow())
    finally:
        store.close()
    if args.json:
        print(
            json.dumps(
                {
                    "key_id": key.key_id,
                    "name": key.name,
                    "api_key": key.api_key,
                    "webhook_secret": key.webhook_secret,
                    "rate_per_minute": key.rate_per_minute,
                    "daily_quota": key.daily_quota,
                }
            )
        )
    else:
        print(
            f"key {key.key_id} for {key.name}: {key.rate_per_minute} requests/minute, {key.daily_quota} tasks/day"
        )
        print(f"API key:        {key.api_key}")
        print(f"webhook secret: {key.webhook_secret}")
        print("Both are shown this once: the validator keeps only the key's hash.")
    return 0


def _key_list(args: argparse.Namespace) -> int:
    store, organic = _organic_store(args)
    try:
        keys = organic.list_keys()
    finally:
        store.close()
    rows = [
        {
            "key_id": k.key_id,
            "kind": k.kind,
            "name": k.name,
            "shown_as": k.shown_as,
            "rate_per_minute": k.rate_per_minute,
            "daily_quota": k.daily_quota,
            "tasks": k.tasks,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in keys
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'key':<16} {'kind':<6} {'name':<20} {'shown as':<50} {'rate':>6} {'quota':>7} {'tasks':>7}  state"
    )
    for r in rows:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "live"
        print(
            f"{r['key_id']:<16} {r['kind']:<6} {r['name'][:20]:<20} {r['shown_as'][:50]:<50} "
            f"{r['rate_per_minute']:>6} {r['daily_quota']:>7} {r['tasks']:>7}  {state}"
        )
    return 0


def _key_revoke(args: argparse.Namespace) -> int:
    from template.clock import utcnow

    store, organic = _organic_store(args)
    try:
        revoked = organic.revoke(args.key_id, utcnow())
    finally:
        store.close()
    if not revoked:
        print(f"no live key {args.key_id}", file=sys.stderr)
        return 1
    print(json.dumps({"revoked": args.key_id}) if args.json else f"key {args.key_id} revoked")
    return 0
