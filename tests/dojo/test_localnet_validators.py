"""``dojo localnet up --validators N``: the arguments, what the network prepares for each
validator (its wallet, stake, permit, database, process), and the status that shows each
validator's weights beside the miners, read from a real chain and real databases."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from rich.console import Console

from dojo.localnet.net import LocalNet, UpSettings, build_net, parse_stakes, state_of, validator_name
from dojo.localnet.view import StatusReader, events, render
from dojo.validator.store import TaskStore
from template.chain.local import LocalChain


def _dojo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dojo", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--validators", "0"], "'0': must be at least 1"),
        (["--validators", "9"], "'9': at most 8"),
        (["--validators", "two"], "'two' is not a whole number"),
        (["--validators", "3", "--validator-stakes", "1000,1000"], "2 stakes for 3 validators"),
        (
            ["--validators", "2", "--validator-stakes", "1000,0"],
            "'0': a validator's stake must be more than 0",
        ),
        (["--validators", "2", "--validator-stakes", "1000,lots"], "'lots' is not a number"),
    ],
)
def test_up_refuses_a_bad_number_of_validators_or_stakes_and_starts_nothing(tmp_path, args, message):
    result = _dojo("localnet", "up", "--dir", str(tmp_path / "net"), *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "net" / "chain").exists()


def test_stakes_are_equal_by_default_and_one_each_when_given():
    assert parse_stakes("", 3) == [1000.0, 1000.0, 1000.0]
    assert parse_stakes("1000, 500,250.5", 3) == [1000.0, 500.0, 250.5]
    assert [validator_name(i) for i in (1, 2, 3)] == ["validator", "validator2", "validator3"]
    with pytest.raises(ValueError, match="between 1 and 8"):
        parse_stakes("", 9)
    with pytest.raises(ValueError, match="more than 0"):
        parse_stakes("1000,inf", 2)


def _three(
    tmp_path: Any, stakes: str = "1000,1000,500", block_time: float = 1.0
) -> tuple[LocalNet, UpSettings]:
    settings = UpSettings(
        directory=tmp_path, miners=2, validators=3, validator_stakes=stakes, block_time=block_time
    )
    net = build_net(settings, None)
    net.prepare()
    return net, settings


def test_each_validator_has_its_wallet_stake_permit_database_and_process_and_the_workers_read_them_all(
    tmp_path,
):
    net, settings = _three(tmp_path)
    validators = net.validators
    assert [v.name for v in validators] == ["validator", "validator2", "validator3"]
    assert (tmp_path / "wallets" / "validator3").is_dir()

    # Registered with their stakes, each with a permit: the miners' blacklist lets them in.
    metagraph = LocalChain(net.chain_dir, net.netuid).metagraph()
    on_chain = {v.name: metagraph.get(v.hotkey) for v in validators}
    assert {name: n.stake for name, n in on_chain.items()} == {
        "validator": 1000.0,
        "validator2": 1000.0,
        "validator3": 500.0,
    }
    assert all(n.validator_permit for n in on_chain.values())
    assert len({v.uid for v in validators} | {n.uid for n in net.neurons if n.role == "miner"}) == 5

    # Each its own wallet, port and database; organic only on the first.
    for v in validators:
        command = net.command(v)
        assert command[command.index("--wallet.name") + 1] == v.name
        assert command[command.index("--neuron.data_dir") + 1] == str(tmp_path / "data" / v.name)
    assert len({v.port for v in validators}) == 3
    # (The keys the platform would have made for miner1 when it started.)
    net.keys_path.write_text(json.dumps({"miner1": {"api_key": "ak", "subscription_key": "sk"}}))
    workers = net.command(net.process("workers1"))
    assert [workers[i + 1] for i, arg in enumerate(workers) if arg == "--oracle-db"] == [
        str(tmp_path / "data" / name / "validator.sqlite")
        for name in ("validator", "validator2", "validator3")
    ]
    synthetic = net.command(net.process("synthetic"))
    assert synthetic[synthetic.index("--queue-size") + 1] == str(3 * net.synthetic_queue_size)

    state = state_of(net, settings, "2026-01-01T12:00:00Z")
    assert [(v["name"], v["stake"]) for v in state["validators"]] == [
        ("validator", 1000.0),
        ("validator2", 1000.0),
        ("validator3", 500.0),
    ]
    assert state["validator"]["name"] == "validator"

    # Up again with one validator: the others keep their wallets and uids, lose their stake and permit.
    again = build_net(UpSettings(directory=tmp_path, miners=2), None)
    again.prepare()
    assert [v.name for v in again.validators] == ["validator"]
    metagraph = LocalChain(net.chain_dir, net.netuid).metagraph()
    assert metagraph.get(validators[0].hotkey).validator_permit
    for v in validators[1:]:
        assert metagraph.get(v.hotkey).uid == v.uid
        assert metagraph.get(v.hotkey).stake == 0.0 and not metagraph.get(v.hotkey).validator_permit


def test_the_status_shows_each_validators_weights_and_trust_beside_the_miners_consensus(tmp_path):
    # Fast blocks: the chain's epoch (every 20 blocks, as often as the validators set weights) comes in a second.
    net, settings = _three(tmp_path, block_time=0.05)
    chain = LocalChain(net.chain_dir, net.netuid)
    assert chain.params().tempo == 20
    miners = [n for n in net.neurons if n.role == "miner"]
    # Weights as each validator sets them (the chain checks the permit of each); validator3 sets none.
    for v, shares in zip(net.validators, ([60000, 20000], [65535, 0]), strict=False):
        chain.set_weights(v.hotkey, [m.uid for m in miners], shares, 0)
    after = chain.block()
    TaskStore(net.database_of("validator2")).close()  # validator2 has made its database; the others not yet
    state = state_of(net, settings, "2026-01-01T12:00:00Z")
    reader = StatusReader(tmp_path, net.netuid)
    deadline = time.monotonic() + 60
    try:
        snap = reader.read(state)
        while (snap["epoch_block"] or 0) <= after:  # an epoch that saw the weights
            assert time.monotonic() < deadline, snap
            time.sleep(0.1)
            snap = reader.read(state)
    finally:
        reader.close()
    epoch = chain.epoch_view()
    by_name = {v["name"]: v for v in snap["validators"]}
    assert list(by_name) == ["validator", "validator2", "validator3"]
    m1, m2 = (m.hotkey for m in miners)
    assert by_name["validator"]["weights"] == pytest.approx({m1: 0.75, m2: 0.25})
    assert by_name["validator2"]["weights"] == pytest.approx({m1: 1.0})  # a zero weight is not kept
    assert by_name["validator3"]["weights"] == {}
    assert [v["database"] for v in snap["validators"]] == ["absent", "ready", "absent"]
    assert by_name["validator3"]["stake"] == 500.0
    for v in snap["validators"]:
        assert set(v) >= {"uid", "hotkey", "tasks_sent", "rounds_scored", "weights_set", "trust", "dividend"}
    # The chain's figures at that epoch, as `dojo chain show` has them (if no later epoch came meanwhile).
    if epoch.block == snap["epoch_block"]:
        trust = {v.uid: (v.trust, v.dividend) for v in epoch.validators}
        assert {v["uid"]: (v["trust"], v["dividend"]) for v in snap["validators"]} == trust
        assert {m["uid"]: (m["consensus"], m["incentive"]) for m in snap["miners"]} == {
            m.uid: (m.consensus, m.incentive) for m in epoch.miners
        }
    assert by_name["validator"]["trust"] > 0.5 and by_name["validator3"]["trust"] == 0.0  # it set no weights
    assert sum(m["incentive"] for m in snap["miners"]) == pytest.approx(1.0)
    # The first validator's weights are the miners' column, as on a network of one.
    assert [m["weight"] for m in snap["miners"]] == pytest.approx([0.75, 0.25])

    console = Console(file=io.StringIO(), record=True, width=100, color_system=None)
    console.print(render(snap))
    text = console.export_text()
    cells = [line.strip("│ ").split() for line in text.splitlines()]
    rows = {c[0]: c[1:] for c in cells if c and c[0].startswith("validator")}
    assert rows["validator2"][:2] == [str(net.validators[1].uid), "1000"]
    assert rows["validator2"][-2:] == ["1.000", "0.000"] and rows["validator3"][-2:] == ["-", "-"]
    assert rows["validator"][4] == f"{by_name['validator']['trust']:.3f}"
    incentive = next(c for c in cells if c and c[0] == "incentive")
    assert incentive[1:] == [f"{m['incentive']:.3f}" for m in snap["miners"]]

    later = {**snap, "validators": [dict(v) for v in snap["validators"]]}
    later["validators"][1].update(weights_set=1, last_weights={"block": 9, "at": None})
    assert events(snap, later) == ["validator2 set weights at block 9: miner1 1.000"]
    # A new epoch whose figures differ is one line; one with the same figures none.
    moved = {**later, "epoch_block": 999, "validators": [dict(v) for v in later["validators"]]}
    moved["validators"][2]["trust"] = 0.5
    assert events(later, moved) == [
        f"epoch at block 999: trust validator {by_name['validator']['trust']:.3f}, "
        f"validator2 {by_name['validator2']['trust']:.3f}, validator3 0.500; incentive "
        + ", ".join(f"{m['name']} {m['incentive']:.3f}" for m in snap["miners"])
    ]
    assert events(moved, {**moved, "epoch_block": 1019}) == []
