"""Fixtures shared by every test package: real wallets in a temporary directory."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import bittensor as bt
import pytest

from template.wallets import create_wallet

_counter = itertools.count()


@pytest.fixture
def wallet_path(tmp_path: Path) -> Path:
    path = tmp_path / "wallets"
    path.mkdir()
    return path


@pytest.fixture
def make_wallet(wallet_path: Path) -> Callable[..., bt.Wallet]:
    """Create a fresh real wallet (unencrypted sr25519 keys on disk)."""

    def _make(name: str | None = None, hotkey: str = "default") -> bt.Wallet:
        return create_wallet(name or f"w{next(_counter)}", hotkey, str(wallet_path))

    return _make
