"""``dojo platform serve`` as an operator runs it: a process, a local chain, real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from dojo.cli import build_parser, main
from dojo.localnet.net import free_port
from dojo.platform import serve_command
from dojo.platform.settings import PlatformSettings
from dojo.platform.storage.db import Database, current_revision, head_revision
from template.config import resolve_args


def test_serve_parses_the_neurons_chain_flags():
    args = build_parser().parse_args(
        [
            "platform",
            "serve",
            "--subtensor.network",
            "/tmp/chain",
            "--netuid",
            "3",
            "--port",
            "9000",
            "--db",
            "x.db",
        ]
    )
    assert (args.network, args.netuid, args.port, args.db, args.host) == (
        "/tmp/chain",
        3,
        9000,
        "x.db",
        "127.0.0.1",
    )


def test_serve_migrates_and_answers(tmp_path: Path, chain):
    port = free_port()
    db_path = tmp_path / "served.sqlite"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dojo",
            "platform",
            "serve",
            "--db",
            str(db_path),
            "--port",
            str(port),
            "--subtensor.network",
            str(chain.directory),
            "--netuid",
            str(chain.netuid),
            "--public-url",
            "http://workers.example",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the platform did not start within 60 s"
                time.sleep(0.2)
        assert health.json() == {"status": "ok"}
        challenge = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/miner/challenge",
            json={"hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"},
        ).json()
        assert "platform: http://workers.example\n" in challenge["message"]
        assert current_revision(Database(f"sqlite:///{db_path}").engine) == head_revision()
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
    assert "database_url: sqlite:///" in output  # the settings are printed at start


def test_serve_reports_a_missing_chain(tmp_path: Path, capsys):
    code = main(
        [
            "platform",
            "serve",
            "--db",
            str(tmp_path / "x.sqlite"),
            "--subtensor.network",
            str(tmp_path / "no-chain"),
            "--netuid",
            "1",
            "--port",
            str(free_port()),
        ]
    )
    assert code == 1


# --- settings: flag > environment > .env > default, as the neurons' -----------------------

ALICE = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of one's own to run in (its .env is the one read), no platform variables set."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "PUBLIC_URL", "SUBTENSOR_NETWORK", "SUBTENSOR_CHAIN_ENDPOINT", "NETUID"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _resolved(command: str, argv: list[str], environ: dict[str, str]) -> PlatformSettings:
    args = build_parser().parse_args(["platform", command, *argv])
    return resolve_args(PlatformSettings, args, environ=environ)


def test_serve_takes_its_settings_from_the_environment(workdir: Path, chain):
    settings = _resolved(
        "serve",
        [],
        {
            "DATABASE_URL": "postgres://dojo:hunter2@db/dojo",
            "PUBLIC_URL": "https://workers.example",
            "SUBTENSOR_NETWORK": str(chain.directory),
            "SUBTENSOR_CHAIN_ENDPOINT": "ws://node:9944",
            "NETUID": "7",
            "PLATFORM_PORT": "9100",
            "PLATFORM_FORWARDED_ALLOW_IPS": "10.0.0.1",
        },
    )
    assert settings.database_url == "postgresql+psycopg://dojo:hunter2@db/dojo"
    assert settings.base_url == "https://workers.example"
    assert (settings.network, settings.chain_endpoint) == (str(chain.directory.resolve()), "ws://node:9944")
    assert (settings.netuid, settings.port, settings.forwarded_allow_ips) == (7, 9100, "10.0.0.1")
    assert "hunter2" not in settings.describe()


def test_a_flag_beats_its_variable_and_an_empty_variable_is_unset(workdir: Path):
    settings = _resolved(
        "serve",
        ["--netuid", "3", "--db", "flag.sqlite", "--public-url", "https://flag.example"],
        {
            "NETUID": "5",
            "DATABASE_URL": "sqlite:///env.sqlite",
            "PUBLIC_URL": "https://env.example",
            "PLATFORM_PORT": "",
        },
    )
    assert settings.netuid == 3
    assert settings.database_url == f"sqlite:///{workdir.resolve() / 'flag.sqlite'}"
    assert settings.base_url == "https://flag.example"
    assert settings.port == 8080


def test_serve_takes_the_api_docs_switch_as_flag_and_variable(workdir: Path):
    assert _resolved("serve", [], {}).docs is False
    assert _resolved("serve", ["--docs"], {}).docs is True
    assert _resolved("serve", [], {"PLATFORM_DOCS": "true"}).docs is True


def test_the_hot_paths_connections_are_shared_among_the_servers_processes_unless_given(workdir: Path):
    default = _resolved("serve", [], {})
    assert [default.hot_path_connections_for(n) for n in (1, 2, 3)] == [8, 4, 4]
    given = _resolved("serve", ["--hot-path-connections", "6"], {})
    assert [given.hot_path_connections_for(n) for n in (1, 2)] == [6, 6]
    from_env = _resolved("serve", [], {"PLATFORM_HOT_PATH_CONNECTIONS": "12"})
    assert from_env.hot_path_connections_for(2) == 12


def test_dotenv_is_read_under_the_environment(workdir: Path):
    (workdir / ".env").write_text(
        'PUBLIC_URL="https://from-file.example"\nNETUID=9\nSUBTENSOR_NETWORK=test\n'
    )
    settings = _resolved("serve", [], {"NETUID": "4"})
    assert (settings.base_url, settings.network, settings.netuid) == ("https://from-file.example", "test", 4)
    other = workdir / "other.env"
    other.write_text("NETUID=11\n")
    assert _resolved("serve", ["--env-file", str(other)], {}).netuid == 11


def test_migrate_finds_its_database_in_the_environment_or_dotenv(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
):
    from_file, from_env, from_flag = (workdir / f"{name}.sqlite" for name in ("file", "env", "flag"))
    (workdir / ".env").write_text(f"DATABASE_URL=sqlite:///{from_file}\n")
    assert main(["platform", "migrate"]) == 0
    monkeypatch.setenv("DATABASE_URL", str(from_env))
    assert main(["platform", "migrate"]) == 0
    assert main(["platform", "migrate", "--db", str(from_flag)]) == 0
    for path in (from_file, from_env, from_flag):
        database = Database(f"sqlite:///{path}")
        assert current_revision(database.engine) == head_revision()
        database.dispose()


def test_invite_on_the_host_takes_the_same_flags_as_serve(workdir: Path):
    flags = ["--db", "x.sqlite", "--host", "0.0.0.0", "--port", "9001", "--subtensor.network", "test"]
    flags += ["--subtensor.chain_endpoint", "ws://node:9944", "--netuid", "7"]
    served = _resolved("serve", flags, {})
    invited = _resolved("invite", ["--miner", ALICE, *flags], {})
    assert invited == served
    assert invited.base_url == "http://127.0.0.1:9001"


@pytest.mark.parametrize("command", [["serve"], ["invite", "--miner", ALICE, "--db", "x.sqlite"]])
def test_a_bad_network_name_exits_2_naming_the_flag(command: list[str], workdir: Path, capsys):
    assert main(["platform", *command, "--subtensor.network", "finny"]) == 2
    err = capsys.readouterr().err
    assert (
        "--subtensor.network (env SUBTENSOR_NETWORK): accepts finney, test, local" in err and "'finny'" in err
    )
    assert not (workdir / "x.sqlite").exists()  # nothing was written


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "SUBTENSOR_NETWORK",
            "finny",
            "--subtensor.network (env SUBTENSOR_NETWORK): accepts finney, test, local",
        ),
        ("NETUID", "52a", "--netuid (env NETUID): Input should be a valid integer"),
        ("PLATFORM_PORT", "70000", "--port (env PLATFORM_PORT): Input should be less than or equal to 65535"),
        (
            "SUBTENSOR_CHAIN_ENDPOINT",
            "http://node",
            "--subtensor.chain_endpoint (env SUBTENSOR_CHAIN_ENDPOINT)",
        ),
    ],
)
def test_a_bad_variable_exits_2_naming_flag_and_variable(
    variable, value, expected, workdir, monkeypatch, capsys
):
    monkeypatch.setenv(variable, value)
    assert main(["platform", "serve", "--db", str(workdir / "x.sqlite")]) == 2
    assert expected in capsys.readouterr().err
    assert not (workdir / "x.sqlite").exists()


def _wait_for_health(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the platform did not start within 60 s"
            time.sleep(0.2)


def test_invite_on_the_host_prints_the_port_the_platform_serves_at_and_no_debug_lines(
    tmp_path: Path, chain, register_hotkey, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)  # no .env of anyone's
    for name in ("DATABASE_URL", "PUBLIC_URL", "PLATFORM_HOST", "PLATFORM_PORT"):
        monkeypatch.delenv(name, raising=False)
    hotkey = register_hotkey().ss58_address
    port = free_port()
    db_path = tmp_path / "served.sqlite"
    chain_flags = ["--subtensor.network", str(chain.directory), "--netuid", str(chain.netuid)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dojo",
            "platform",
            "serve",
            "--db",
            str(db_path),
            "--port",
            str(port),
            *chain_flags,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        _wait_for_health(process, port)
        # The operator on the host gives the database, the miner and the chain: no URL, no port.
        invite = subprocess.run(
            [
                sys.executable,
                "-m",
                "dojo",
                "platform",
                "invite",
                "--db",
                str(db_path),
                "--miner",
                hotkey,
                *chain_flags,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert invite.returncode == 0, invite.stderr
        url = invite.stdout.strip()
        assert url.startswith(f"http://127.0.0.1:{port}/invite/inv_"), url
        assert "DEBUG" not in invite.stderr and "metagraph snapshot" not in invite.stderr, invite.stderr
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and hotkey in page.text
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


# --- serve --workers N: every process takes its share of the connections ------------------


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


class _Socket(NamedTuple):
    state: str  # 0A: listening, 01: a connection
    queued: int  # a listening socket's accept queue
    inode: str
    peer: int  # the other end's port (0 for a listening socket)


def _tcp(port: int) -> list[_Socket]:
    """Each IPv4 socket whose local port is ``port``."""
    rows = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, peer = (int(address.split(":")[1], 16) for address in fields[1:3])
            if local == port:
                rows.append(_Socket(fields[3], int(fields[4].split(":")[1], 16), fields[9], peer))
    return rows


def _accepted_from(port: int, peers: set[int]) -> list[str]:
    """The inodes of the open connections on local port ``port`` whose other end is on one of
    the ports ``peers`` (this test's own clients: another test's client may reach the same
    port, as ports are reused across the suite's processes)."""
    return [s.inode for s in _tcp(port) if s.state == "01" and s.peer in peers]


def _servers(pid: int, port: int) -> list[int]:
    """The child processes of ``pid`` that listen on ``port``."""
    listening = {s.inode for s in _tcp(port) if s.state == "0A"}
    return [child for child in _children(pid) if _socket_inodes(child) & listening]


def _until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; SO_REUSEPORT balances on Linux")
def test_every_server_process_takes_its_share_of_a_burst_of_connections(tmp_path: Path, chain):
    """A team of workers connecting at once, while one of the two server processes is busy:
    when it comes back, it serves its share of the connections instead of the first process
    having taken them all (which it did while both accepted from one socket)."""
    port = free_port()
    process = subprocess.Popen(
        [
            *serve_command(tmp_path / "served.sqlite", port, chain.directory, chain.netuid),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    clients: list[socket.socket] = []
    try:
        _wait_for_health(process, port)
        _until(lambda: len(_servers(process.pid, port)) == 2, "two server processes listening")
        servers = _servers(process.pid, port)
        first, second = servers
        os.kill(second, signal.SIGSTOP)
        try:
            for _ in range(64):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=30))

            def first_has_accepted_its_queue() -> bool:
                mine = _socket_inodes(first)
                return all(s.queued == 0 for s in _tcp(port) if s.state == "0A" and s.inode in mine)

            _until(first_has_accepted_its_queue, "the first process accepted what was queued for it")
        finally:
            os.kill(second, signal.SIGCONT)
        request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for client in clients:
            client.sendall(request)
        for client in clients:
            assert client.recv(4096).startswith(b"HTTP/1.1 200"), "every connection is answered"
        held = {pid: _socket_inodes(pid) for pid in servers}
        connections = _accepted_from(port, {client.getsockname()[1] for client in clients})
        assert len(connections) == 64
        holders = [[pid for pid in servers if inode in held[pid]] for inode in connections]
        assert all(len(pids) == 1 for pids in holders), "each connection is held by one process"
        shares = {pid: sum(pids == [pid] for pids in holders) for pid in servers}
        # The kernel hashes each connection to a process's socket: an even split is likeliest,
        # fewer than 10 of 64 on either side has a chance of some 4e-9.
        assert min(shares.values()) >= 10, shares

        # A process killed is started again on the same socket, and what reaches that
        # socket meanwhile waits for it rather than being refused.
        os.kill(second, signal.SIGKILL)
        _until(lambda: second not in _children(process.pid), "the killed process is reaped")
        late = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(16)]
        clients.extend(late)
        for client in late:
            client.sendall(request)
        for client in late:
            assert client.recv(4096).startswith(b"HTTP/1.1 200"), "every new connection is answered"
        assert len(_servers(process.pid, port)) == 2
    finally:
        for client in clients:
            client.close()
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
