"""The pm2 ecosystem file (ecosystem.config.js) as node and pm2 read it.

Its settings come from an untracked ecosystem.local.js beside it; these tests copy the file
into a temporary directory with the settings they need. The last test runs a validator on a
local chain under a real pm2 of its own and stops it, as an operator does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dojo.localnet.net import free_port
from tests._pm2 import NEEDS_PM2, own_pm2

REPO = Path(__file__).resolve().parents[1]
NEEDS_NODE = pytest.mark.skipif(shutil.which("node") is None, reason="reading ecosystem.config.js needs node")


def _checkout(directory: Path, local: str | None = None) -> Path:
    """A directory with the repository's ecosystem.config.js, the example it reads its defaults
    from, and, when given, ecosystem.local.js."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ecosystem.config.js", "ecosystem.local.example.js"):
        shutil.copy(REPO / name, directory / name)
    if local is not None:
        (directory / "ecosystem.local.js").write_text(local)
    return directory


def _apps(directory: Path, expect_error: bool = False) -> dict[str, dict] | str:
    script = "console.log(JSON.stringify(require('./ecosystem.config.js').apps))"
    done = subprocess.run(["node", "-e", script], cwd=directory, capture_output=True, text=True, timeout=30)
    if expect_error:
        assert done.returncode != 0, done.stdout
        return done.stderr
    assert done.returncode == 0, done.stderr
    return {app["name"]: app for app in json.loads(done.stdout)}


def _local(**settings: object) -> str:
    return f"module.exports = {json.dumps(settings)};\n"


@NEEDS_NODE
def test_the_defaults_run_the_validator_role_on_testnet_with_the_original_flags() -> None:
    apps = _apps(REPO)
    assert set(apps) == {"dojo-validator", "dojo-synthetic"}
    validator = apps["dojo-validator"]
    assert validator["script"] == str(REPO / "main_validator.py")
    assert validator["interpreter"].endswith("/bin/python")
    assert validator["args"] == [
        "--netuid", "98", "--wallet.name", "coldkey", "--wallet.hotkey", "hotkey", "--logging.debug",
        "--axon.port", "9603", "--neuron.type", "validator", "--scoring_method", "dojo", "--subtensor.network", "test",
    ]  # fmt: skip
    assert apps["dojo-synthetic"]["args"][:2] == ["synthetic", "serve"]


@NEEDS_NODE
def test_pm2_signals_each_process_alone_not_its_children(tmp_path: Path) -> None:
    # The validator's wandb process must outlive the validator's SIGINT (test below).
    apps = _apps(_checkout(tmp_path, _local(ROLE="all", MINER_WALLET_HOTKEY="m")))
    assert {name: app.get("treekill") for name, app in apps.items()} == dict.fromkeys(
        ["dojo-validator", "dojo-synthetic", "dojo-miner", "dojo-platform"], False
    )


@NEEDS_NODE
def test_the_settings_come_from_the_untracked_local_file(tmp_path: Path) -> None:
    local = _local(
        NETWORK="finney",
        NETUID=52,
        ROLE="miner",
        MINER_WALLET_NAME="team",
        MINER_WALLET_HOTKEY="miner1",
        WALLET_PATH="/srv/wallets",
        PLATFORM_PORT=8090,
    )
    apps = _apps(_checkout(tmp_path, local))
    assert set(apps) == {"dojo-miner", "dojo-platform"}
    args = apps["dojo-miner"]["args"]
    assert args[:8] == [
        "--netuid",
        "52",
        "--wallet.name",
        "team",
        "--wallet.hotkey",
        "miner1",
        "--wallet.path",
        "/srv/wallets",
    ]
    assert args[-2:] == ["--subtensor.network", "finney"]
    assert "8090" in apps["dojo-platform"]["args"]
    # The repository ignores the local file, and the committed example holds every setting.
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "ecosystem.local.js"], cwd=REPO, capture_output=True, timeout=30
    )
    assert ignored.returncode == 0, "git would track ecosystem.local.js"
    example_dir = _checkout(tmp_path / "example", (REPO / "ecosystem.local.example.js").read_text())
    assert set(_apps(example_dir)) == {"dojo-validator", "dojo-synthetic"}


@NEEDS_NODE
def test_an_unknown_setting_is_an_error_that_names_it(tmp_path: Path) -> None:
    error = _apps(_checkout(tmp_path, _local(WALLET_NAME="coldkey")), expect_error=True)
    assert "ecosystem.local.js sets WALLET_NAME, which is not a setting" in error
    assert "VALIDATOR_WALLET_NAME" in error


@NEEDS_NODE
def test_each_role_signs_with_its_own_wallet(tmp_path: Path) -> None:
    local = _local(
        ROLE="all",
        VALIDATOR_WALLET_NAME="owner",
        VALIDATOR_WALLET_HOTKEY="validator",
        MINER_WALLET_NAME="owner",
        MINER_WALLET_HOTKEY="miner",
    )
    apps = _apps(_checkout(tmp_path, local))
    assert set(apps) == {"dojo-validator", "dojo-synthetic", "dojo-miner", "dojo-platform"}

    def wallet(args: list[str]) -> tuple[str, str]:
        return args[args.index("--wallet.name") + 1], args[args.index("--wallet.hotkey") + 1]

    assert wallet(apps["dojo-validator"]["args"]) == ("owner", "validator")
    assert wallet(apps["dojo-miner"]["args"]) == ("owner", "miner")


