"""LocalChain against a real SQLite file: registration, permits, axons, blocks, every weight rule."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import bittensor as bt
import pytest
from bittensor.sp_core import Keypair

from template.chain import ChainError, ChainUnavailable, NotRegistered, WeightsRejected, open_chain
from template.chain.local import DB_NAME, MIGRATIONS_DIR, LocalChain
from template.storage import current_revision, database_url, head_revision, make_engine

FAST = 0.05  # seconds per block where a test waits for blocks
REPO = Path(__file__).resolve().parents[2]


def _reg(chain: LocalChain, wallet: bt.Wallet, stake: float = 0.0) -> int:
    return chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake)


def _wait_blocks(chain: LocalChain, n: int) -> None:
    target = chain.block() + n
    while chain.block() < target:
        time.sleep(chain.block_time / 4)


def _addr(i: int) -> str:
    return Keypair.create_from_uri(f"//hk{i}").ss58_address


@pytest.fixture
def chain_dir(tmp_path: Path) -> Path:
    return tmp_path / "chain"


@pytest.fixture
def new_chain(chain_dir: Path) -> Callable[..., LocalChain]:
    """A subnet with no rate limit and permissive rules unless a test asks otherwise."""

    def _make(**kwargs) -> LocalChain:
        kwargs.setdefault("block_time", 1.0)
        kwargs.setdefault("weights_rate_limit", 0)
        return LocalChain.init(chain_dir, **kwargs)

    return _make


# ----------------------------------------------------------------- creation and opening


def test_init_creates_a_wal_database_and_reopens(chain_dir: Path):
    chain = LocalChain.init(chain_dir, netuid=7, block_time=0.5, tempo=10, max_validators=3)
    assert (chain_dir / DB_NAME).is_file()
    with sqlite3.connect(chain_dir / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = LocalChain(chain_dir, netuid=7)
    assert again.block_time == 0.5
    assert again.genesis_time == chain.genesis_time
    hp = again.hyperparameters()
    assert (hp.tempo, hp.max_validators, hp.commit_reveal) == (10, 3, False)
    assert isinstance(open_chain(str(chain_dir), netuid=7), LocalChain)


def test_init_refuses_an_existing_subnet_unless_exist_ok(chain_dir: Path):
    LocalChain.init(chain_dir, netuid=1, block_time=0.5)
    with pytest.raises(ChainError, match="already exists"):
        LocalChain.init(chain_dir, netuid=1)
    assert LocalChain.init(chain_dir, netuid=1, exist_ok=True).netuid == 1
    # A second subnet shares the chain's clock.
    second = LocalChain.init(chain_dir, netuid=2, block_time=9.0)
    assert second.block_time == 0.5


def test_init_rejects_bad_hyperparameters(chain_dir: Path):
    with pytest.raises(ValueError, match="block_time"):
        LocalChain.init(chain_dir, block_time=0)
    with pytest.raises(ValueError, match="max_weight_limit"):
        LocalChain.init(chain_dir, max_weight_limit=1.5)


def test_opening_a_missing_chain_or_subnet_names_the_command(chain_dir: Path):
    with pytest.raises(ChainUnavailable, match="dojo chain init --dir"):
        LocalChain(chain_dir)
    LocalChain.init(chain_dir, netuid=1)
    with pytest.raises(ChainUnavailable, match="subnet 5 does not exist.*--netuid 5"):
        LocalChain(chain_dir, netuid=5)


# ----------------------------------------------------------------- registration


def test_register_assigns_sequential_uids_and_fills_the_metagraph(new_chain, make_wallet):
    chain = new_chain()
    wallets = [make_wallet() for _ in range(3)]
    assert [_reg(chain, w, stake=float(i)) for i, w in enumerate(wallets)] == [0, 1, 2]
    mg = chain.metagraph()
    assert mg.n == 3 and mg.netuid == 1 and mg.block == chain.block()
    assert mg.hotkeys == [w.hotkey.ss58_address for w in wallets]
    assert mg.neurons[1].coldkey == wallets[1].coldkeypub.ss58_address
    assert [n.stake for n in mg.neurons] == [0.0, 1.0, 2.0]
    assert all(n.axon is None and n.last_update == 0 and n.incentive == 0.0 for n in mg.neurons)
    assert chain.is_registered(wallets[2].hotkey.ss58_address)
    assert chain.uid_of(wallets[2].hotkey.ss58_address) == 2
    assert not chain.is_registered(make_wallet().hotkey.ss58_address)


def test_reregistering_returns_the_same_uid_and_updates_stake(new_chain, make_wallet):
    chain = new_chain()
    w = make_wallet()
    assert _reg(chain, w, stake=1.0) == 0
    assert _reg(chain, w, stake=4.0) == 0
    assert [n.stake for n in chain.metagraph().neurons] == [4.0]
    with pytest.raises(ChainError, match="already registered"):
        chain.register(w.hotkey.ss58_address, make_wallet().coldkeypub.ss58_address)
    with pytest.raises(ValueError, match="stake"):
        chain.register(_addr(1), _addr(2), stake=-1)


def test_full_subnet_replaces_lowest_incentive_outside_immunity(new_chain, make_wallet):
    chain = new_chain(max_uids=3, immunity_period=0, block_time=FAST)
    validator, low, high = (make_wallet() for _ in range(3))
    _reg(chain, validator, stake=10.0)
    _reg(chain, low)
    _reg(chain, high)
    chain.set_weights(validator, [0, 1, 2], [100, 1000, 65535], version_key=0)
    assert chain.metagraph().neurons[0].incentive < chain.metagraph().neurons[1].incentive

    newcomer = make_wallet()
    _wait_blocks(chain, 1)
    # uid 0 (the validator) has no incentive at all: it is replaced first.
    assert _reg(chain, newcomer) == 0
    mg = chain.metagraph()
    assert mg.n == 3
    assert mg.uid_of(newcomer.hotkey.ss58_address) == 0
    assert not chain.is_registered(validator.hotkey.ss58_address)
    # The newcomer inherits nothing: no stake, no weights set or received.
    assert mg.neurons[0].stake == 0.0 and mg.neurons[0].last_update == 0
    assert chain.weights_of(0) == {}
    assert all(n.incentive == 0.0 for n in mg.neurons)

    # Next in line: lowest incentive (all zero now), then oldest registration: uid 1, not
    # the newcomer at uid 0.
    assert _reg(chain, make_wallet()) == 1


def test_full_subnet_with_every_neuron_immune_refuses(new_chain):
    # Two subnets on one chain: a long immunity for the refusal, a short one to wait out, so
    # that neither outcome depends on how fast a loaded machine (or its disk) runs the test.
    lasting = new_chain(netuid=1, max_uids=2, immunity_period=100_000, block_time=FAST)
    short = new_chain(netuid=2, max_uids=2, immunity_period=10, block_time=FAST)
    for chain in (lasting, short):
        chain.register(_addr(0), _addr(10))
        chain.register(_addr(1), _addr(11))
    registered = short.block()  # no earlier than either registration's block
    with pytest.raises(ChainError, match="immunity period"):
        lasting.register(_addr(2), _addr(12))
    assert lasting.metagraph().n == 2 and not lasting.is_registered(_addr(2))
    while short.block() < registered + 10:
        time.sleep(FAST / 4)
    assert short.register(_addr(2), _addr(12)) == 0
    assert not short.is_registered(_addr(0))


def test_add_stake(new_chain, make_wallet):
    chain = new_chain()
    w = make_wallet()
    _reg(chain, w, stake=1.5)
    assert chain.add_stake(w.hotkey.ss58_address, 2.0) == 3.5
    assert [n.stake for n in chain.metagraph().neurons] == [3.5]
    with pytest.raises(NotRegistered, match="dojo chain register"):
        chain.add_stake(_addr(9), 1.0)


# ----------------------------------------------------------------- permits


def test_permits_are_top_k_by_stake_and_never_zero_stake(new_chain):
    chain = new_chain(max_validators=2)
    for i, stake in enumerate([5.0, 0.0, 10.0, 7.0, 7.0]):
        chain.register(_addr(i), _addr(100 + i), stake)
    mg = chain.metagraph()
    # Top two by stake; the tie at 7.0 goes to the lower uid.
    assert [n.uid for n in mg.neurons if n.validator_permit] == [2, 3]
    chain.add_stake(_addr(0), 100.0)
    assert [n.uid for n in chain.metagraph().neurons if n.validator_permit] == [0, 2]


def test_zero_stake_never_holds_a_permit_even_with_room(new_chain):
    chain = new_chain(max_validators=64)
    chain.register(_addr(0), _addr(1), 0.0)
    chain.register(_addr(2), _addr(3), 0.001)
    assert [n.validator_permit for n in chain.metagraph().neurons] == [False, True]


# ----------------------------------------------------------------- axons and blocks


def test_serve_axon_publishes_the_endpoint_for_registered_hotkeys_only(new_chain, make_wallet):
    chain = new_chain()
    miner, other = make_wallet(), make_wallet()
    _reg(chain, miner)
    _reg(chain, other)
    chain.serve_axon(miner, "127.0.0.1", 9602)
    mg = chain.metagraph()
    axon = mg.get(miner.hotkey.ss58_address).axon
    assert axon is not None and axon.url == "http://127.0.0.1:9602" and axon.protocol == 4
    assert [n.uid for n in mg.serving()] == [0]
    chain.serve_axon(miner, "::1", 9700)
    assert chain.metagraph().neurons[0].axon.url == "http://[::1]:9700"
    with pytest.raises(NotRegistered, match="dojo chain register"):
        chain.serve_axon(make_wallet(), "127.0.0.1", 1)
    with pytest.raises(ValueError, match="port"):
        chain.serve_axon(miner, "127.0.0.1", 70000)


def test_blocks_advance_with_the_block_time(new_chain):
    chain = new_chain(block_time=FAST)
    start = chain.block()
    assert start >= 1
    time.sleep(6 * FAST)
    advanced = chain.block() - start
    # Wall-clock based: at least 5 blocks in 6 block times; a loaded machine only adds more.
    assert advanced >= 5
    before = 1 + int((time.time() - chain.genesis_time) // FAST)
    block = chain.block()
    after = 1 + int((time.time() - chain.genesis_time) // FAST)
    assert before <= block <= after


# ----------------------------------------------------------------- weights


@pytest.fixture
def subnet(new_chain, make_wallet):
    """A validator (uid 0, the only permit) and three miners."""
    chain = new_chain(max_validators=1, min_allowed_weights=1, weights_version=5)
    validator = make_wallet()
    miners = [make_wallet() for _ in range(3)]
    _reg(chain, validator, stake=100.0)
    for m in miners:
        _reg(chain, m)
    return chain, validator, miners


@pytest.mark.parametrize(
    ("uids", "weights", "reason"),
    [
        ([1, 2], [1], "length_mismatch"),
        ([1, 1], [5, 5], "duplicate_uids"),
        ([1, 9], [5, 5], "uid_not_registered"),
        ([1, -1], [5, 5], "uid_not_registered"),
        ([1, 2], [70000, 5], "invalid_values"),
        ([1, 2], [-3, 5], "invalid_values"),
        ([1, 2], [0.5, 0.5], "invalid_values"),
        ([1, 2], [0, 0], "too_few_weights"),
        ([1, 2], [5, 5], "incorrect_version_key"),
    ],
)
def test_set_weights_rejects_bad_vectors(subnet, uids, weights, reason):
    chain, validator, _ = subnet
    version = 4 if reason == "incorrect_version_key" else 5
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(validator, uids, weights, version_key=version)
    assert err.value.reason == reason
    assert chain.weights_of(0) == {}
    assert chain.metagraph().neurons[0].last_update == 0


@pytest.mark.parametrize("bad", [float("nan"), -0.1, float("inf")])
def test_nan_and_negative_floats_never_reach_the_chain(subnet, bad):
    chain, validator, _ = subnet
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(validator, [1, 2], [0.5, bad], version_key=5)
    assert err.value.reason == "invalid_values"


def test_too_few_weights(new_chain, make_wallet):
    chain = new_chain(min_allowed_weights=3)
    v = make_wallet()
    _reg(chain, v, stake=1.0)
    for i in range(3):
        chain.register(_addr(i), _addr(50 + i))
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(v, [1, 2, 3], [9, 9, 0], version_key=0)
    assert err.value.reason == "too_few_weights"
    chain.set_weights(v, [1, 2, 3], [9, 9, 9], version_key=0)
    assert chain.weights_of(0) == {1: 9, 2: 9, 3: 9}


def test_max_weight_limit(new_chain, make_wallet):
    chain = new_chain(max_weight_limit=0.5)
    v = make_wallet()
    _reg(chain, v, stake=1.0)
    for i in range(3):
        chain.register(_addr(i), _addr(50 + i))
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(v, [1, 2, 3], [65535, 10000, 10000], version_key=0)
    assert err.value.reason == "max_weight_exceeded"
    chain.set_weights(v, [1, 2, 3], [65535, 32768, 32767], version_key=0)


def test_caller_must_be_registered(subnet, make_wallet):
    chain, _, _ = subnet
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(make_wallet(), [1], [1], version_key=5)
    assert err.value.reason == "hotkey_not_registered"


def test_no_permit_may_only_weight_itself(subnet):
    chain, _, miners = subnet
    with pytest.raises(WeightsRejected) as err:
        chain.set_weights(miners[0], [1, 2], [5, 5], version_key=5)
    assert err.value.reason == "no_validator_permit"
    chain.set_weights(miners[0], [1], [65535], version_key=5)
    assert chain.weights_of(1) == {1: 65535}
    # Weights of a neuron without a permit count for nothing.
    assert all(n.incentive == 0.0 for n in chain.metagraph().neurons)


def test_rate_limit_in_blocks(chain_dir: Path, make_wallet):
    # Two subnets on one chain: a long limit for the refusal, a short one to wait out,
    # so that neither outcome depends on how fast a loaded machine runs the test.
    strict = LocalChain.init(chain_dir, netuid=1, block_time=FAST, weights_rate_limit=100_000)
    short = LocalChain.init(chain_dir, netuid=2, weights_rate_limit=3)
    v = make_wallet()
    for chain in (strict, short):
        _reg(chain, v, stake=1.0)
        chain.register(_addr(0), _addr(1))
        before = chain.block()
        chain.set_weights(v, [1], [1], version_key=0)
        assert before <= chain.metagraph().neurons[0].last_update <= chain.block()

    with pytest.raises(WeightsRejected) as err:
        strict.set_weights(v, [1], [2], version_key=0)
    assert err.value.reason == "rate_limited"
    assert strict.weights_of(0) == {1: 1}

    first = short.metagraph().neurons[0].last_update
    while short.block() < first + 3:
        time.sleep(FAST / 4)
    short.set_weights(v, [1], [2], version_key=0)
    assert short.weights_of(0) == {1: 2}
    assert short.metagraph().neurons[0].last_update >= first + 3
    # Each subnet keeps its own rows.
    assert strict.weights_of(0) == {1: 1}


def test_weights_are_kept_per_validator_and_overwritten(new_chain, make_wallet):
    chain = new_chain(max_validators=2)
    a, b = make_wallet(), make_wallet()
    _reg(chain, a, stake=1.0)
    _reg(chain, b, stake=3.0)
    for i in range(3):
        chain.register(_addr(i), _addr(50 + i))
    chain.set_weights(a, [2, 3], [100, 300], version_key=0)
    chain.set_weights(b, [3, 4], [500, 500], version_key=0)
    # Zero weights are dropped, the previous row is replaced, not merged.
    chain.set_weights(a, [3, 4, 2], [65535, 65535, 0], version_key=0)
    assert chain.weights_of(0) == {3: 65535, 4: 65535}
    assert chain.weights_of(1) == {3: 500, 4: 500}
    assert chain.metagraph().neurons[0].last_update > 0


def test_incentive_is_the_stake_weighted_mean_of_normalised_weights(new_chain, make_wallet):
    chain = new_chain(max_validators=2)
    a, b = make_wallet(), make_wallet()
    _reg(chain, a, stake=1.0)
    _reg(chain, b, stake=3.0)
    chain.register(_addr(0), _addr(1))  # uid 2
    chain.register(_addr(2), _addr(3))  # uid 3
    chain.register(_addr(4), _addr(5), 0.5)  # uid 4: stake but no permit (k = 2)
    chain.set_weights(a, [2], [65535], version_key=0)
    chain.set_weights(b, [2, 3], [1000, 3000], version_key=0)
    chain.set_weights(Keypair.create_from_uri("//hk4"), [4], [65535], version_key=0)
    incentive = [n.incentive for n in chain.metagraph().neurons]
    # uid 2: (1 * 1 + 3 * 0.25) / 4; uid 3: 3 * 0.75 / 4; uid 4's self-weight has no permit.
    assert incentive == pytest.approx([0.0, 0.0, 0.4375, 0.5625, 0.0])
    assert sum(incentive) == pytest.approx(1.0)


# ----------------------------------------------------------------- concurrency


# A child process: wait for the start signal, then register and serve 20 hotkeys. Run as
# its own interpreter (not multiprocessing) so it imports only the local chain, not the SDK.
_WRITER = """
import sys, time
from pathlib import Path
from template.chain.local import LocalChain

