"""The chain adapter interface: everything a Dojo process reads from or writes to the chain.

Two implementations: :class:`~template.chain.subtensor.SubtensorChain` (bittensor 11,
testnet, mainnet or a subtensor node) and :class:`~template.chain.local.LocalChain` (a
SQLite file shared by the processes of one local network). Nothing outside the adapters
constructs a ``bt.Subtensor``.

Errors::

    ChainError (RuntimeError)
    ├── ChainUnavailable     the chain cannot be reached or opened
    └── NotRegistered        the hotkey has no uid on the subnet
    WeightsRejected (ValueError, template.chain.weights)
                             the weights break a subnet rule; ``.reason`` names it
                             (length_mismatch, duplicate_uids, uid_not_registered,
                             invalid_values, too_few_weights, max_weight_exceeded,
                             incorrect_version_key, rate_limited, no_validator_permit,
                             hotkey_not_registered; from a real chain also
                             not_enough_stake, commit_reveal_enabled)
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from template.chain.weights import WeightRules


class ChainError(RuntimeError):
    """A chain read or write failed."""

    #: Worth another try (``commons.retry.is_transient``): the node failed the call.
    transient = True


class ChainUnavailable(ChainError):
    """The chain could not be reached (no node, unreadable local chain directory)."""


class NotRegistered(ChainError):
    """The hotkey is not registered on the subnet."""

    transient = False  # the chain's answer: the same call gets it again

    def __init__(self, hotkey: str, netuid: int, hint: str = ""):
        msg = f"hotkey {hotkey} is not registered on subnet {netuid}"
        super().__init__(f"{msg}. {hint}" if hint else msg)
        self.hotkey = hotkey
        self.netuid = netuid


@dataclass(frozen=True)
class AxonEndpoint:
    """A neuron's published HTTP endpoint (its "axon")."""

    ip: str
    port: int
    protocol: int = 4

    @property
    def is_serving(self) -> bool:
        return self.port > 0 and self.ip not in ("", "0.0.0.0", "0")

    @property
    def url(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class NeuronInfo:
    uid: int
    hotkey: str
    coldkey: str
    stake: float
    validator_permit: bool
    axon: AxonEndpoint | None
    last_update: int
    incentive: float = 0.0


@dataclass(frozen=True)
class Metagraph:
    """A snapshot of one subnet's neurons at a block."""

    netuid: int
    block: int
    neurons: tuple[NeuronInfo, ...] = ()
    _by_hotkey: dict[str, NeuronInfo] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_hotkey.update({n.hotkey: n for n in self.neurons})

    @property
    def n(self) -> int:
        return len(self.neurons)

    @property
    def hotkeys(self) -> list[str]:
        return [n.hotkey for n in self.neurons]

    def get(self, hotkey: str) -> NeuronInfo | None:
        return self._by_hotkey.get(hotkey)

    def uid_of(self, hotkey: str) -> int | None:
        neuron = self._by_hotkey.get(hotkey)
        return None if neuron is None else neuron.uid

    def serving(self) -> list[NeuronInfo]:
        return [n for n in self.neurons if n.axon is not None and n.axon.is_serving]


@dataclass(frozen=True)
class Hyperparameters:
    tempo: int
    weights: WeightRules
    commit_reveal: bool = False
    max_validators: int = 64


@dataclass(frozen=True)
class ValidatorView:
    """A validator at an epoch: its stake, validator trust, dividend share and the weights
    (normalised, by uid) that the epoch saw."""

    uid: int
    hotkey: str
    stake: float
    trust: float
    dividend: float
    weights: dict[int, float]


@dataclass(frozen=True)
class MinerView:
    """A miner at an epoch: its consensus weight and its incentive share."""

    uid: int
    hotkey: str
    consensus: float
    incentive: float


@dataclass(frozen=True)
class EpochView:
    """What the chain's last Yuma epoch made of the validators' weights.

    ``block`` is the epoch's boundary block (0 before the first epoch, when every figure is 0).
    """

    block: int
    validators: list[ValidatorView]
    miners: list[MinerView]


class Chain(abc.ABC):
    """One subnet on one chain. Methods block; async callers run them in a thread."""

    netuid: int

    @abc.abstractmethod
    def metagraph(self) -> Metagraph: ...

    @abc.abstractmethod
    def block(self) -> int: ...

    @abc.abstractmethod
    def hyperparameters(self) -> Hyperparameters: ...

    @abc.abstractmethod
    def serve_axon(self, wallet: Any, ip: str, port: int) -> None:
        """Publish ``ip:port`` as the endpoint of the wallet's hotkey."""

    @abc.abstractmethod
    def set_weights(self, wallet: Any, uids: list[int], weights: list[int], version_key: int) -> None:
        """Set u16 weights from the wallet's hotkey; raises ``WeightsRejected`` if refused."""

    def is_registered(self, hotkey: str) -> bool:
        return self.metagraph().get(hotkey) is not None

    def epoch_view(self) -> EpochView:
        """The last epoch's consensus, incentive, validator trust and dividends."""
        raise NotImplementedError(f"{type(self).__name__} does not report Yuma consensus figures")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""

    def describe(self) -> str:
        return f"{type(self).__name__}(netuid={self.netuid})"


__all__ = [
    "AxonEndpoint",
    "Chain",
    "ChainError",
    "ChainUnavailable",
    "EpochView",
    "Hyperparameters",
    "Metagraph",
    "MinerView",
    "NeuronInfo",
    "NotRegistered",
    "ValidatorView",
]
