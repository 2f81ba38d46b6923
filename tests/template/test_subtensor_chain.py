"""SubtensorChain over bittensor 11 without a network.

The SDK's own seam: ``bt.Subtensor(substrate=...)`` accepts any implementation of its
``Substrate`` protocol (its docs name "an in-memory fake for tests"). ``FakeNode`` below
is such a backend: it holds one subnet's storage, answers the runtime-API and storage
reads the SDK makes, and judges submitted extrinsics the way subtensor does for the
rules exercised here, after checking the extrinsic was signed with the hotkey's real key.
Everything above it (the SDK's client, intents, executor, and our adapter) runs unchanged.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

import bittensor as bt
import pytest
from bittensor.sp_core import Keypair

from template.chain import ChainError, ChainUnavailable, NotRegistered, WeightsRejected, open_chain
from template.chain.subtensor import SubtensorChain

NETUID = 7
RAO = 10**9


@dataclass
class FakeNeuron:
    hotkey: str
    coldkey: str
    stake_tao: float
    permit: bool = False
    incentive_u16: int = 0
    last_update: int = 0
    axon: dict | None = None


@dataclass
class FakeNode:
    """One subnet's chain state behind the SDK's ``Substrate`` protocol."""

    neurons: list[FakeNeuron] = field(default_factory=list)
    block: int = 1000
    tempo: int = 99
    min_allowed_weights: int = 2
    max_weights_limit: int = 32768  # u16, about half
    weights_rate_limit: int = 5
    weights_version: int = 3
    max_validators: int = 8
    commit_reveal: bool = False
    weights: dict[int, dict[int, int]] = field(default_factory=dict)
    submitted: list[tuple[str, str, dict]] = field(default_factory=list)
    token_symbols: dict[int, str] = field(default_factory=dict)
    connected: bool = False

    # -- lifecycle and display
    def balance(self, rao: int, netuid: int = 0) -> bt.Balance:
        return bt.Balance(int(rao), netuid, self.token_symbols.get(netuid) if netuid else None)

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    # -- reads
    async def block_number(self) -> int:
        return self.block

    async def finalized_block_number(self) -> int:
        return self.block - 2

    async def block_hash(self, block: int | None = None) -> str:
        return f"0x{(self.block if block is None else block):064x}"

    async def block_time(self) -> float:
        return 12.0

    def _uid(self, hotkey: str) -> int | None:
        return next((i for i, n in enumerate(self.neurons) if n.hotkey == hotkey), None)

    async def query(self, module: str, name: str, params: list | None = None, block_hash: str | None = None):
        assert module == "SubtensorModule", (module, name)
        params = params or []
        values = {
            "Uids": lambda: self._uid(params[1]) if params[0] == NETUID else None,
            "CommitRevealWeightsEnabled": lambda: self.commit_reveal,
            "WeightsSetRateLimit": lambda: self.weights_rate_limit,
            "LastUpdate": lambda: [n.last_update for n in self.neurons],
            "MinAllowedWeights": lambda: self.min_allowed_weights,
            "MaxWeightsLimit": lambda: self.max_weights_limit,
            "SubnetEpochConsensus": lambda: "Yuma",
            "ValidatorPermit": lambda: [n.permit for n in self.neurons],
        }
        if name not in values:
            raise AssertionError(f"FakeNode: unexpected storage read {module}.{name}{params}")
        return values[name]()

    async def query_map(self, module: str, name: str, params=None, block_hash=None):
        if (module, name) == ("SubtensorModule", "TokenSymbol"):
            return []
        raise AssertionError(f"FakeNode: unexpected map read {module}.{name}")

    async def runtime_call(self, api: str, method: str, params: list, block_hash=None):
        assert api == "SubnetInfoRuntimeApi", (api, method)
        if params[0] != NETUID:
            return None
        if method == "get_metagraph":
            return self._graph()
        if method == "get_subnet_hyperparams_v3":
            raw = {
                "tempo": ("u16", self.tempo),
                "min_allowed_weights": ("u16", self.min_allowed_weights),
                "max_weights_limit": ("u16", self.max_weights_limit),
                "weights_rate_limit": ("u64", self.weights_rate_limit),
                "weights_version": ("u64", self.weights_version),
                "commit_reveal_weights_enabled": ("bool", self.commit_reveal),
                "max_validators": ("u16", self.max_validators),
                "immunity_period": ("u16", 5000),
            }
            return [{"name": name, "value": {tag: value}} for name, (tag, value) in raw.items()]
        raise AssertionError(f"FakeNode: unexpected runtime call {api}.{method}")

    def _graph(self) -> dict:
        ns = self.neurons
        return {
            "netuid": NETUID,
            "name": [ord(c) for c in "dojo"],
            "symbol": [ord(c) for c in "d"],
            "block": self.block,
            "tempo": self.tempo,
            "last_step": self.block - 10,
            "blocks_since_last_step": 10,
            "owner_hotkey": ns[0].hotkey if ns else "",
            "owner_coldkey": ns[0].coldkey if ns else "",
            "network_registered_at": 1,
            "num_uids": len(ns),
            "max_uids": 256,
            "hotkeys": [n.hotkey for n in ns],
            "coldkeys": [n.coldkey for n in ns],
            "axons": [n.axon or {"ip": 0, "port": 0, "ip_type": 4} for n in ns],
            "active": [True for _ in ns],
            "validator_permit": [n.permit for n in ns],
            "last_update": [n.last_update for n in ns],
            "block_at_registration": [1 for _ in ns],
            "incentives": [n.incentive_u16 for n in ns],
            "total_stake": [int(n.stake_tao * RAO) for n in ns],
            "alpha_stake": [int(n.stake_tao * RAO) for n in ns],
            "tao_stake": [0 for _ in ns],
        }

    # -- calls and fees
    async def compose(self, call):
        return call  # the generated Call (module, function, params) is already inspectable

    async def estimate_fee(self, call, keypair) -> bt.Balance:
        return bt.Balance(1000)

    async def submit(self, call, keypair, *, nonce=None, period=None, wait_for_inclusion=True,
                     wait_for_finalization=True) -> bt.ExtrinsicResult:  # fmt: skip
        module, function, params = call
        # The signer must hold the hotkey's secret: sign the call and verify it against
        # the public address alone, as the node's signature check would.
        payload = repr((module, function, sorted(params.items()))).encode()
        assert Keypair(ss58_address=keypair.ss58_address).verify(payload, keypair.sign(payload))
        self.submitted.append((keypair.ss58_address, function, params))
        uid = self._uid(keypair.ss58_address)
        if uid is None:
            return _failed("HotKeyNotRegisteredInSubNet")
        neuron = self.neurons[uid]
        if function == "serve_axon":
            neuron.axon = {"ip": params["ip"], "port": params["port"], "ip_type": params["ip_type"]}
        elif function == "set_mechanism_weights":
            if params["version_key"] < self.weights_version:
                return _failed("IncorrectWeightVersionKey")
            if not neuron.permit and params["dests"] != [uid]:
                return _failed("NeuronNoValidatorPermit")
            self.weights[uid] = dict(zip(params["dests"], params["weights"], strict=True))
            neuron.last_update = self.block
        else:
            raise AssertionError(f"FakeNode: unexpected extrinsic {module}.{function}")
        self.block += 1
        return bt.ExtrinsicResult(success=True, message="included", block_hash=await self.block_hash())


def _failed(name: str) -> bt.ExtrinsicResult:
    return bt.ExtrinsicResult(
        success=False, message=name, error=bt.ChainError(f"{name} (fake node)", name=name)
    )


@pytest.fixture(autouse=True)
def _isolated_sdk_cache(tmp_path, monkeypatch):
    # The SDK caches token symbols per network on connect; keep that out of $HOME.
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "token_symbols.json"))


@pytest.fixture
def node_and_wallets(make_wallet):
    validator, miner, outsider = make_wallet(), make_wallet(), make_wallet()
    node = FakeNode(
        neurons=[
            FakeNeuron(validator.hotkey.ss58_address, validator.coldkeypub.ss58_address, 1500.5, permit=True),
            FakeNeuron(miner.hotkey.ss58_address, miner.coldkeypub.ss58_address, 2.0, incentive_u16=65535),
            FakeNeuron(Keypair.create_from_uri("//m2").ss58_address, "5C" + "x" * 46, 0.0),
        ]
    )
    return node, validator, miner, outsider


@pytest.fixture
def chain(node_and_wallets):
    chain = SubtensorChain("ws://127.0.0.1:9944", NETUID, substrate=node_and_wallets[0])
    yield chain
    chain.close()


def test_construction_is_lazy(node_and_wallets):
    node = node_and_wallets[0]
    chain = SubtensorChain("test", NETUID, substrate=node)
    assert not node.connected
    assert chain.describe() == "SubtensorChain(network='test', netuid=7)"
    assert chain.block() == 1000 and node.connected
    chain.close()
    assert not node.connected


def test_metagraph(chain, node_and_wallets):
    node, validator, miner, _ = node_and_wallets
    node.neurons[1].axon = {"ip": int(ipaddress.ip_address("10.1.2.3")), "port": 9602, "ip_type": 4}
    node.neurons[2].axon = {"ip": int(ipaddress.ip_address("2001:db8::1")), "port": 80, "ip_type": 6}
    node.neurons[0].last_update = 990
    mg = chain.metagraph()
    assert (mg.netuid, mg.block, mg.n) == (NETUID, 1000, 3)
    v, m, m2 = mg.neurons
    assert v.hotkey == validator.hotkey.ss58_address and v.coldkey == validator.coldkeypub.ss58_address
    assert v.stake == pytest.approx(1500.5) and v.validator_permit and v.axon is None and v.last_update == 990
    assert m.uid == 1 and not m.validator_permit and m.incentive == pytest.approx(1.0)
    assert m.axon is not None and m.axon.url == "http://10.1.2.3:9602"
    assert m2.axon is not None and m2.axon.url == "http://[2001:db8::1]:80" and m2.axon.protocol == 6
    assert [n.uid for n in mg.serving()] == [1, 2]
    assert chain.is_registered(miner.hotkey.ss58_address)


def test_hyperparameters(chain):
    hp = chain.hyperparameters()
    assert hp.tempo == 99 and hp.max_validators == 8 and hp.commit_reveal is False
    assert hp.weights.min_allowed_weights == 2
    assert hp.weights.max_weight_limit == pytest.approx(32768 / 65535)
    assert (hp.weights.weights_rate_limit, hp.weights.weights_version) == (5, 3)


def test_epoch_view_is_the_local_chains_only(chain):
    # The SDK's metagraph has no validator trust: a partial view is refused, not invented.
    with pytest.raises(NotImplementedError, match="validator trust"):
        chain.epoch_view()


def test_missing_subnet_is_a_chain_error(node_and_wallets):
    chain = SubtensorChain("test", NETUID + 1, substrate=node_and_wallets[0])
    with pytest.raises(ChainError, match="subnet 8 does not exist"):
        chain.metagraph()
    with pytest.raises(ChainError, match="subnet 8 does not exist"):
        chain.hyperparameters()


def test_serve_axon_signs_with_the_hotkey(chain, node_and_wallets):
    node, _, miner, outsider = node_and_wallets
    chain.serve_axon(miner, "127.0.0.1", 9602)
    signer, function, params = node.submitted[-1]
    assert (signer, function) == (miner.hotkey.ss58_address, "serve_axon")
    assert (params["netuid"], params["port"], params["ip_type"]) == (NETUID, 9602, 4)
    assert chain.metagraph().neurons[1].axon.url == "http://127.0.0.1:9602"
    with pytest.raises(NotRegistered):
        chain.serve_axon(outsider, "127.0.0.1", 9700)
    with pytest.raises(ValueError, match="IPv4 or IPv6"):
        chain.serve_axon(miner, "localhost", 1)


def test_set_weights_submits_u16_vector(chain, node_and_wallets):
    node, validator, _, _ = node_and_wallets
    chain.set_weights(validator, [1, 2], [65535, 65535], version_key=3)
    signer, function, params = node.submitted[-1]
    assert (signer, function) == (validator.hotkey.ss58_address, "set_mechanism_weights")
    assert params["dests"] == [1, 2] and params["weights"] == [65535, 65535]
    assert params["version_key"] == 3 and params["netuid"] == NETUID
    assert chain.metagraph().neurons[0].last_update == 1000


@pytest.mark.parametrize(
    ("uids", "weights", "reason"),
    [
        ([1, 2], [1], "length_mismatch"),
        ([1, 1], [5, 5], "duplicate_uids"),
        ([1, 2], [70000, 5], "invalid_values"),
        ([1, 2], [0.5, 0.5], "invalid_values"),
        ([1, 2], [0, 0], "too_few_weights"),
    ],
)
def test_malformed_weights_are_refused_before_submission(chain, node_and_wallets, uids, weights, reason):
    node, validator, _, _ = node_and_wallets
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(validator, uids, weights, version_key=3)
    assert err.value.reason == reason
    assert node.submitted == []


def test_chain_refusals_map_to_reason_codes(chain, node_and_wallets):
    node, validator, miner, outsider = node_and_wallets
    cases = [
        # Refused by the node when the extrinsic dispatches.
        (validator, [1, 2], 2, "incorrect_version_key"),
        (miner, [0, 2], 3, "no_validator_permit"),
        # Refused by the SDK's own preflight, before signing.
        (outsider, [1, 2], 3, "hotkey_not_registered"),
        (validator, [1], 3, "too_few_weights"),
    ]
    for wallet, uids, version, reason in cases:
        with pytest.raises(WeightsRejected) as err:
            chain.set_weights(wallet, uids, [65535] * len(uids), version_key=version)
        assert err.value.reason == reason, err.value
    chain.set_weights(validator, [1, 2], [65535, 65535], version_key=3)
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(validator, [1, 2], [65535, 65535], version_key=3)
    assert err.value.reason == "rate_limited"
    assert "rate limit is 5 blocks" in err.value.message


def test_unknown_chain_error_is_a_plain_chain_error(chain, node_and_wallets):
    node, validator, _, _ = node_and_wallets

    async def broke(*args, **kwargs):
        return _failed("Payment")

    node.submit = broke
    with pytest.raises(ChainError) as err:
        chain.set_weights(validator, [1, 2], [65535, 65535], version_key=3)
    assert not isinstance(err.value, WeightsRejected)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_node_answering_is_chain_unavailable(make_wallet):
    """The real transport against a closed loopback port: fails at once, with a clear message."""
    endpoint = f"ws://127.0.0.1:{_closed_port()}"
    chain = open_chain("finney", NETUID, chain_endpoint=endpoint)
    assert isinstance(chain, SubtensorChain)
    try:
        with pytest.raises(ChainUnavailable, match=f"no subtensor node answered at {endpoint}"):
            chain.metagraph()
        with pytest.raises(ChainUnavailable, match="--subtensor.chain_endpoint"):
            chain.block()
        with pytest.raises(ChainUnavailable):
            chain.serve_axon(make_wallet(), "127.0.0.1", 1)
    finally:
        chain.close()
