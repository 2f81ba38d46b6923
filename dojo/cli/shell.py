"""The interactive ``dojo`` shell: a miner's keys on a worker platform, by hand.

``dojo`` with no arguments runs :func:`run_shell`, the original Dojo CLI's flow: choose the
wallet path, the coldkey and hotkey (TAB completes names from the wallet directory), the
platform URL, then commands. Commands complete as in bash: TAB completes the word being typed
in place and adds a space, inserts what the candidates share when several match, and lists
them when they share nothing more; ``api_key`` or ``subscription_key`` alone lists its
actions::

    authenticate                              log in with the hotkey (session cached on disk)
    api_key generate | list | delete [KEY]    API keys: the miner's .env DOJO_API_KEY
    subscription_key generate | list | delete [KEY]
                                              subscription keys: workers enter them in the UI
    logout, help, exit

Lists show each key's prefix, id, state and dates, as ``dojo api-key list`` does, and mark
the key a miner started here uses (DOJO_API_KEY from the environment or ``.env``); asked to
delete without a key, the shell lists the choices, and asks again before it disables that
key. An unknown command or action is answered with the valid ones.

The same operations for scripts are ``dojo authenticate``, ``dojo api-key ...`` and
``dojo subscription-key ...`` (:mod:`dojo.cli.keys`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    NestedCompleter,
    PathCompleter,
    WordCompleter,
)
from prompt_toolkit.document import Document
from prompt_toolkit.shortcuts import CompleteStyle
from rich.console import Console
from rich.text import Text

from commons.dojo_api import DojoAPI, DojoAPIError, normalize_base_url
from commons.dojo_wire import KeyOut
from dojo.cli.platform_account import (
    KEY_KINDS,
    MINERS_KEY,
    KeyNotFound,
    MinerAccount,
    MinerSessionFiles,
    cli_logging,
    configured_api_key,
    default_platform_url,
    find_key,
    hotkey_names,
    key_in_use,
    key_labels,
    key_summary,
    wallet_names,
)
from template.wallets import DEFAULT_WALLET_PATH, WalletMissing, load_wallet

if TYPE_CHECKING:
    import bittensor as bt

KEY_ACTIONS = ("generate", "list", "delete")
COMMANDS: dict[str, dict[str, None] | None] = {
    "authenticate": None,
    "api_key": dict.fromkeys(KEY_ACTIONS),
    "subscription_key": dict.fromkeys(KEY_ACTIONS),
    "logout": None,
    "help": None,
    "exit": None,
}

HELP = """\
Commands (TAB completes):
  authenticate                          log in to the platform with your hotkey
  api_key generate|list|delete [KEY]    API keys: put one in the miner's .env as DOJO_API_KEY
  subscription_key generate|list|delete [KEY]
                                        subscription keys: your workers enter them in the web UI
  logout                                forget the cached session
  help                                  this text
  exit                                  leave the shell