@NEEDS_NODE
def test_one_hotkey_for_both_roles_is_an_error_that_says_so(tmp_path: Path) -> None:
    error = _apps(_checkout(tmp_path / "a", _local(ROLE="all")), expect_error=True)
    assert (
        'ROLE "all" runs a miner and a validator, each with its own hotkey, but both would sign as coldkey/hotkey'
        in error
    )
    # Two names, one key: the hotkey files on disk hold the same address.
    wallets = tmp_path / "wallets"
    for name in ("a", "b"):
        (wallets / name / "hotkeys").mkdir(parents=True)
        (wallets / name / "hotkeys" / "default").write_text(json.dumps({"ss58Address": "5SameAddress"}))
    local = _local(ROLE="all", WALLET_PATH=str(wallets), VALIDATOR_WALLET_NAME="a", MINER_WALLET_NAME="b",
                   VALIDATOR_WALLET_HOTKEY="default", MINER_WALLET_HOTKEY="default")  # fmt: skip
    error = _apps(_checkout(tmp_path / "b", local), expect_error=True)
    assert "both would sign as a/default (5SameAddress)" in error


@NEEDS_NODE
@NEEDS_PM2
def test_pm2_only_a_process_the_role_does_not_run_is_an_error(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path / "checkout", _local(ROLE="miner"))
    with own_pm2(tmp_path / "pm2") as pm2:
        done = pm2("start", "ecosystem.config.js", "--only", "dojo-validator", check=False, cwd=checkout)
        assert done.returncode != 0
        said = done.stdout + done.stderr
        assert '--only dojo-validator: ROLE "miner" runs dojo-miner, dojo-platform' in said
        assert 'dojo-validator runs with ROLE "validator" or "all"' in said
        assert pm2.processes() == {}


# --- the validator under real pm2 ---------------------------------------------------------


def _wandb_records(run_file: Path) -> list[Any]:
    """The records of an offline run's .wandb file (wandb's LevelDB-style log of protobuf
    Records: a 7-byte header, then 32 KiB blocks of chunks, each with a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    raw = run_file.read_bytes()
    assert raw[:4] == b":W&B", f"{run_file} is not a wandb run file"
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # too little left in the block for a header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        pending += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@NEEDS_NODE
@NEEDS_PM2
@pytest.mark.e2e
def test_pm2_stopping_the_validator_leaves_a_finished_wandb_run_with_its_last_records(tmp_path: Path) -> None:
    """The validator (wandb offline) on a local chain under a pm2 of its own, started and stopped
    through the ecosystem file as an operator does. It exports the dataset every 2 s and logs
    each export to wandb, so there is always a last record to lose."""
    dojo = [sys.executable, "-m", "dojo"]
    chain, wallets, data = tmp_path / "chain", tmp_path / "wallets", tmp_path / "data"
    for command in (
        ["chain", "init", "--dir", str(chain), "--netuid", "1", "--block-time", "1"],
        ["wallet", "create", "--wallet.name", "val", "--wallet.hotkey", "default", "--wallet.path", str(wallets)],
        ["chain", "register", "--dir", str(chain), "--netuid", "1", "--wallet.name", "val",
         "--wallet.path", str(wallets), "--stake", "1000"],
    ):  # fmt: skip
        subprocess.run([*dojo, *command], capture_output=True, text=True, timeout=120, check=True)
    checkout = _checkout(
        tmp_path / "checkout",
        _local(
            NETWORK=str(chain),
            NETUID=1,
            VALIDATOR_WALLET_NAME="val",
            VALIDATOR_WALLET_HOTKEY="default",
            WALLET_PATH=str(wallets),
            VALIDATOR_AXON_PORT=free_port(),
            VENV=sys.prefix,
        ),
    )
    (checkout / "main_validator.py").symlink_to(REPO / "main_validator.py")
    (checkout / ".env").write_text(
        f"NEURON_DATA_DIR={data}\nAXON_IP=127.0.0.1\nEXPORT_INTERVAL=2\nEXPORT_KEEP=1000\nWANDB_PROJECT=dojo-test\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PM2_"))}
    env["HOME"] = str(tmp_path)
    with own_pm2(tmp_path / "pm2", env) as pm2:

        def logs() -> str:
            return pm2.log("dojo-validator", "out") + pm2.log("dojo-validator", "error")

        pm2("start", "ecosystem.config.js", "--only", "dojo-validator", cwd=checkout)
        deadline = time.monotonic() + 120
        while logs().count("dataset exported to") < 3:
            assert time.monotonic() < deadline, f"the validator exported nothing in 120 s:\n{logs()[-3000:]}"
            assert pm2.processes()["dojo-validator"]["restart_time"] == 0, logs()[-3000:]
            time.sleep(0.2)
        pm2("stop", "dojo-validator")
        pm2.wait_for("dojo-validator stopped", lambda p: p["dojo-validator"]["status"] == "stopped", 60)
        said = logs()

    assert "validator uid 0 stopped" in said, said[-3000:]
    assert "wandb run.finish failed" not in said and "Traceback" not in said, said[-3000:]
    exported = re.findall(r"dataset exported to (\S+):", said)
    [run_file] = data.glob("wandb/offline-run-*/*.wandb")
    records = _wandb_records(run_file)
    kinds = [record.WhichOneof("record_type") for record in records]
    assert "exit" in kinds and records[kinds.index("exit")].exit.exit_code == 0, kinds
    logged = [
        Path(record.artifact.manifest.contents[0].local_path).parent.name
        for record in records
        if record.WhichOneof("record_type") == "artifact"
    ]
    assert logged == [Path(folder).name for folder in exported], (logged, exported)


def test_the_readmes_pm2_lines_start_the_neurons_without_treekill() -> None:
    readme = (REPO / "README.md").read_text()
    starts = re.findall(r"^pm2 start main_\w+\.py .*$", readme, re.M)
    assert len(starts) == 4
    assert all("--no-treekill" in line for line in starts), starts
