"""``dojo localnet up --miner-backends …``: miners on Label Studio beside a miner on the Dojo platform.

The Label Studio miners work on a real Label Studio server (the session's, given with
``--label-studio URL`` as an operator gives their own; without it ``up`` starts one from
``.label-studio/venv``), with simulated annotators that sign up there and rank through its
HTTP API; the test reads only ``dojo localnet status --json``, as another terminal would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_localnet_up import FAST, _dojo, _logs, _status, _wait

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)
def test_honest_annotators_on_label_studio_earn_like_honest_dojo_workers_and_a_random_team_little(
    tmp_path, label_studio
):
    directory = tmp_path / "net"
    directory.mkdir()
    out, err = (tmp_path / "up.out").open("w"), (tmp_path / "up.err").open("w")
    # miner1: honest workers on the Dojo platform; miner2: honest annotators on Label Studio;
    # miner3: random annotators on Label Studio.
    up = subprocess.Popen(
        [
            sys.executable, "-m", "dojo", "localnet", "up", "--dir", str(directory), *FAST,
            "--miner-backends", "dojo,label-studio,label-studio", "--worker-mix", "honest:2,random:1",
            "--label-studio", label_studio.url,
        ],
        stdout=out, stderr=err, start_new_session=True,
        env={**os.environ, "LABEL_STUDIO_API_KEY": label_studio.token},
    )  # fmt: skip
    try:
        # Some one task a round: the random team's weight rests on as many rankings as rounds,
        # each scored 0 to 1 by chance. The validator's own scoring over 1 000 seeds put it at
        # half the lower honest team's in 0.5 % of nets after four rounds, none after six.
        def scored():
            s = _status(directory)
            return s if s and s["rounds_scored"] >= 6 and s["weights_set"] >= 2 and s["weights"] else None

        snapshot = _wait(scored, 600, "six scored rounds and weights on chain", up, directory)
    finally:
        result = _dojo("localnet", "down", "--dir", str(directory), timeout=180)
        code = up.wait(120)
        out.close(), err.close()
    assert result.returncode == 0 and code == 0, (result.stderr, _logs(directory))
    by_name = {m["name"]: m for m in snapshot["miners"]}
    assert [by_name[n]["backend"] for n in ("miner1", "miner2", "miner3")] == [
        "dojo",
        "label-studio",
        "label-studio",
    ]
    assert snapshot["label_studio_url"] == label_studio.url
    assert sorted(p["name"] for p in snapshot["processes"] if p["role"] == "annotators") == [
        "annotators2",
        "annotators3",
    ]
    weights = {name: m["weight"] for name, m in by_name.items()}
    assert by_name["miner2"]["answered"] > 0 and by_name["miner3"]["answered"] > 0, snapshot["miners"]
    # Honest annotators on Label Studio earn about what honest Dojo workers earn; a random team little.
    assert weights["miner2"] > 0.5 * weights["miner1"], weights
    assert weights["miner3"] < 0.5 * min(weights["miner1"], weights["miner2"]), weights
    logs = Path(directory / "logs")
    assert "counted answer" in (logs / "miner2.log").read_text()
    assert "ranked task" in (logs / "annotators2.log").read_text()
