"""``dojo localnet up``: a local chain, miners and a validator on this machine."""

from __future__ import annotations

import argparse
from pathlib import Path


def _up(args: argparse.Namespace) -> int:
    from dojo.localnet import run_localnet
    from template.log import setup_logging

    setup_logging(debug=args.debug, neuron="localnet")
    return run_localnet(Path(args.dir).resolve(), args.miners, args.duration, args.debug)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("localnet", help="run a whole subnet on this machine")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up = commands.add_parser("up", help="start a local chain, miners and a validator until Ctrl-C")
    up.add_argument("--dir", default=".localnet", help="directory for the chain, wallets and logs (default .localnet)")
    up.add_argument("--miners", type=int, default=2, help="number of miners (default 2)")
    up.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    up.add_argument("--debug", action="store_true", help="debug logging in every neuron")
    up.set_defaults(handler=_up)
