"""The ``dojo`` command line.

``dojo`` with no arguments opens the interactive shell; ``dojo GROUP ...`` runs one
operation for scripts. Each command group lives in its own module under ``dojo.cli`` and
exposes ``register(subparsers)``; modules are imported only when the parser is built, and
a group's heavy imports happen inside its handlers so that ``dojo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# One line per command group: the module that registers it.
COMMAND_MODULES: tuple[str, ...] = (
    "dojo.cli.wallet",
    "dojo.cli.chain",
    "dojo.cli.localnet",
    "dojo.cli.platform",
    "dojo.cli.keys",
    "dojo.cli.synthetic",
    "dojo.cli.simulate",
    "dojo.cli.miner",
    "dojo.cli.validator",
    "dojo.cli.export",
    "dojo.cli.organic",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dojo",
        description="Dojo subnet tools. Run without arguments for the interactive shell.",
    )
    subparsers = parser.add_subparsers(dest="group", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        try:
            shell = importlib.import_module("dojo.cli.shell")
        except ModuleNotFoundError:
            build_parser().print_help()
            return 0
        return int(shell.run_shell() or 0)
    parser = build_parser()
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*args_list, "--help"])
        return 2
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
