"""Chain access for every Dojo process: one interface, a real and a local implementation."""

from __future__ import annotations

import os
from pathlib import Path

from template.chain import base
from template.chain.base import *  # noqa: F403
from template.chain.weights import WeightRules, WeightsRejected

NAMED_NETWORKS = ("finney", "test", "local", "archive")

__all__ = [
    "NAMED_NETWORKS",
    *base.__all__,
    "WeightRules",
    "WeightsRejected",
    "is_local_chain_dir",
    "open_chain",
]


def is_local_chain_dir(network: str) -> bool:
    """A ``--subtensor.network`` value names a local chain when it is a path, not a network name."""
    return network not in NAMED_NETWORKS and (os.sep in network or Path(network).is_dir())


def open_chain(network: str, netuid: int, chain_endpoint: str | None = None) -> base.Chain:
    """The chain for ``--subtensor.network``: a local-chain directory, or a subtensor network."""
    if is_local_chain_dir(network):
        from template.chain.local import LocalChain

        return LocalChain(Path(network), netuid=netuid)
    from template.chain.subtensor import SubtensorChain

    return SubtensorChain(network=chain_endpoint or network, netuid=netuid)
