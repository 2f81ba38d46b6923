"""The chain adapter for a real subtensor (finney, test, or a node's ws:// endpoint), over bittensor 11.

This is the only module that constructs a ``bt.Subtensor``. It connects on first use,
reads the metagraph and hyperparameters in one runtime-API call each, publishes the
axon with the SDK's ``ServeAxon`` intent and sets weights with its ``SetWeights`` intent
(which also handles commit-reveal subnets). SDK errors are translated at this boundary:
an unreachable node becomes :class:`ChainUnavailable`, a refused weight vector
:class:`WeightsRejected` with the same reason codes the local chain uses, anything else
:class:`ChainError`.
"""

from __future__ import annotations

import threading
from typing import Any

from loguru import logger

from template.chain.base import (
    AxonEndpoint,
    Chain,
    ChainError,
    ChainUnavailable,
    EpochView,
    Hyperparameters,
    Metagraph,
    NeuronInfo,
    NotRegistered,
)
from template.chain.weights import U16_MAX, WeightRules, WeightsRejected, check_weights

# The SDK's chain error names for the weight rules, mapped to our reason codes.
_WEIGHT_ERRORS: dict[str, str] = {
    "WeightVecNotEqualSize": "length_mismatch",
    "DuplicateUids": "duplicate_uids",
    "UidVecContainInvalidOne": "uid_not_registered",
    "UidsLengthExceedUidsInSubNet": "uid_not_registered",
    "WeightVecLengthIsLow": "too_few_weights",
    "MaxWeightExceeded": "max_weight_exceeded",
    "IncorrectWeightVersionKey": "incorrect_version_key",
    "SettingWeightsTooFast": "rate_limited",
    "CommittingWeightsTooFast": "rate_limited",
    "NeuronNoValidatorPermit": "no_validator_permit",
    "NotEnoughStakeToSetWeights": "not_enough_stake",
    "HotKeyNotRegisteredInSubNet": "hotkey_not_registered",
    "HotKeyNotRegisteredInNetwork": "hotkey_not_registered",
    "CommitRevealEnabled": "commit_reveal_enabled",
}

# Storage-level error codes the SDK's own preflight raises without a chain error name.
_WEIGHT_CODES: dict[str, str] = {
    "not_registered": "hotkey_not_registered",
    "rate_limited": "rate_limited",
    "not_authorized": "no_validator_permit",
}


