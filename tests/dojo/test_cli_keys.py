"""``dojo authenticate`` / ``dojo api-key`` / ``dojo subscription-key`` / ``dojo platform invite``
against the real platform.

The platform runs under uvicorn on loopback with a LocalChain holding the registrations;
the commands run through ``dojo.cli.main`` exactly as the console script does, and are
judged by their exit codes and output.
"""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from commons.dojo_api import AuthRejected, DojoAPI
from commons.dojo_wire import SessionOut
from dojo.cli import main
from dojo.cli.platform_account import MinerSessionFiles
from tests.dojo.live_platform import NETUID


@pytest.fixture(scope="module")
def real_platform(tmp_path_factory):
    from tests.dojo.live_platform import live_platform

    with live_platform(tmp_path_factory.mktemp("platform")) as platform:
        yield platform


@pytest.fixture
def session_dir(tmp_path):
    return tmp_path / "sessions"


@pytest.fixture
def miner(make_wallet, real_platform):
    wallet = make_wallet(hotkey="hot")
    real_platform.register(wallet)
    return wallet


@pytest.fixture
def dojo(real_platform, wallet_path, session_dir, capsys):
    """Run ``dojo <args>`` for a wallet on the live platform; returns (exit code, stdout, stderr)."""

    def run(*args: str, wallet=None, platform: str | None = None) -> tuple[int, str, str]:
        account = []
        if wallet is not None:
            account = ["--wallet.name", wallet.name, "--wallet.hotkey", wallet.hotkey_str]
        common = [
            *account,
            "--wallet.path",
            str(wallet_path),
            "--platform",
            platform or real_platform.url,
            "--session-dir",
            str(session_dir),
        ]
        capsys.readouterr()
        code = main([*args, *common])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_authenticate_caches_the_session_owner_only(dojo, miner, real_platform, session_dir):
    code, out, err = dojo("authenticate", wallet=miner)
    assert code == 0, err
    address = miner.hotkey.ss58_address
    assert out.startswith(f"✅ Authenticated as {address} on {real_platform.url}; session valid until ")
    path = MinerSessionFiles(session_dir).path_for(real_platform.url, address)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["hotkey"] == address


def test_key_lifecycle_and_the_key_works(dojo, miner, real_platform):
    code, out, err = dojo("api-key", "generate", wallet=miner)
    assert code == 0, err
    key = out.strip()
    assert key.startswith("dojo_api_") and "\n" not in key  # stdout is the key alone, for KEY=$(...)
    assert "shown only this once" in err
    assert "logging in with the hotkey" in err  # no cached session yet

    code, out, err = dojo("api-key", "list", "--json", wallet=miner)
    assert code == 0, err
    [listed] = json.loads(out)
    assert key.startswith(listed["prefix"]) and listed["disabled"] is False and listed["lastUsedAt"] is None

    # The key the command printed is the one the miner puts in DOJO_API_KEY.
    async def create_task() -> str:
        async with DojoAPI(real_platform.url, api_key=key) as api:
            [task_id] = await api.create_task(
                title="Rank",
                body="Write a bouncing ball",
                expire_at=datetime.now(timezone.utc) + timedelta(hours=1),
                task_data=[
                    {
                        "prompt": "Write a bouncing ball",
                        "responses": [
                            {"model": "m1", "completion": "print(1)", "cid": "c1"},
                            {"model": "m2", "completion": "print(2)", "cid": "c2"},
                        ],
                        "task": "CODE_GENERATION",
                        "criteria": [{"type": "ranking"}],
                    }
                ],
                max_results=1,
            )
            return task_id

    async def task_status(task_id: str) -> None:
        async with DojoAPI(real_platform.url, api_key=key) as api:
            await api.task_status(task_id)

    task_id = asyncio.run(create_task())
    code, out, err = dojo("api-key", "list", wallet=miner)
    assert code == 0
    [line] = out.splitlines()
    assert line.startswith(f"{listed['prefix']}\tid={listed['id']}\t") and "last_used=never" not in line

    code, out, err = dojo("api-key", "delete", "--id", listed["prefix"], wallet=miner)
    assert code == 0, err
    assert out.strip() == f"✅ Disabled API key {listed['prefix']} (id {listed['id']})."
    with pytest.raises(AuthRejected):
        asyncio.run(task_status(task_id))

    code, out, err = dojo("api-key", "list", wallet=miner)
    assert code == 0 and out == ""
    assert "No API keys found; generate one with `dojo api-key generate`." in err


def test_subscription_keys(dojo, miner):
    codes_and_keys = [dojo("subscription-key", "generate", "--json", wallet=miner) for _ in range(2)]
    assert [c for c, _, _ in codes_and_keys] == [0, 0]
    generated = [json.loads(out) for _, out, _ in codes_and_keys]
    code, out, err = dojo("subscription-key", "list", "--json", wallet=miner)
    assert code == 0
    assert [k["id"] for k in json.loads(out)] == [g["id"] for g in generated]
    code, out, err = dojo("subscription-key", "delete", "--id", str(generated[0]["id"]), wallet=miner)
    assert code == 0, err
    code, out, err = dojo("subscription-key", "list", "--json", wallet=miner)
    assert [k["id"] for k in json.loads(out)] == [generated[1]["id"]]
    # API keys are a separate list.
    code, out, err = dojo("api-key", "list", "--json", wallet=miner)
    assert json.loads(out) == []