Lists show each key's prefix, id, state and dates; delete takes a key's id or prefix, or asks."""


class CommandCompleter(Completer):
    """The shell's commands, word by word (``COMMANDS``); each completion ends in a space.

    The space is what bash adds after a unique completion: without it, TAB on ``api`` left
    ``api_key`` and the next word typed glued to it (``api_keygen``).
    """

    def __init__(self) -> None:
        self._words = NestedCompleter.from_nested_dict(COMMANDS)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        for word in self._words.get_completions(document, complete_event):
            yield Completion(
                word.text + " ", word.start_position, display=word.display, display_meta=word.display_meta
            )


class ShellOutput:
    """The shell's messages, in the original CLI's style."""

    def __init__(self, console: Console):
        self.console = console

    def _say(self, symbol: str, message: str, style: str) -> None:
        self.console.print(Text(f"{symbol} {message}", style=style), soft_wrap=True)

    def success(self, message: str) -> None:
        self._say("✅", message, "green")

    def info(self, message: str) -> None:
        self._say("ℹ️ ", message, "white")

    def warning(self, message: str) -> None:
        self._say("⚠️ ", message, "yellow")

    def error(self, message: str) -> None:
        self._say("❌", message, "red")

    def plain(self, message: str) -> None:
        self.console.print(Text(message), soft_wrap=True)


class DojoShell:
    def __init__(
        self,
        console: Console | None = None,
        *,
        session_cache: MinerSessionFiles | None = None,
        default_wallet_path: str = DEFAULT_WALLET_PATH,
        default_platform: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        miner_api_key: str | None = None,
    ):
        self.out = ShellOutput(console or Console(highlight=False))
        # The DOJO_API_KEY of a miner started here (environment, else .env): its key is marked.
        self.miner_api_key = miner_api_key if miner_api_key is not None else configured_api_key()
        self.cache = session_cache or MinerSessionFiles()
        self.default_wallet_path = Path(default_wallet_path).expanduser()
        self.default_platform = default_platform or default_platform_url()
        self.transport = transport
        self._prompts: PromptSession[str] = PromptSession()

    async def _ask(
        self, message: str, completer: Completer | None = None, style: CompleteStyle = CompleteStyle.COLUMN
    ) -> str:
        # Given every time: a PromptSession keeps the last complete_style it was given.
        return (await self._prompts.prompt_async(message, completer=completer, complete_style=style)).strip()

    # -- set-up ----------------------------------------------------------------------------

    async def _ask_wallet_path(self) -> Path:
        while True:
            answer = (
                await self._ask(
                    f"Do you want to use the default wallet path {self.default_wallet_path}? (y/n): "
                )
            ).lower()
            if answer in ("y", "yes"):
                return self.default_wallet_path
            if answer not in ("n", "no"):
                self.out.warning("Please answer y or n.")
                continue
            entered = await self._ask(
                "Enter the wallet path: ", PathCompleter(only_directories=True, expanduser=True)
            )
            path = _existing_dir(entered)
            if path is not None:
                return path
            self.out.error(f"Invalid wallet path {entered}, please try again.")

    async def _ask_wallet(self, wallet_path: Path) -> bt.Wallet:
        self.out.info("Please specify the wallet coldkey name and hotkey name to perform key management.")
        while True:
            name = await self._ask(
                "Enter the wallet coldkey name: ",
                WordCompleter(wallet_names(wallet_path), ignore_case=True, WORD=True),
            )
            coldkey_path = wallet_path / name
            if name and coldkey_path.is_dir():
                break
            self.out.error(
                f"Coldkey path is invalid {coldkey_path}; known wallets: {wallet_names(wallet_path)}"
            )
        while True:
            hotkey = await self._ask(
                "Enter the wallet hotkey name: ",
                WordCompleter(hotkey_names(wallet_path, name), ignore_case=True, WORD=True),
            )
            hotkey_path = coldkey_path / "hotkeys" / hotkey
            if not (hotkey and hotkey_path.is_file()):
                self.out.error(
                    f"Hotkey path is invalid {hotkey_path}; known hotkeys: {hotkey_names(wallet_path, name)}"
                )
                continue
            try:
                wallet = await asyncio.to_thread(load_wallet, name, hotkey, str(wallet_path))
            except (WalletMissing, OSError, ValueError) as exc:
                self.out.error(f"Cannot open hotkey {hotkey}: {exc}")
                continue
            self.out.info(f"Coldkey path: {coldkey_path}")
            self.out.info(f"Hotkey path: {hotkey_path}")
            self.out.success("Wallet coldkey name and hotkey name set successfully.")
            return wallet

    async def _ask_platform(self) -> str:
        while True:
            entered = await self._ask(f"Enter the platform URL (default {self.default_platform}): ")
            try:
                return normalize_base_url(entered or self.default_platform)
            except ValueError as exc:
                self.out.error(str(exc))

    # -- commands --------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            wallet_path = await self._ask_wallet_path()
            wallet = await self._ask_wallet(wallet_path)
            platform = await self._ask_platform()
        except EOFError:
            return 0
        except KeyboardInterrupt:
            return 130
        self.out.info(f"Platform: {platform}. Type `help` for the commands; TAB completes.")
        async with DojoAPI(platform, transport=self.transport) as api:
            account = MinerAccount(api, wallet.hotkey, self.cache, on_event=self.out.info)
            completer = CommandCompleter()
            while True:
                try:
                    # Readline-style: the menu style pops up while typing and TAB takes its first
                    # entry, so "api_key " TAB put "generate" in and the next letters glued to it
                    # ("generateg"). Readline-style TAB completes only what is being typed.
                    line = await self._ask(">>> ", completer, CompleteStyle.READLINE_LIKE)
                    # Commands are case-blind; a key prefix after them is not.
                    parts = line.split()
                    words = [w.lower() for w in parts[:2]] + parts[2:]
                    if words in (["exit"], ["quit"]):
                        break
                    await self._dispatch(account, words)
                except KeyboardInterrupt:
                    continue  # Ctrl-C drops the line (or the selection), as in a shell
                except EOFError:
                    break
                except (DojoAPIError, KeyNotFound) as exc:
                    self.out.error(str(exc))
        return 0

    async def _dispatch(self, account: MinerAccount, words: list[str]) -> None:
        match words:
            case []:
                return
            case ["help"]:
                self.out.plain(HELP)
            case ["authenticate"]:
                session = await account.authenticate()
                self.out.success(
                    f"Authenticated as {account.address} on {account.platform}; "
                    f"session valid until {session.expires_at:%Y-%m-%d %H:%M:%S %Z}."
                )
            case ["logout"]:
                if await account.logout():
                    self.out.success("Session cleared.")
                else:
                    self.out.info("No cached session.")
            case [group] if group in KEY_KINDS:
                self.out.info(f"{group} takes an action: {' | '.join(KEY_ACTIONS)} (e.g. `{group} list`).")
            case [group, "generate"] if group in KEY_KINDS:
                await self._generate(account, group)
            case [group, "list"] if group in KEY_KINDS:
                await self._list(account, group)
            case [group, "delete", *ref] if group in KEY_KINDS and len(ref) <= 1:
                await self._delete(account, group, ref[0] if ref else None)
            case [group, "delete", *_] if group in KEY_KINDS:
                self.out.warning(f"{group} delete takes one key: its id or prefix (e.g. `{group} delete 9`).")
            case [group, action, *_] if group in KEY_KINDS:
                self.out.warning(
                    f"Unknown action {action!r} for {group}: the actions are {', '.join(KEY_ACTIONS)} "
                    f"(e.g. `{group} list`)."
                )
            case [command, *_]:
                self.out.warning(
                    f"Unknown command {command!r}: the commands are {', '.join(COMMANDS)}. "
                    "Type `help` for what each does."
                )

    async def _generate(self, account: MinerAccount, group: str) -> None:
        kind = KEY_KINDS[group]
        new_key = await account.generate(kind.kind)
        self.out.success(f"New {kind.singular}: {new_key.key}")
        self.out.info("It is shown only this once: store it now. Lists show its prefix.")
        self._show(group, await account.list_active(kind.kind), "All")

    async def _list(self, account: MinerAccount, group: str) -> None:
        kind = KEY_KINDS[group]
        keys = await account.list_active(kind.kind)
        if keys:
            self._show(group, keys, "All")
        else:
            self.out.warning(f"No {kind.plural} found, please generate one.")

    def _in_use(self, group: str, keys: list[KeyOut]) -> KeyOut | None:
        return key_in_use(keys, self.miner_api_key) if group == "api_key" else None

    def _show(self, group: str, keys: list[KeyOut], title: str) -> None:
        """The keys as `dojo api-key list` shows them: prefix, id, state and dates."""
        kind = KEY_KINDS[group]
        in_use = self._in_use(group, keys)
        self.out.success(f"{title} {kind.plural} ({len(keys)}):" if keys else f"No {kind.plural} left.")
        for key in keys:
            self.out.plain(f"  {key_summary(key, in_use)}")

    async def _delete(self, account: MinerAccount, group: str, ref: str | None) -> None:
        kind = KEY_KINDS[group]
        keys = await account.list_active(kind.kind)
        if not keys:
            self.out.warning(f"No {kind.plural} found, please generate one.")
            return
        in_use = self._in_use(group, keys)
        if ref is None:
            self.out.info(
                f"Which {kind.singular} to disable? Type its id or its prefix (TAB completes the prefixes; "
                "Ctrl-C cancels). Disabling is at once and for good."
            )
            self._show(group, keys, "Active")
            meta = {
                k.prefix: f"id {k.id}" + (f", {MINERS_KEY}" if in_use and k.id == in_use.id else "")
                for k in keys
            }
            ref = await self._ask(
                f"{_article(kind.singular).capitalize()} to disable (id or prefix): ",
                WordCompleter(key_labels(keys) + [str(k.id) for k in keys], WORD=True, meta_dict=meta),
            )
        key = find_key(keys, ref)
        if in_use is not None and key.id == in_use.id:
            self.out.warning(
                f"{key.prefix} is {MINERS_KEY}: once it is disabled the miner refuses tasks until .env "
                "holds a new key and the miner is restarted."
            )
            answer = (await self._ask(f"Disable {key.prefix} anyway? (y/n): ")).lower()
            if answer not in ("y", "yes"):
                self.out.info(f"Kept {key.prefix}.")
                return
        key = await account.disable(kind.kind, str(key.id))
        self.out.success(f"Disabled {kind.singular} {key.prefix}.")
        self._show(group, await account.list_active(kind.kind), "Remaining")


def _existing_dir(entered: str) -> Path | None:
    path = Path(entered).expanduser()
    return path if entered and path.is_dir() else None


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0].lower() in "aeiou" else f"a {noun}"


def run_shell(console: Console | None = None, **options: Any) -> int:
    """Run the interactive shell until ``exit`` (or end of input); returns the exit code.

    ``options`` go to :class:`DojoShell` (session cache, defaults, an httpx transport).
    """
    shell = DojoShell(console, **options)
    with cli_logging():
        return asyncio.run(shell.run())
