"""``dojo wallet``: create a wallet's keys without prompts, for local networks and tests."""

from __future__ import annotations

import argparse

DEFAULT_WALLET_PATH = "~/.bittensor/wallets"


def add_wallet_flags(parser: argparse.ArgumentParser) -> None:
    """The original Dojo wallet flags, dotted as the pm2 commands spell them."""
    parser.add_argument("--wallet.name", dest="wallet_name", required=True, help="wallet (coldkey) name")
    parser.add_argument(
        "--wallet.hotkey", dest="wallet_hotkey", default="default", help="hotkey name (default: default)"
    )
    parser.add_argument(
        "--wallet.path",
        dest="wallet_path",
        default=DEFAULT_WALLET_PATH,
        help=f"directory holding wallets (default: {DEFAULT_WALLET_PATH})",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = subparsers.add_parser("wallet", help="create wallets")
    commands = group.add_subparsers(dest="command", metavar="COMMAND")
    create = commands.add_parser(
        "create",
        help="create a coldkey and hotkey, unencrypted, without prompts",
        description="Create the wallet's coldkey and hotkey if absent (existing keys are kept) "
        "and print their ss58 addresses. Keys are stored unencrypted: for local networks and tests.",
    )
    add_wallet_flags(create)
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace) -> int:
    from template.wallets import create_wallet

    wallet = create_wallet(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    print(f"wallet   {args.wallet_name} (hotkey {args.wallet_hotkey}) under {args.wallet_path}")
    print(f"coldkey  {wallet.coldkeypub.ss58_address}")
    print(f"hotkey   {wallet.hotkey.ss58_address}")
    return 0