def test_delete_takes_the_id_or_prefix_without_a_flag_and_says_what_is_missing(dojo, miner, capsys):
    generated = [
        json.loads(dojo("subscription-key", "generate", "--json", wallet=miner)[1]) for _ in range(2)
    ]
    code, out, err = dojo("subscription-key", "delete", str(generated[0]["id"]), wallet=miner)
    assert code == 0, err
    assert out.strip() == f"✅ Disabled subscription key {generated[0]['prefix']} (id {generated[0]['id']})."
    code, out, err = dojo("subscription-key", "delete", generated[1]["prefix"], wallet=miner)
    assert code == 0, err
    code, out, err = dojo("subscription-key", "list", "--json", wallet=miner)
    assert json.loads(out) == []
    with pytest.raises(SystemExit) as usage:
        main(["subscription-key", "delete", "--wallet.name", miner.name])
    assert usage.value.code == 2
    assert "give the key's id or prefix: dojo subscription-key delete ID" in capsys.readouterr().err


def test_list_shows_each_keys_state_and_marks_the_miners_key(dojo, miner, monkeypatch):
    keys = [dojo("api-key", "generate", wallet=miner)[1].strip() for _ in range(2)]
    monkeypatch.setenv("DOJO_API_KEY", keys[1])  # what a miner started here would use
    code, out, err = dojo("api-key", "list", wallet=miner)
    assert code == 0, err
    states = [dict(f.split("=", 1) for f in line.split("\t")[1:])["state"] for line in out.splitlines()]
    assert states == ["active", "active, the miner's DOJO_API_KEY"]
    prefix = out.splitlines()[1].split("\t")[0]
    code, out, err = dojo("api-key", "delete", prefix, wallet=miner)
    assert code == 0, err
    assert "⚠️  It was the miner's DOJO_API_KEY: the miner refuses tasks until .env holds a new key" in err


def test_expired_and_forgotten_sessions_log_in_again(dojo, miner, real_platform, session_dir):
    cache = MinerSessionFiles(session_dir)
    address = miner.hotkey.ss58_address
    cache.save(real_platform.url, address, SessionOut(token="stale", expires_at=datetime.now(timezone.utc)))
    code, out, err = dojo("api-key", "list", wallet=miner)
    assert code == 0 and "no valid session; logging in with the hotkey" in err
    first = cache.load(real_platform.url, address)
    assert first is not None and first.token != "stale"

    code, out, err = dojo("api-key", "list", wallet=miner)
    assert code == 0 and "logging in" not in err  # the cached session, no login

    # A token the platform does not know (a restarted platform with a new database).
    cache.save(real_platform.url, address, SessionOut(token="dms_unknown", expires_at=first.expires_at))
    code, out, err = dojo("subscription-key", "list", wallet=miner)
    assert code == 0, err
    assert "the platform refused the cached session; logging in again" in err
    assert cache.load(real_platform.url, address).token not in ("dms_unknown", first.token)


def test_refusals_exit_1_with_the_platforms_message(dojo, make_wallet):
    stranger = make_wallet(hotkey="hot")  # not registered on the subnet
    code, out, err = dojo("authenticate", wallet=stranger)
    assert code == 1 and out == ""
    assert "❌" in err and "403" in err and "not registered" in err


def test_usage_errors_exit_2(dojo, miner, make_wallet, capsys):
    code, out, err = dojo("api-key", "delete", "--id", "sk-nosuchkey", wallet=miner)
    assert code == 2 and "no active key with id or prefix 'sk-nosuchkey'" in err

    with pytest.raises(SystemExit) as usage:
        main(["api-key", "delete", "--wallet.name", miner.name])  # no --id
    assert usage.value.code == 2

    assert main(["api-key"]) == 2
    assert "usage: dojo api-key" in capsys.readouterr().out

    ghost = make_wallet(hotkey="hot")
    ghost.hotkey_str = "missing"
    code, out, err = dojo("api-key", "list", wallet=ghost)
    assert code == 2 and "no hotkey 'missing'" in err

    code, out, err = dojo("authenticate", wallet=miner, platform="ftp://nowhere")
    assert code == 2 and "not a platform URL" in err


def test_an_unreachable_platform_exits_1(dojo, miner):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = dojo("authenticate", wallet=miner, platform=f"http://127.0.0.1:{port}")
    assert code == 1
    assert "did not answer" in err and "ConnectError" in err


def test_platform_invite_asks_the_running_platform_for_a_working_link(dojo, miner, real_platform):
    code, out, err = dojo("platform", "invite", wallet=miner)
    assert code == 0, err
    url = out.strip()  # stdout is the link alone, for LINK=$(...)
    assert url.startswith(f"{real_platform.url}/invite/inv_") and "\n" not in url
    assert "One use, valid until" in err
    page = httpx.get(url)
    assert page.status_code == 200 and miner.hotkey.ss58_address in page.text


def test_platform_invite_refuses_an_unregistered_hotkey_either_way(
    dojo, make_wallet, real_platform, tmp_path, capsys
):
    stranger = make_wallet(hotkey="stranger")  # never registered on the subnet
    code, out, err = dojo("platform", "invite", wallet=stranger)
    assert code == 1 and out == ""
    assert "not registered" in err

    # On the platform's host, straight into a database: the chain is asked too.
    on_host = [
        "platform",
        "invite",
        "--db",
        str(tmp_path / "platform.sqlite"),
        "--public-url",
        real_platform.url,
        "--subtensor.network",
        str(real_platform.chain.directory),
        "--netuid",
        str(NETUID),
    ]
    capsys.readouterr()
    assert main([*on_host, "--miner", stranger.hotkey.ss58_address]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"hotkey {stranger.hotkey.ss58_address} is not registered on subnet {NETUID}" in err
    registered = make_wallet(hotkey="member")
    real_platform.register(registered)
    assert main([*on_host, "--miner", registered.hotkey.ss58_address]) == 0
    assert capsys.readouterr().out.strip().startswith(f"{real_platform.url}/invite/inv_")
