"""``dojo chain``: create, populate and inspect a local chain (see :mod:`template.chain.local`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from dojo.cli.wallet import add_wallet_flags

# Defaults mirror LocalChain.init; repeated here so that building the parser imports nothing heavy.
HYPERPARAMETERS: tuple[tuple[str, type, object, str], ...] = (
    ("tempo", int, 360, "blocks per epoch"),
    ("min_allowed_weights", int, 1, "minimum number of non-zero weights per set_weights"),
    ("max_weight_limit", float, 1.0, "largest share of the total one uid may receive (0..1]"),
    ("weights_rate_limit", int, 100, "blocks between two set_weights of one hotkey"),
    ("weights_version", int, 0, "smallest accepted version key"),
    ("max_validators", int, 64, "validator permits: the top K neurons by stake"),
    ("max_uids", int, 256, "subnet size; a full subnet replaces its lowest-incentive neuron"),
    ("immunity_period", int, 4096, "blocks a new registration is safe from replacement"),
    ("commit_reveal_period", int, 0, "tempos before committed weights are revealed; 0: commit-reveal off"),
    ("kappa", float, 0.5, "Yuma consensus: the share of stake that must support a weight"),
    ("bonds_moving_average", float, 0.9, "share of the previous bonds kept each epoch"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("chain", help="run a local chain: init, register, show")
    commands = group.add_subparsers(dest="command", metavar="COMMAND")

    init = commands.add_parser("init", help="create a local chain and a subnet on it")
    _add_dir(init)
    init.add_argument(
        "--block-time", dest="block_time", type=float, default=12.0, help="seconds per block (default 12)"
    )
    for name, kind, default, help_text in HYPERPARAMETERS:
        init.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            default=default,
            help=f"{help_text} ({default})",
        )
    init.add_argument("--exist-ok", action="store_true", help="open an existing subnet instead of failing")
    init.set_defaults(handler=_init)

    reg = commands.add_parser("register", help="register a wallet's hotkey on the local subnet")
    _add_dir(reg)
    add_wallet_flags(reg)
    reg.add_argument("--stake", type=float, default=0.0, help="stake in TAO (default 0: no validator permit)")
    reg.add_argument("--json", action="store_true", help="print the registration as JSON")
    reg.set_defaults(handler=_register)

    show = commands.add_parser(
        "show",
        help="print the subnet's metagraph and its last Yuma epoch (consensus, incentive, trust, dividends)",
    )
    _add_dir(show)
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(handler=_show)


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", dest="dir", required=True, help="local chain directory (holds chain.sqlite)")
    parser.add_argument("--netuid", type=int, default=1, help="subnet id (default 1)")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _init(args: argparse.Namespace) -> int:
    from template.chain import ChainError
    from template.chain.local import LocalChain

    params = {name: getattr(args, name) for name, *_ in HYPERPARAMETERS}
    try:
        chain = LocalChain.init(
            args.dir, netuid=args.netuid, block_time=args.block_time, exist_ok=args.exist_ok, **params
        )
    except (ChainError, ValueError) as exc:
        return _fail(str(exc))
    print(f"subnet {chain.netuid} on local chain {chain.directory} (block time {chain.block_time:g} s)")
    return 0


def _register(args: argparse.Namespace) -> int:
    from template.chain import ChainError
    from template.chain.local import LocalChain
    from template.wallets import WalletMissing, load_wallet

    try:
        wallet = load_wallet(args.wallet_name, args.wallet_hotkey, args.wallet_path)
        chain = LocalChain(args.dir, netuid=args.netuid)
        hotkey, coldkey = wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address
        uid = chain.register(hotkey, coldkey, args.stake)
    except (WalletMissing, ChainError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        print(
            json.dumps(
                {
                    "netuid": chain.netuid,
                    "uid": uid,
                    "hotkey": hotkey,
                    "coldkey": coldkey,
                    "stake": args.stake,
                }
            )
        )
    else:
        print(f"registered {hotkey} on subnet {chain.netuid} as uid {uid} (stake {args.stake:g})")
    return 0


def _show(args: argparse.Namespace) -> int:
    from template.chain import ChainError
    from template.chain.local import LocalChain

    try:
        chain = LocalChain(args.dir, netuid=args.netuid)
        epoch = chain.epoch_view()
        mg = chain.metagraph()
        params = chain.params()
    except ChainError as exc:
        return _fail(str(exc))
    if args.json:
        print(
            json.dumps(
                {
                    "netuid": mg.netuid,
                    "block": mg.block,
                    "block_time": chain.block_time,
                    "hyperparameters": dataclasses.asdict(params),
                    "neurons": [
                        {
                            "uid": n.uid,
                            "hotkey": n.hotkey,
                            "coldkey": n.coldkey,
                            "stake": n.stake,
                            "validator_permit": n.validator_permit,
                            "axon": None if n.axon is None else {"ip": n.axon.ip, "port": n.axon.port},
                            "last_update": n.last_update,
                            "incentive": n.incentive,
                        }
                        for n in mg.neurons
                    ],
                    "epoch": dataclasses.asdict(epoch),
                },
                indent=2,
            )
        )
        return 0
    print(f"subnet {mg.netuid} at block {mg.block}: {mg.n} neurons ({chain.directory})")
    print(
        f"block time {chain.block_time:g} s, tempo {params.tempo}, max validators {params.max_validators}, "
        f"weights: min {params.min_allowed_weights}, max share {params.max_weight_limit:g}, "
        f"rate limit {params.weights_rate_limit} blocks, version {params.weights_version}"
    )
    header = ("uid", "hotkey", "stake", "permit", "axon", "last update", "incentive")
    rows = [
        (
            str(n.uid),
            n.hotkey,
            f"{n.stake:.4f}",
            "yes" if n.validator_permit else "no",
            f"{n.axon.ip}:{n.axon.port}" if n.axon is not None else "-",
            str(n.last_update) if n.last_update else "-",
            f"{n.incentive:.4f}",
        )
        for n in mg.neurons
    ]
    _table(header, rows)
    if epoch.block == 0:
        print("\nno epoch yet (one runs every tempo)")
        return 0
    cr = (
        f"commit-reveal {params.commit_reveal_period} tempo(s)"
        if params.commit_reveal_period
        else "commit-reveal off"
    )
    print(
        f"\nYuma epoch at block {epoch.block} (kappa {params.kappa:g}, bonds moving average "
        f"{params.bonds_moving_average:g}, {cr})"
    )
    _table(
        ("validator", "hotkey", "stake", "trust", "dividend", "weights"),
        [
            (
                str(v.uid),
                v.hotkey,
                f"{v.stake:.4f}",
                f"{v.trust:.4f}",
                f"{v.dividend:.4f}",
                " ".join(f"{uid}:{w:.3f}" for uid, w in sorted(v.weights.items())) or "-",
            )
            for v in epoch.validators
        ],
    )
    print()
    _table(
        ("miner", "hotkey", "consensus", "incentive"),
        [(str(m.uid), m.hotkey, f"{m.consensus:.4f}", f"{m.incentive:.4f}") for m in epoch.miners],
    )
    return 0


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