class SubtensorChain(Chain):
    """One subnet on a subtensor chain.

    ``network`` is ``finney``, ``test``, ``local`` (``ws://127.0.0.1:9944``) or a
    ``ws://`` / ``wss://`` endpoint. ``substrate`` is the SDK's own backend seam
    (``bt.Subtensor(substrate=...)``): any implementation of ``bittensor.Substrate``,
    for tests that must not touch a network. Methods block; call them from a thread
    in async code.
    """

    def __init__(self, network: str = "finney", netuid: int = 1, *, substrate: Any | None = None):
        self.network = network
        self.netuid = int(netuid)
        self._substrate = substrate
        self._client: Any = None
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- reads

    def block(self) -> int:
        return int(self._run("read the current block", lambda sub: sub.block))

    def metagraph(self) -> Metagraph:
        graph = self._run(
            f"read the metagraph of subnet {self.netuid}",
            lambda sub: sub.subnets.metagraph(self.netuid, commitments=False),
        )
        if graph is None:
            raise ChainError(f"subnet {self.netuid} does not exist on {self.network}")
        neurons = tuple(
            NeuronInfo(
                uid=int(n.uid),
                hotkey=str(n.hotkey),
                coldkey=str(n.coldkey),
                # Stake weight on the subnet (alpha plus weighted root TAO), what the
                # chain ranks validator permits by.
                stake=float(n.total_stake.amount),
                validator_permit=bool(n.validator_permit),
                axon=_parse_axon(n.axon),
                last_update=int(n.last_update),
                incentive=float(n.incentive),
            )
            for n in graph.neurons
        )
        return Metagraph(netuid=self.netuid, block=int(graph.block), neurons=neurons)

    def epoch_view(self) -> EpochView:
        # bittensor 11's MetagraphNeuron carries consensus, incentive and dividends but no
        # validator trust, and the lite metagraph no weights: half a view would mislead.
        raise NotImplementedError(
            f"the epoch view is computed by the local chain only; on {self.network} read consensus, "
            "incentive and dividends from the metagraph (bittensor 11 reports no validator trust)"
        )

    def hyperparameters(self) -> Hyperparameters:
        raw = self._run(
            f"read the hyperparameters of subnet {self.netuid}",
            lambda sub: sub.subnets.subnet_hyperparameters(self.netuid),
        )
        if raw is None:
            raise ChainError(f"subnet {self.netuid} does not exist on {self.network}")
        try:
            return Hyperparameters(
                tempo=int(raw["tempo"]),
                weights=WeightRules(
                    min_allowed_weights=int(raw["min_allowed_weights"]),
                    max_weight_limit=int(raw["max_weights_limit"]) / U16_MAX,
                    weights_rate_limit=int(raw["weights_rate_limit"]),
                    weights_version=int(raw["weights_version"]),
                ),
                commit_reveal=bool(raw.get("commit_reveal_weights_enabled", False)),
                max_validators=int(raw.get("max_validators", 64)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainError(f"unexpected hyperparameters from {self.network}: missing or bad {exc}") from exc

    # ----------------------------------------------------------------- writes

    def serve_axon(self, wallet: Any, ip: str, port: int) -> None:
        import ipaddress

        import bittensor as bt

        try:
            protocol = ipaddress.ip_address(ip).version
        except ValueError as exc:
            raise ValueError(f"axon ip must be an IPv4 or IPv6 address, got {ip!r}") from exc
        intent = bt.ServeAxon(netuid=self.netuid, ip=ip, port=int(port), protocol=protocol)
        hotkey = wallet.hotkey.ss58_address
        try:
            self._execute(intent, wallet)
        except bt.ChainError as exc:
            if exc.code == bt.ErrorCode.NOT_REGISTERED:
                raise NotRegistered(hotkey, self.netuid) from exc
            raise ChainError(f"serve_axon {ip}:{port} refused: {exc.message}") from exc
        logger.info(f"{self.network}: {hotkey} serves {ip}:{port} on subnet {self.netuid}")

    def set_weights(self, wallet: Any, uids: list[int], weights: list[int], version_key: int) -> None:
        """Set u16 weights; the SDK picks plain or commit-reveal submission for the subnet."""
        import bittensor as bt

        # The shape checks need no chain: refuse malformed vectors before connecting.
        # The subnet's own limits (size, minimum count, max weight, version) are the
        # chain's to enforce, so they are left permissive here.
        check_weights(
            uids,
            weights,
            n_neurons=U16_MAX + 1,
            own_uid=None,
            rules=WeightRules(min_allowed_weights=1, max_weight_limit=1.0, weights_version=0),
            version_key=version_key,
        )
        intent = bt.SetWeights(
            netuid=self.netuid,
            uids=[int(u) for u in uids],
            weights=[float(w) for w in weights],
            version_key=int(version_key),
        )
        try:
            # Transient pool rejections (nonce races) are worth two more tries, as bt.set_weights does.
            self._execute(intent, wallet, retries=2)
        except bt.ChainError as exc:
            raise _weights_error(exc) from exc
        except bt.BittensorError as exc:
            if "zero" in str(exc).lower():
                raise WeightsRejected("too_few_weights", str(exc)) from exc
            raise ChainError(f"set_weights failed: {exc}") from exc
        logger.info(f"{self.network}: set {len(uids)} weights on subnet {self.netuid}")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def describe(self) -> str:
        return f"SubtensorChain(network={self.network!r}, netuid={self.netuid})"

    # ----------------------------------------------------------------- internals

    def _subtensor(self) -> Any:
        import bittensor as bt

        with self._lock:
            if self._client is None:
                self._client = bt.Subtensor(self.network, substrate=self._substrate)
            return self._client

    def _run(self, what: str, read: Any) -> Any:
        import bittensor as bt

        try:
            return read(self._subtensor())
        except (bt.RpcConnectionError, bt.ConnectionNotReady, OSError) as exc:
            raise ChainUnavailable(self._unreachable(what, exc)) from exc
        except bt.ChainError as exc:
            raise ChainError(f"could not {what} on {self.network}: {exc.message}") from exc

    def _execute(self, intent: Any, wallet: Any, **kwargs: Any) -> None:
        """Submit an intent and wait for inclusion; raises the SDK's ``ChainError`` on refusal.

        Inclusion, not finality: the dispatch outcome (accepted or which rule refused it)
        is known at inclusion, and waiting two more blocks would only hold the caller.
        """
        import bittensor as bt

        sub = self._subtensor()
        try:
            result = sub.execute(
                intent, wallet, wait_for_inclusion=True, wait_for_finalization=False, **kwargs
            )
        except (bt.RpcConnectionError, bt.ConnectionNotReady, OSError) as exc:
            raise ChainUnavailable(self._unreachable(intent.summary(), exc)) from exc
        result.raise_for_failure()

    def _unreachable(self, what: str, exc: Exception) -> str:
        endpoint = getattr(self._client, "endpoint", self.network)
        return (
            f"could not {what}: no subtensor node answered at {endpoint} ({exc}). "
            "Check --subtensor.network / --subtensor.chain_endpoint, or use a local chain "
            "directory (`dojo chain init --dir DIR`)"
        )


def _weights_error(exc: Any) -> Exception:
    """The SDK's ``ChainError`` from a weights call as our ``WeightsRejected`` (or ``ChainError``)."""
    reason = _WEIGHT_ERRORS.get(exc.name or "")
    if reason is None:
        code = getattr(exc.code, "value", str(exc.code))
        if code == "invalid_argument" and "at least" in exc.message:
            reason = "too_few_weights"
        else:
            reason = _WEIGHT_CODES.get(code)
    if reason is None:
        return ChainError(f"set_weights failed: {exc.message}")
    return WeightsRejected(reason, exc.message)


def _parse_axon(endpoint: str | None) -> AxonEndpoint | None:
    """The SDK renders a served axon as ``ip:port`` or ``[ipv6]:port``; None when not served."""
    if not endpoint:
        return None
    host, _, port = endpoint.rpartition(":")
    ipv6 = host.startswith("[")
    return AxonEndpoint(ip=host.strip("[]"), port=int(port), protocol=6 if ipv6 else 4)


__all__ = ["SubtensorChain"]
