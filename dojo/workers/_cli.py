"""The process entry point of a simulated team, for the localnet and the end-to-end tests.

``python -m dojo.workers --platform URL --subscription-key KEY --mix honest:2,random:1
[--oracle-db PATH_OR_URL ...] [--invite URL ...] [--think LO,HI] [--poll S] [--seed N]
[--identities FILE] [--stand-in S] [--duration S] [--debug]``

``python -m dojo.workers --label-studio URL [--project-prefix P] --mix …``: the same team as
annotators on a miner's Label Studio server (each signs up there as a person would).

Logs one line per submission; stops cleanly on SIGINT/SIGTERM or after ``--duration``.
Exit status: 0 when stopped, 1 when a worker could not join or had to stop (a bad key, a
spent invite), 2 for bad arguments. The key may come from ``DOJO_SUBSCRIPTION_KEY`` (in the
environment or ``.env``, resolved by :mod:`template.config` as every setting is) instead of
the command line, where other users of the machine can read it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from dojo.workers._behaviours import MIX_EXAMPLE, WorkerSpecError, parse_mix
from dojo.workers._label_studio import LabelStudioTeam
from dojo.workers._oracle import IntendedOrders, ValidatorDatabasesOracle
from dojo.workers._team import SimulatedTeam
from template.config import ConfigError, add_options, positive_float, resolve_args
from template.log import setup_logging


class TeamSettings(BaseModel):
    """The team's settings that may come from the environment or ``.env``."""

    model_config = ConfigDict(extra="forbid")

    subscription_key: SecretStr | None = Field(
        None,
        description="the miner's subscription key; not needed if every worker has --invite",
        json_schema_extra={"env": "DOJO_SUBSCRIPTION_KEY", "flag": "--subscription-key"},
    )


def _pair(text: str) -> tuple[float, float]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI seconds, e.g. 0.2,1.0") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not 0 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI seconds with 0 <= LO <= HI")
    return parts[0], parts[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dojo.workers", description="Run a team of simulated workers on a worker platform."
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--platform", help="the platform's public URL, e.g. http://127.0.0.1:8080")
    where.add_argument(
        "--label-studio", metavar="URL", help="a miner's Label Studio server, e.g. http://127.0.0.1:8081"
    )
    parser.add_argument(
        "--project-prefix",
        default="Dojo",
        help="with --label-studio: work the projects whose title starts so",
    )
    add_options(parser, TeamSettings)
    parser.add_argument("--mix", default="honest", help=f"the workers' behaviours, e.g. {MIX_EXAMPLE}")
    parser.add_argument(
        "--oracle-db",
        action="append",
        default=[],
        help="the validator's database (path or URL) to learn true orders from, read-only; "
        "once per validator when there are several",
    )
    parser.add_argument(
        "--oracle-intended",
        metavar="PATH",
        help="a simulated organic caller's intended orders (JSON lines), for its tasks' truth",
    )
    parser.add_argument(
        "--invite",
        action="extend",
        nargs="+",
        default=[],
        metavar="URL",
        help="invite links; the first workers join by these instead of by wallet",
    )
    parser.add_argument("--think", type=_pair, default=(0.2, 1.0), metavar="LO,HI", help="think time (s)")
    parser.add_argument(
        "--poll", type=positive_float, default=1.0, metavar="S", help="poll interval with no task (s)"
    )
    parser.add_argument("--seed", type=int, help="makes the workers' answers reproducible")
    parser.add_argument(
        "--identities",
        metavar="FILE",
        help="keep each worker's key and session in FILE (private to you): started again, the team is "
        "the same workers and logs in again only where a session ended",
    )
    parser.add_argument(
        "--stand-in",
        dest="stand_in",
        type=positive_float,
        metavar="S",
        help="add a worker answering as the first who takes only tasks due within S seconds: "
        "it fills a place a task keeps for a person once nobody came for it",
    )
    parser.add_argument("--duration", type=positive_float, metavar="S", help="stop after S seconds")
    parser.add_argument("--debug", action="store_true", help="log debug lines too")
    return parser


async def _serve(team: SimulatedTeam | LabelStudioTeam, duration: float | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    await team.run(stop)
    stats = team.stats()
    totals = stats.to_dict()
    logger.info(
        "simulated team stopped: {} submitted, {} skipped, {} missed, {} errors",
        totals["submitted"],
        totals["skipped"],
        totals["missed"],
        totals["errors"],
    )
    return 1 if totals["failed"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run a simulated team until SIGINT/SIGTERM or ``--duration``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        behaviours = parse_mix(args.mix)
    except WorkerSpecError as exc:
        parser.error(f"--mix: {exc}")
    try:
        subscription_key = resolve_args(TeamSettings, args).subscription_key
    except ConfigError as exc:
        parser.error(str(exc))
    key = subscription_key.get_secret_value() if subscription_key else None
    setup_logging(debug=args.debug, neuron="workers")
    intended = IntendedOrders(args.oracle_intended) if args.oracle_intended else None
    oracle = ValidatorDatabasesOracle(args.oracle_db, intended) if args.oracle_db else None
    # Either kind of team: the workers' pace and their dice.
    pace = {"think_time": args.think, "poll_interval": args.poll, "seed": args.seed}
    if args.label_studio:
        annotators = LabelStudioTeam(
            args.label_studio,
            behaviours,
            oracle,
            project_prefix=args.project_prefix,
            **pace,
        )
        logger.info(
            "simulated Label Studio team: {} annotators ({}) on {}, projects {}…, oracle {}",
            len(behaviours),
            args.mix,
            args.label_studio,
            args.project_prefix,
            oracle.url if oracle is not None else "none",
        )
        try:
            return asyncio.run(_serve(annotators, args.duration))
        finally:
            if oracle is not None:
                oracle.close()
    try:
        team = SimulatedTeam(
            args.platform,
            key,
            behaviours,
            oracle,
            invites=args.invite,
            **pace,
            identities=args.identities,
            stand_in=args.stand_in,
        )
    except ValueError as exc:
        parser.error(str(exc))
    logger.info(
        "simulated team: {} workers ({}{}) on {}, subscription key {}, {} invites, oracle {}, think {}-{}s, poll {}s",
        len(team.workers),
        args.mix,
        f" and a stand-in for tasks due within {args.stand_in:g}s" if args.stand_in else "",
        team.workers[0].platform_url,
        f"{key[:11]}…" if key else "none",
        len(args.invite),
        oracle.url if oracle is not None else "none",
        *args.think,
        args.poll,
    )
    try:
        return asyncio.run(_serve(team, args.duration))
    finally:
        if oracle is not None:
            oracle.close()
