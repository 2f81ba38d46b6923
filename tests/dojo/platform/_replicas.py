"""Several ``dojo platform serve`` processes on one PostgreSQL database behind HAProxy.

The test of a platform run as replicas: each replica is the real command in a process of
its own, HAProxy (Debian's package) balances the requests round robin and says which
replica answered (``X-Served-By``, set by this test's configuration, not by the platform),
and the replicas believe the balancer's ``X-Forwarded-For`` (``--forwarded-allow-ips``).

A request that names a replica (``X-Replica: r0``, also this test's configuration) goes to
that one while it is up: a test whose meaning is "this step on one replica, the next on the
other" says so, rather than counting on the balancer's turn, which a health check that
takes a replica out for a moment, or a retry, changes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dojo.localnet.net import free_port
from dojo.platform import serve_command

ROOT = Path(__file__).resolve().parents[3]
HAPROXY = shutil.which("haproxy")
SERVED_BY = "x-served-by"
PINNED_TO = "x-replica"

HAPROXY_CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A request is sent again elsewhere only when no replica took its connection: one that
    # reached a replica (which may have acted on it) is never repeated by the balancer.
    retries 3
    retry-on conn-failure
    option redispatch
    # A health check may take this long to be answered before its replica counts as down
    # (without it, the check interval, 200 ms, which a busy machine's replica can miss); a
    # replica that is gone refuses the check's connection at once, whatever this is.
    timeout check 10s

frontend platform
    bind 127.0.0.1:{port}
    option forwardfor
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    http-response set-header X-Served-By %s
{servers}
{pins}
"""


@dataclass
class Replica:
    name: str
    port: int
    command: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "LOGURU_LEVEL": "WARNING"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, cwd=ROOT, env=env, stdout=log, stderr=log)
        _wait_healthy(self.url, self.process, self.log)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no cleanup, connections cut mid-request."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@dataclass
class BalancedPlatform:
    """Replicas of one platform behind HAProxy; :attr:`url` is the balancer's."""

    database_url: str
    port: int
    replicas: list[Replica]
    workdir: Path
    haproxy: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BalancedPlatform:
        for replica in self.replicas:
            replica.start()
        servers = "\n".join(
            f"    server {r.name} 127.0.0.1:{r.port} check inter 200ms fall 1 rise 2" for r in self.replicas
        )
        config = self.workdir / "haproxy.cfg"
        pins = "\n".join(
            f"    use-server {r.name} if {{ req.hdr({PINNED_TO}) -m str {r.name} }}" for r in self.replicas
        )
        config.write_text(HAPROXY_CONFIG.format(port=self.port, servers=servers, pins=pins))
        log = (self.workdir / "haproxy.log").open("ab")
        assert HAPROXY is not None
        self.haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=log)
        log.close()
        self.wait_until_serving(len(self.replicas))
        return self

    def wait_until_serving(self, count: int, timeout: float = 30.0) -> None:
        """Until the balancer sends requests to ``count`` different replicas."""
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while len(seen) < count:
                assert self.haproxy is not None and self.haproxy.poll() is None, self._log("haproxy.log")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the balancer sent requests to {sorted(seen)} only")
                try:
                    response = http.get("/health")
                except httpx.TransportError:
                    time.sleep(0.05)
                    continue
                if response.status_code == 200:
                    seen.add(response.headers[SERVED_BY])
                else:
                    time.sleep(0.05)

    def restart(self, replica: Replica) -> None:
        replica.start()
        self.wait_until_serving(len(self.replicas))

    def stop(self) -> None:
        if self.haproxy is not None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=30)
        for replica in self.replicas:
            replica.stop()

    def _log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the replica exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the replica at {url} did not start: {log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.1)


def balanced_platform(
    database_url: str,
    chain_dir: Path,
    netuid: int,
    workdir: Path,
    replicas: int = 2,
    login_rate_limit: int = 10,
) -> BalancedPlatform:
    """``replicas`` processes of ``dojo platform serve`` on ``database_url`` (already
    migrated) behind HAProxy, not started."""
    port = free_port()
    made = []
    for n in range(replicas):
        replica_port = free_port()
        command = serve_command(
            database_url,
            replica_port,
            chain_dir,
            netuid,
            # Every replica signs the balancer's address into its log-in messages.
            "--public-url",
            f"http://127.0.0.1:{port}",
            "--forwarded-allow-ips",
            "127.0.0.1",
            "--login-rate-limit",
            str(login_rate_limit),
        )
        made.append(Replica(f"r{n}", replica_port, command, workdir / f"replica-{n}.log"))
    return BalancedPlatform(database_url, port, made, workdir)