directory, prefix, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
chain = LocalChain(directory)
go.with_suffix(f".{prefix}.ready").touch()
while not go.exists():
    time.sleep(0.002)
uids = []
for i in range(count):
    hotkey = f"{prefix}-hotkey-{i}"
    uids.append(chain.register(hotkey, f"{prefix}-coldkey", float(i)))
    chain.serve_axon(hotkey, "127.0.0.1", 10000 + i)
print(",".join(map(str, uids)))
"""


def test_two_processes_registering_at_once_get_distinct_uids(chain_dir: Path, tmp_path: Path):
    LocalChain.init(chain_dir, block_time=1.0)
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(chain_dir), prefix, "20", str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in "ab"
    ]
    # Start both at once, when both interpreters are up, so that their writes overlap.
    deadline = time.monotonic() + 30
    while not all(go.with_suffix(f".{p}.ready").exists() for p in "ab"):
        assert time.monotonic() < deadline, "writer processes did not start"
        assert all(w.poll() is None for w in writers), writers[0].stderr.read() + writers[1].stderr.read()
        time.sleep(0.005)
    go.touch()
    results = []
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        assert "database is locked" not in err
        results.append([int(uid) for uid in out.strip().split(",")])
    assert sorted(results[0] + results[1]) == list(range(40))
    mg = LocalChain(chain_dir).metagraph()
    assert mg.n == 40 and len(set(mg.hotkeys)) == 40
    assert len(mg.serving()) == 40
    assert {n.hotkey for n in mg.neurons} == {f"{p}-hotkey-{i}" for p in "ab" for i in range(20)}


def test_a_damaged_chain_file_is_unavailable_not_a_raw_sqlite_error(tmp_path):
    from template.chain import ChainUnavailable

    chain = LocalChain.init(tmp_path, netuid=1, block_time=0.1)
    for name in ("chain.sqlite-wal", "chain.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "chain.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ChainUnavailable, match="cannot use the local chain"):
        chain.metagraph()
    with pytest.raises(ChainUnavailable, match="cannot use the local chain"):
        chain.register("5" * 48, "5" * 48, 1.0)


# ----------------------------------------------------------------- commit-reveal


def _reveal_block(chain: LocalChain, commit_block: int) -> int:
    created = int(sqlite3.connect(chain.path).execute("SELECT created_block FROM subnets").fetchone()[0])
    tempo, period = chain.params().tempo, chain.params().commit_reveal_period
    return created + ((commit_block - created) // tempo + period) * tempo


def test_commit_reveal_hides_weights_from_readers_until_the_reveal(new_chain, make_wallet):
    # Long epochs: the commitment cannot be revealed while the test reads.
    chain = new_chain(tempo=10_000, commit_reveal_period=1)
    assert chain.hyperparameters().commit_reveal
    v = make_wallet()
    _reg(chain, v, stake=1.0)
    chain.register(_addr(0), _addr(1))
    chain.register(_addr(2), _addr(3))
    block = chain.block()
    chain.set_weights(v, [1, 2], [100, 300], version_key=0)
    # A reader of the chain (a weight copier) sees nothing, and no incentive moved.
    assert chain.weights_of(0) == {}
    assert chain.weights_visible() == {}
    assert all(n.incentive == 0.0 for n in chain.metagraph().neurons)
    # ... until the first block of the next epoch.
    reveal = _reveal_block(chain, chain.metagraph().neurons[0].last_update)
    assert reveal > block
    assert chain.weights_visible(reveal - 1) == {}
    assert chain.weights_visible(reveal) == {0: {1: 100, 2: 300}}


def test_committed_weights_replace_the_revealed_ones_at_the_reveal(new_chain, make_wallet):
    chain = new_chain(tempo=4, commit_reveal_period=1, block_time=FAST)
    v = make_wallet()
    _reg(chain, v, stake=1.0)
    chain.register(_addr(0), _addr(1))
    chain.register(_addr(2), _addr(3))
    chain.set_weights(v, [1], [7], version_key=0)
    first = _reveal_block(chain, chain.metagraph().neurons[0].last_update)
    _wait_blocks(chain, max(0, first - chain.block()))
    assert chain.weights_of(0) == {1: 7}
    chain.set_weights(v, [2], [9], version_key=0)
    second = _reveal_block(chain, chain.metagraph().neurons[0].last_update)
    if chain.block() < second:
        # Still the old, revealed weights while the new ones are committed.
        assert chain.weights_of(0) == {1: 7}
    _wait_blocks(chain, max(0, second - chain.block()))
    assert chain.weights_of(0) == {2: 9}
    # The metagraph's incentive follows the revealed weights.
    assert chain.metagraph().neurons[2].incentive == pytest.approx(1.0)


# ----------------------------------------------------------------- Yuma epochs


def _wait_epoch_after(chain: LocalChain, block: int):
    view = chain.epoch_view()
    while view.block <= block:
        time.sleep(chain.block_time / 4)
        view = chain.epoch_view()
    return view


def test_epoch_view_is_yuma_consensus_of_the_visible_weights(new_chain, make_wallet):
    # An epoch every second: the three validators' weights, set just after one, all fall in
    # the next (an epoch between them would leave bonds of a partial matrix behind).
    chain = new_chain(tempo=20, block_time=FAST)
    validators = [make_wallet() for _ in range(3)]
    for w in validators:
        _reg(chain, w, stake=1.0)
    for i in range(3):
        chain.register(_addr(2 * i), _addr(2 * i + 1))
    before = _wait_epoch_after(chain, chain.block())
    assert [v.uid for v in before.validators] == [0, 1, 2]
    assert [m.uid for m in before.miners] == [3, 4, 5]
    # No weights yet: no incentive, no trust.
    assert all(m.incentive == 0.0 for m in before.miners) and all(v.trust == 0.0 for v in before.validators)
    # Two agree on the miners; the third puts everything on miner 3 (and on itself, masked).
    chain.set_weights(validators[0], [3, 4, 5], [2, 3, 5], version_key=0)
    chain.set_weights(validators[1], [3, 4, 5], [20, 30, 50], version_key=0)
    chain.set_weights(validators[2], [2, 3], [65535, 65535], version_key=0)
    last = max(n.last_update for n in chain.metagraph().neurons)
    view = _wait_epoch_after(chain, last)
    assert view.validators[2].weights == {3: pytest.approx(1.0)}
    consensus = {m.uid: m.consensus for m in view.miners}
    assert consensus == pytest.approx({3: 0.2, 4: 0.3, 5: 0.5})
    trust = [v.trust for v in view.validators]
    assert trust == pytest.approx([1.0, 1.0, 0.2])
    incentive = {m.uid: m.incentive for m in view.miners}
    assert incentive == pytest.approx(
        {3: 0.2 / 0.7333333, 4: 0.2 / 0.7333333, 5: 0.3333333 / 0.7333333}, rel=1e-5
    )
    # The colluder's miner gets what consensus gives it, not more.
    assert incentive[3] == pytest.approx(incentive[4])
    dividends = [v.dividend for v in view.validators]
    assert dividends == pytest.approx([5 / 11, 5 / 11, 1 / 11])
    assert sum(dividends) == pytest.approx(1.0)


def test_bonds_persist_between_epochs_so_a_latecomer_earns_less_at_first(new_chain, make_wallet):
    chain = new_chain(tempo=2, block_time=FAST)
    early, late = make_wallet(), make_wallet()
    _reg(chain, early, stake=1.0)
    _reg(chain, late, stake=1.0)
    chain.register(_addr(0), _addr(1))
    chain.set_weights(early, [2], [1], version_key=0)
    _wait_epoch_after(chain, chain.metagraph().neurons[0].last_update)
    view = _wait_epoch_after(chain, chain.epoch_view().block)  # at least two epochs of bonds
    assert [v.dividend for v in view.validators] == pytest.approx([1.0, 0.0])
    chain.set_weights(late, [2], [1], version_key=0)
    view = _wait_epoch_after(chain, chain.metagraph().neurons[1].last_update)
    # Same weights, same stake, same trust: the bonds' moving average still favours the early one.
    assert view.validators[0].trust == view.validators[1].trust == pytest.approx(1.0)
    assert 0.0 < view.validators[1].dividend < 0.5 < view.validators[0].dividend


def test_an_older_chain_file_gains_the_new_tables_and_settings(new_chain, make_wallet):
    chain = new_chain()
    db = sqlite3.connect(chain.path)
    # A file from before these tables and settings, and before the migrations' own table.
    for table in ("alembic_version", "weight_commits", "epochs", "bonds", "epoch_neurons"):
        db.execute(f"DROP TABLE {table}")
    for column in ("commit_reveal_period", "kappa", "bonds_moving_average"):
        db.execute(f"ALTER TABLE subnets DROP COLUMN {column}")
    db.commit()
    db.close()
    reopened = LocalChain(chain.directory)
    p = reopened.params()
    assert (p.commit_reveal_period, p.kappa, p.bonds_moving_average) == (0, 0.5, 0.9)
    assert reopened.epoch_view().block == 0


def _tables(path: Path) -> tuple[dict[str, str], dict[str, list[tuple]]]:
    """A chain file's schema (each table's statement) and rows, the migrations' own table aside."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        schema = dict(
            db.execute(
                "SELECT name, sql FROM sqlite_master WHERE tbl_name != 'alembic_version' ORDER BY name"
            )
        )
        rows = {
            name: sorted(db.execute(f"SELECT * FROM {name}"), key=repr)
            for name, kind in db.execute("SELECT name, type FROM sqlite_master ORDER BY name")
            if kind == "table" and name != "alembic_version"
        }
    return schema, rows


