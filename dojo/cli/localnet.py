"""``dojo localnet``: a whole subnet on this machine (see :mod:`dojo.localnet`).

- ``dojo localnet up [--dir .localnet] [--miners 3] [--workers-per-miner 3]
  [--worker-mix honest:2,random:1] [--deadline 600] [--person-window 60]
  [--task-interval 10] [--block-time 1] [--duration S] [--debug] [--organic [--organic-rate R]]
  [--miner-backends dojo,dojo,label-studio] [--label-studio URL]
  [--validators 3 [--validator-stakes 1000,1000,1000]]``
  — a local chain, a worker platform, the synthetic API, a validator (or several, each
  with its own stake, wallet, database, sample and tasks), the miners and a
  team of simulated workers per miner (Label Studio annotators for a label-studio miner, on
  a Label Studio server it starts or the one given), until Ctrl-C, starting again whatever
  exits; a live
  view on a terminal, one line per event otherwise. Run again in the same directory, it
  resumes.
- ``dojo localnet status [--dir .localnet] [--json]`` — the processes and what the
  validator has done, from another terminal.
- ``dojo localnet down [--dir .localnet]`` — stop every process ``up`` started, in order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from template.config import positive_float

DEFAULT_DIR = ".localnet"
# The UpSettings fields no flag of the same name gives: the directory comes from --dir, the
# Label Studio token from the environment; every other field is its flag's value.
_NOT_FLAGS = ("directory", "label_studio_api_key")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def _validators(text: str) -> int:
    from dojo.localnet.net import MAX_VALIDATORS

    value = _count(text)
    if value > MAX_VALIDATORS:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_VALIDATORS} (each is a process of its own)")
    return value


def _mix(text: str) -> str:
    from commons.synthetic_api import normalised_mix

    try:
        return normalised_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("localnet", help="run a whole subnet on this machine")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    up = commands.add_parser(
        "up",
        help="start a local chain, a worker platform, the synthetic API, a validator, miners and workers",
        description="Run a whole Dojo subnet on this machine until Ctrl-C (or --duration): tasks generated, "
        "ranked by simulated workers, scored, weights set. A second run in the same --dir resumes.",
    )
    _add_dir(up)
    up.add_argument("--miners", type=_count, default=3, help="number of miners (default 3)")
    up.add_argument(
        "--validators",
        type=_validators,
        default=1,
        help="number of validators, each with its own wallet, stake, database, sample of miners and "
        "tasks, all sending to the same miners (default 1, at most 8)",
    )
    up.add_argument(
        "--validator-stakes",
        dest="validator_stakes",
        default="",
        metavar="LIST",
        help="each validator's stake in order, e.g. 1000,1000,500 (default: 1000 each)",
    )
    up.add_argument(
        "--workers-per-miner",
        dest="workers_per_miner",
        type=_count,
        default=3,
        help="simulated workers in each miner's team (default 3)",
    )
    up.add_argument(
        "--worker-mix",
        dest="worker_mix",
        default="honest:2,random:1",
        help="how the miners' teams behave, as shares of the miners in order: honest:2,random:1 (the default) "
        "gives two of every three miners an honest team and the last a random one; behaviours: honest(noise), "
        "random, constant, reverse, lazy(participation,noise)",
    )
    up.add_argument(
        "--miner-backends",
        dest="miner_backends",
        default="",
        metavar="LIST",
        help="each miner's worker backend in miner order, e.g. dojo,dojo,label-studio (default: all dojo); "
        "a label-studio miner gets a Label Studio server and annotators (scripts/label_studio.sh installs it)",
    )
    up.add_argument(
        "--label-studio",
        dest="label_studio_url",
        default="",
        metavar="URL",
        help="a Label Studio server that runs already, for the label-studio miners (token in LABEL_STUDIO_API_KEY); "
        "default: start one",
    )
    up.add_argument(
        "--deadline",
        type=positive_float,
        default=600.0,
        help="seconds a task stays open to workers: the time a person has to rank it (default 600)",
    )
    up.add_argument(
        "--person-window",
        dest="person_window",
        type=positive_float,
        default=60.0,
        help="seconds each task keeps a place open for a person to take before a simulated stand-in "
        "takes it; the validator collects a task once every place is filled, so the first weights "
        "come about this long after the first task (default 60)",
    )
    up.add_argument(
        "--task-interval",
        dest="task_interval",
        type=positive_float,
        default=10.0,
        help="seconds between new tasks (default 10)",
    )
    up.add_argument(
        "--block-time",
        dest="block_time",
        type=positive_float,
        default=1.0,
        help="seconds per block of a new local chain (default 1); an existing chain keeps its own",
    )
    up.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        help="stop after this many seconds, counted once everything has started",
    )
    up.add_argument(
        "--synthetic-mix",
        dest="synthetic_mix",
        type=_mix,
        default=None,
        metavar="MIX",
        help="content kinds of the tasks and their shares, e.g. code:1,text:1,dialogue:1,image:1 "
        "(default: code alone)",
    )
    up.add_argument("--debug", action="store_true", help="debug logging in every process")
    up.add_argument(
        "--organic",
        action="store_true",
        help="serve the validator's organic API, make a key, and run a caller that submits organic tasks",
    )
    up.add_argument(
        "--organic-rate",
        dest="organic_rate",
        type=positive_float,
        default=0.2,
        help="organic tasks a second the caller submits (default 0.2)",
    )
    up.set_defaults(handler=_up)

    status = commands.add_parser(
        "status", help="the processes, what each validator has done, its weights and trust"
    )
    _add_dir(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(handler=_status)

    down = commands.add_parser("down", help="stop every process `dojo localnet up` started, in order")
    _add_dir(down)
    down.add_argument(
        "--timeout",
        type=positive_float,
        default=30.0,
        help="seconds each process has to stop before it is killed (default 30)",
    )
    down.set_defaults(handler=_down)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        help=f"directory for the chain, wallets, databases and logs (default {DEFAULT_DIR})",
    )


def _up(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from loguru import logger

    from dojo.localnet.net import UpSettings, parse_backends, parse_stakes, run_localnet, team_mixes
    from dojo.workers import WorkerSpecError
    from template.log import FORMAT, setup_logging

    directory = Path(args.dir).resolve()
    try:
        team_mixes(args.worker_mix, args.miners, args.workers_per_miner)
    except (WorkerSpecError, ValueError) as exc:
        print(f"dojo localnet up: --worker-mix: {exc}", file=sys.stderr)
        return 2
    try:
        parse_backends(args.miner_backends, args.miners)
    except ValueError as exc:
        print(f"dojo localnet up: --miner-backends: {exc}", file=sys.stderr)
        return 2
    try:
        parse_stakes(args.validator_stakes, args.validators)
    except ValueError as exc:
        print(f"dojo localnet up: --validator-stakes: {exc}", file=sys.stderr)
        return 2
    from template.config import environment

    label_studio_api_key = environment().get("LABEL_STUDIO_API_KEY", "")  # the environment, else .env
    if args.label_studio_url and not label_studio_api_key:
        print("dojo localnet up: --label-studio needs its API token in LABEL_STUDIO_API_KEY", file=sys.stderr)
        return 2
    setup_logging(debug=args.debug, neuron="localnet")
    if sys.stdout.isatty():
        logger.remove()  # the live view owns the terminal; this process's own log goes to its file
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    logger.add(
        directory / "logs" / "localnet.log",
        level="DEBUG" if args.debug else "INFO",
        format=FORMAT,
        backtrace=False,
        diagnose=False,
    )
    given = {f.name: getattr(args, f.name) for f in fields(UpSettings) if f.name not in _NOT_FLAGS}
    settings = UpSettings(directory=directory, label_studio_api_key=label_studio_api_key, **given)
    return run_localnet(settings)


def _status(args: argparse.Namespace) -> int:
    from dojo.localnet.view import render, status

    directory = Path(args.dir).resolve()
    try:
        snapshot = status(directory)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"dojo localnet status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(snapshot, indent=2))
        return 0
    from rich.console import Console

    Console().print(render(snapshot))
    if snapshot["unsupervised"]:
        print(
            f"not supervised: {', '.join(snapshot['unsupervised'])} still run without `dojo localnet up`; "
            f"`dojo localnet down --dir {args.dir}` stops them"
        )
    elif not snapshot["running"]:
        print(f"stopped; `dojo localnet up --dir {args.dir}` resumes")
    return 0


def _down(args: argparse.Namespace) -> int:
    from dojo.localnet.net import stop_recorded

    directory = Path(args.dir).resolve()
    try:
        found = stop_recorded(directory, timeout=args.timeout)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"dojo localnet down: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(f"nothing was running in {directory}")
    else:
        print(
            f"stopped {len(found)} processes; everything is kept in {directory}: "
            f"`dojo localnet up --dir {args.dir}` resumes"
        )
    return 0
