"""``dojo chain`` and ``dojo wallet``: exit codes and output, on a real local chain and real wallets."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dojo.cli import main
from template.chain.local import LocalChain

REPO = Path(__file__).resolve().parents[2]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_wallet_create_prints_addresses_and_is_repeatable(capsys, wallet_path: Path):
    flags = ("--wallet.name", "val", "--wallet.hotkey", "hk", "--wallet.path", str(wallet_path))
    code, out, _ = _run(capsys, "wallet", "create", *flags)
    assert code == 0
    coldkey = next(line.split()[1] for line in out.splitlines() if line.startswith("coldkey"))
    hotkey = next(line.split()[1] for line in out.splitlines() if line.startswith("hotkey"))
    assert (wallet_path / "val" / "hotkeys" / "hk").is_file()
    # A second run keeps the keys.
    code, again, _ = _run(capsys, "wallet", "create", *flags)
    assert code == 0 and f"coldkey  {coldkey}" in again and f"hotkey   {hotkey}" in again


def test_init_register_show(capsys, tmp_path: Path, make_wallet, wallet_path: Path):
    chain_dir = tmp_path / "chain"
    code, out, _ = _run(
        capsys, "chain", "init", "--dir", str(chain_dir), "--netuid", "3", "--block-time", "0.5",
        "--max-validators", "1", "--weights-rate-limit", "7",
    )  # fmt: skip
    assert code == 0 and "subnet 3" in out
    chain = LocalChain(chain_dir, netuid=3)
    assert chain.block_time == 0.5
    assert chain.hyperparameters().max_validators == 1
    assert chain.hyperparameters().weights.weights_rate_limit == 7

    validator, miner = make_wallet("v"), make_wallet("m")
    code, out, _ = _run(
        capsys, "chain", "register", "--dir", str(chain_dir), "--netuid", "3", "--wallet.name", "v",
        "--wallet.path", str(wallet_path), "--stake", "10",
    )  # fmt: skip
    assert code == 0 and "as uid 0" in out
    code, out, _ = _run(
        capsys, "chain", "register", "--dir", str(chain_dir), "--netuid", "3", "--wallet.name", "m",
        "--wallet.path", str(wallet_path), "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "netuid": 3,
        "uid": 1,
        "hotkey": miner.hotkey.ss58_address,
        "coldkey": miner.coldkeypub.ss58_address,
        "stake": 0.0,
    }
    chain.serve_axon(miner, "127.0.0.1", 9602)
    chain.set_weights(validator, [1], [65535], version_key=0)

    code, out, _ = _run(capsys, "chain", "show", "--dir", str(chain_dir), "--netuid", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("subnet 3 at block") and "2 neurons" in lines[0]
    assert "block time 0.5 s" in lines[1] and "max validators 1" in lines[1] and "rate limit 7" in lines[1]
    del lines[1]
    assert lines[1].split() == ["uid", "hotkey", "stake", "permit", "axon", "last", "update", "incentive"]
    assert lines[2].split()[:6] == [
        "0",
        validator.hotkey.ss58_address,
        "10.0000",
        "yes",
        "-",
        lines[2].split()[5],
    ]
    assert int(lines[2].split()[5]) >= 1
    assert lines[3].split() == [
        "1",
        miner.hotkey.ss58_address,
        "0.0000",
        "no",
        "127.0.0.1:9602",
        "-",
        "1.0000",
    ]

    code, out, _ = _run(capsys, "chain", "show", "--dir", str(chain_dir), "--netuid", "3", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["netuid"] == 3 and len(shown["neurons"]) == 2
    assert shown["block_time"] == 0.5 and shown["hyperparameters"]["weights_rate_limit"] == 7
    assert shown["neurons"][1]["axon"] == {"ip": "127.0.0.1", "port": 9602}
    assert shown["neurons"][1]["incentive"] == 1.0
    assert shown["neurons"][0]["validator_permit"] is True


def test_show_prints_the_last_yuma_epoch(capsys, tmp_path: Path, make_wallet):
    chain_dir = tmp_path / "chain"
    code, _, _ = _run(
        capsys, "chain", "init", "--dir", str(chain_dir), "--block-time", "0.05", "--tempo", "2",
        "--weights-rate-limit", "0", "--commit-reveal-period", "1", "--kappa", "0.6",
    )  # fmt: skip
    assert code == 0
    chain = LocalChain(chain_dir)
    assert chain.params().commit_reveal_period == 1 and chain.params().kappa == 0.6
    v1, v2 = make_wallet("v1"), make_wallet("v2")
    for i, w in enumerate((v1, v2)):
        chain.register(w.hotkey.ss58_address, w.coldkeypub.ss58_address, stake=1.0 + i)
    chain.register(
        "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM", "5C4hrfjw9DjXZTzV3MwzrrAr9P1MJhSrvWGWqi1eSuyUpnhM"
    )
    chain.register(
        "5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw", "5HGjWAeFDfFCWPsjFQdVV2Msvz2XtMktvgocEZcCj68kUMaw"
    )
    chain.set_weights(v1, [2, 3], [1, 3], version_key=0)
    chain.set_weights(v2, [2, 3], [1, 3], version_key=0)
    revealed = max(n.last_update for n in chain.metagraph().neurons) + 2 * chain.params().tempo
    while chain.epoch_view().block <= revealed:  # the reveal, then an epoch after it
        time.sleep(chain.block_time / 4)
    code, out, _ = _run(capsys, "chain", "show", "--dir", str(chain_dir))
    assert code == 0
    assert "kappa 0.6" in out and "commit-reveal 1 tempo(s)" in out
    lines = out.splitlines()
    v_row = next(line.split() for line in lines if line.startswith("0 ") and "2:0.250" in line)
    assert v_row[2:] == ["1.0000", "1.0000", "0.3333", "2:0.250", "3:0.750"]  # stake 1 of 3, trust 1
    m_row = next(line.split() for line in lines if line.startswith("3 ") and len(line.split()) == 4)
    assert m_row[2:] == ["0.7500", "0.7500"]
    code, out, _ = _run(capsys, "chain", "show", "--dir", str(chain_dir), "--json")
    epoch = json.loads(out)["epoch"]
    assert [v["trust"] for v in epoch["validators"]] == pytest.approx([1.0, 1.0])
    assert [v["dividend"] for v in epoch["validators"]] == pytest.approx([1 / 3, 2 / 3])
    assert {m["uid"]: m["incentive"] for m in epoch["miners"]} == pytest.approx({2: 0.25, 3: 0.75})


def test_register_without_a_wallet_names_wallet_create(capsys, tmp_path: Path, wallet_path: Path):
    LocalChain.init(tmp_path / "chain")
    code, out, err = _run(
        capsys, "chain", "register", "--dir", str(tmp_path / "chain"), "--wallet.name", "ghost",
        "--wallet.path", str(wallet_path),
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "dojo wallet create --wallet.name ghost" in err


def test_commands_on_a_missing_chain_fail_with_the_init_command(
    capsys, tmp_path: Path, make_wallet, wallet_path
):
    make_wallet("v")
    code, _, err = _run(capsys, "chain", "show", "--dir", str(tmp_path / "nowhere"))
    assert code == 1 and "dojo chain init --dir" in err
    code, _, err = _run(
        capsys, "chain", "register", "--dir", str(tmp_path / "nowhere"), "--wallet.name", "v",
        "--wallet.path", str(wallet_path),
    )  # fmt: skip
    assert code == 1 and "dojo chain init --dir" in err


def test_init_twice_fails_unless_exist_ok(capsys, tmp_path: Path):
    argv = ("chain", "init", "--dir", str(tmp_path / "c"))
    assert _run(capsys, *argv)[0] == 0
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "already exists" in err
    assert _run(capsys, *argv, "--exist-ok")[0] == 0
    code, _, err = _run(capsys, "chain", "init", "--dir", str(tmp_path / "d"), "--max-weight-limit", "2")
    assert code == 1 and "max_weight_limit" in err


def test_bad_flag_value_exits_2(capsys, tmp_path: Path):
    with pytest.raises(SystemExit) as exc:
        main(["chain", "init", "--dir", str(tmp_path), "--block-time", "soon"])
    assert exc.value.code == 2
    assert "--block-time" in capsys.readouterr().err


def test_the_entry_point_runs_in_a_subprocess(tmp_path: Path, make_wallet, wallet_path: Path, capsys):
    """The real process, ``python -m dojo``, for the two commands that do not load the SDK."""
    chain_dir = tmp_path / "chain"

    def dojo(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "dojo", *argv], cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "subnet 1" in dojo("chain", "init", "--dir", str(chain_dir), "--block-time", "1")
    wallet = make_wallet("a")
    flags = ("--dir", str(chain_dir), "--wallet.name", "a", "--wallet.path", str(wallet_path))
    assert _run(capsys, "chain", "register", *flags)[0] == 0
    shown = json.loads(dojo("chain", "show", "--dir", str(chain_dir), "--json"))
    assert [n["hotkey"] for n in shown["neurons"]] == [wallet.hotkey.ss58_address]
