"""A local network's own log-ins and the platform's log-in limit.

Every client of a local network, a person's browser too, reaches the platform from
127.0.0.1, and the limit counts per address: four miners with three simulated workers
each once made 32 log-in calls against the 30 a minute allowed, and workers waited out
429s. The platform of ``dojo localnet up`` (:func:`dojo.localnet.net.build_net`) runs with the
network's own log-ins on top of a stranger's allowance; this starts that platform, the
miners' key-making, the invite's log-in and the four teams, and checks that no worker was
turned away and that a person still has the whole allowance.
"""

from __future__ import annotations

import time

import httpx
import pytest
from eth_account import Account

from dojo.localnet.net import PERSON_LOG_INS, UpSettings, build_net

pytestmark = pytest.mark.e2e


def test_four_teams_log_in_at_once_without_a_429_and_a_person_keeps_the_whole_allowance(tmp_path):
    net = build_net(UpSettings(tmp_path / "net", miners=4, workers_per_miner=3), None)
    net.prepare()
    try:
        net.start(roles=("platform",))  # each miner logs in to make its keys
        assert net.invite("miner1").startswith(f"{net.platform_url}/invite/")
        net.start(roles=("workers",))  # four teams of three workers and a stand-in
        teams = [n for n in net.neurons if n.role == "workers"]
        deadline = time.monotonic() + 120
        while not all(team.log().count("joined as worker") == 4 for team in teams):
            assert time.monotonic() < deadline, {team.name: team.log()[-2000:] for team in teams}
            assert all(team.alive for team in teams), {team.name: team.log()[-2000:] for team in teams}
            time.sleep(0.5)
        for team in teams:
            assert "rate limited" not in team.log(), team.log()[-2000:]
        # Within the same minute, a person (the same address) may still log in as a stranger may.
        with httpx.Client(base_url=net.platform_url, timeout=30) as client:
            for _ in range(PERSON_LOG_INS):
                address = Account.create().address
                reply = client.post("/api/v1/worker/challenge", json={"address": address})
                assert reply.status_code == 200, reply.text
    finally:
        codes = net.stop()
    assert all(code in (0, -15) for code in codes.values()), codes