def test_a_chain_file_from_before_migrations_is_adopted_with_every_row(tmp_path: Path):
    old = tmp_path / "old"
    old.mkdir()
    with contextlib.closing(sqlite3.connect(old / DB_NAME)) as db:
        db.executescript((Path(__file__).parent / "data" / "local_chain_before_migrations.sql").read_text())
    schema, rows = _tables(old / DB_NAME)
    assert {name for name, found in rows.items() if found} == {
        "chain",
        "subnets",
        "neurons",
        "weights",
        "weight_commits",
        "epochs",
        "bonds",
        "epoch_neurons",
    }

    chain = LocalChain(old, netuid=1)
    engine = make_engine(database_url(chain.path))
    assert current_revision(engine) == head_revision(MIGRATIONS_DIR)
    engine.dispose()
    assert _tables(old / DB_NAME) == (schema, rows)
    # The schema a new chain gets from the migrations is the one the old code wrote.
    assert _tables(LocalChain.init(tmp_path / "new").path)[0] == schema

    assert chain.params().commit_reveal_period == 1
    metagraph = chain.metagraph()
    assert metagraph.hotkeys == [f"hotkey-{i}" for i in range(6)]
    assert [n.stake for n in metagraph.neurons[:2]] == [30.0, 25.0]
    assert [n.axon.port for n in metagraph.serving()] == list(range(9000, 9006))
    assert LocalChain(old, netuid=2).weights_of(0) == {1: 100, 2: 200}
