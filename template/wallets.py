"""Wallet creation and loading without prompts."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt

DEFAULT_WALLET_PATH = "~/.bittensor/wallets"


class WalletMissing(FileNotFoundError):
    """The wallet's hotkey file does not exist."""


def create_wallet(name: str, hotkey: str, path: str = DEFAULT_WALLET_PATH) -> bt.Wallet:
    """Create the coldkey (if absent) and the hotkey (if absent), unencrypted and silently.

    An existing key is kept, never overwritten, so the call is safe to repeat.
    """
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))
    if not wallet.coldkeypub_file.exists_on_device():
        wallet.create_new_coldkey(use_password=False, suppress=True)
    if not wallet.hotkey_file.exists_on_device():
        wallet.create_new_hotkey(use_password=False, suppress=True)
    return wallet


def load_wallet(name: str, hotkey: str, path: str = DEFAULT_WALLET_PATH) -> bt.Wallet:
    """Open an existing wallet and unlock its hotkey; :class:`WalletMissing` if it is absent."""
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=str(Path(path).expanduser()))
    if not wallet.hotkey_file.exists_on_device():
        raise WalletMissing(
            f"no hotkey '{hotkey}' in wallet '{name}' under {path}; create it with "
            f"`dojo wallet create --wallet.name {name} --wallet.hotkey {hotkey} --wallet.path {path}`"
        )
    wallet.hotkey  # noqa: B018 - unlock now so a bad keyfile fails at start, not mid-request
    return wallet
