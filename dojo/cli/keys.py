"""``dojo authenticate``, ``dojo api-key`` and ``dojo subscription-key``: the shell's operations for scripts.

    dojo authenticate --wallet.name W --wallet.hotkey H [--wallet.path P] [--platform URL]
    dojo api-key generate|list|delete [ID] --wallet.name W --wallet.hotkey H ...
    dojo subscription-key generate|list|delete [ID] ...

``generate`` prints the new key alone on stdout (``KEY=$(dojo api-key generate ...)``);
``list`` prints one key per line (prefix, id, state, dates; the miner's DOJO_API_KEY, from
the environment or ``.env``, is marked), or JSON with ``--json``; ``delete`` takes the key's
id or prefix (or ``--id``). The session is cached like the shell's. Exit codes: 0 done,
1 the platform refused or could not be reached (its message on stderr), 2 usage (bad
flags, no such wallet or key).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from dojo.cli.wallet import add_wallet_flags

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

_GROUPS = {
    "api-key": ("api_key", "API keys: the miner's DOJO_API_KEY for creating tasks"),
    "subscription-key": ("subscription_key", "subscription keys: workers enter them in the web UI"),
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = subparsers.add_parser(
        "authenticate", help="log in to a worker platform with the hotkey and cache the session"
    )
    add_account_flags(auth)
    auth.set_defaults(handler=_authenticate)

    for group, (kind, help_text) in _GROUPS.items():
        parser = subparsers.add_parser(group, help=help_text)
        parser.set_defaults(handler=lambda args, p=parser: _usage(p))
        actions = parser.add_subparsers(dest="action", metavar="ACTION")
        for action, action_help in (
            ("generate", "create a key and print it (shown only this once)"),
            ("list", "list the active keys (prefix, id, dates)"),
            ("delete", "disable a key at once"),
        ):
            sub = actions.add_parser(action, help=action_help)
            if action == "delete":
                sub.add_argument("ref", nargs="?", metavar="ID", help="the key's id or prefix (see `list`)")
                sub.add_argument("--id", dest="ref_flag", metavar="ID", help="the same, as a flag")
            if action != "delete":
                sub.add_argument("--json", action="store_true", help="print JSON")
            add_account_flags(sub)
            sub.set_defaults(
                handler=_key_handler, key_group=kind, key_command=group, key_action=action, key_parser=sub
            )


def add_account_flags(parser: argparse.ArgumentParser) -> None:
    """The wallet, platform and session-cache flags of every command that logs in as the miner."""
    add_wallet_flags(parser)
    parser.add_argument(
        "--platform",
        default=None,
        help="the worker platform's URL (default: $DOJO_API_BASE_URL, else http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--session-dir",
        default=None,
        help="where sessions are cached (default: $DOJO_SESSION_DIR, else ~/.dojo/sessions)",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage()
    return EXIT_USAGE


def _authenticate(args: argparse.Namespace) -> int:
    from dojo.cli.platform_account import session_summary

    async def run(account: Any) -> int:
        await account.authenticate()
        summary = session_summary(account)
        _success(
            f"Authenticated as {summary['hotkey']} on {summary['platform']}; "
            f"session valid until {summary['expiresAt']}."
        )
        return EXIT_OK

    return run_with_account(args, run)


def _key_handler(args: argparse.Namespace) -> int:
    import json

    from dojo.cli.platform_account import (
        KEY_KINDS,
        MINERS_KEY,
        KeyNotFound,
        configured_api_key,
        key_in_use,
        key_state,
    )

    kind = KEY_KINDS[args.key_group]
    if args.key_action == "delete":
        ref, flag = args.ref, args.ref_flag
        if ref and flag and ref != flag:
            args.key_parser.error(f"two keys given ({ref} and --id {flag}); delete one at a time")
        ref = ref or flag
        if not ref:
            args.key_parser.error(
                f"give the key's id or prefix: dojo {args.key_command} delete ID (see `list`)"
            )
    # Only API keys can be the running miner's.
    miners_key = configured_api_key() if args.key_group == "api_key" else None

    async def run(account: Any) -> int:
        if args.key_action == "generate":
            new_key = await account.generate(kind.kind)
            if args.json:
                print(json.dumps(new_key.model_dump(mode="json", by_alias=True)))
            else:
                print(new_key.key)
            _note(f"✅ New {kind.singular} {new_key.prefix} (id {new_key.id}); it is shown only this once.")
            return EXIT_OK
        if args.key_action == "list":
            keys = await account.list_active(kind.kind)
            if args.json:
                print(json.dumps([k.model_dump(mode="json", by_alias=True) for k in keys]))
            elif not keys:
                _note(f"⚠️  No {kind.plural} found; generate one with `dojo {args.key_command} generate`.")
            in_use = key_in_use(keys, miners_key)
            for key in [] if args.json else keys:
                last_used = key.last_used_at.isoformat() if key.last_used_at else "never"
                print(
                    f"{key.prefix}\tid={key.id}\tstate={key_state(key, in_use)}\tcreated={key.created_at.isoformat()}"
                    f"\tlast_used={last_used}"
                )
            return EXIT_OK
        try:
            key = await account.disable(kind.kind, ref)
        except KeyNotFound as exc:
            _note(f"❌ {exc}")
            return EXIT_USAGE
        _success(f"Disabled {kind.singular} {key.prefix} (id {key.id}).")
        if key_in_use([key], miners_key) is not None:
            _note(
                f"⚠️  It was {MINERS_KEY}: the miner refuses tasks until .env holds a new key "
                f"(dojo api-key generate) and the miner is restarted."
            )
        return EXIT_OK

    return run_with_account(args, run)


def run_with_account(args: argparse.Namespace, run: Callable[[Any], Awaitable[int]]) -> int:
    """Open the wallet and the platform, run one operation, and map failures to exit codes."""
    import asyncio

    from commons.dojo_api import DojoAPI, DojoAPIError, normalize_base_url
    from dojo.cli.platform_account import MinerAccount, MinerSessionFiles, cli_logging, default_platform_url
    from template.wallets import WalletMissing, load_wallet

    try:
        platform = normalize_base_url(args.platform or default_platform_url())
    except ValueError as exc:
        _note(f"❌ {exc}")
        return EXIT_USAGE
    try:
        wallet = load_wallet(args.wallet_name, args.wallet_hotkey, args.wallet_path)
    except (WalletMissing, OSError, ValueError) as exc:
        _note(f"❌ {exc}")
        return EXIT_USAGE
    cache = MinerSessionFiles(args.session_dir)

    async def main() -> int:
        async with DojoAPI(platform) as api:
            account = MinerAccount(api, wallet.hotkey, cache, on_event=lambda event: _note(f"ℹ️  {event}"))
            try:
                return await run(account)
            except DojoAPIError as exc:
                _note(f"❌ {exc}")
                return EXIT_REFUSED

    with cli_logging():
        return asyncio.run(main())


def _success(message: str) -> None:
    print(f"✅ {message}")


def _note(message: str) -> None:
    """Messages for the person, on stderr, so that stdout carries only the data."""
    print(message, file=sys.stderr)
