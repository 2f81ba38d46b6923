"""A Label Studio server on loopback, for the localnet, the tests and the benchmark.

Label Studio (``label-studio`` on PyPI, Django with pins of its own) lives in a virtual
environment of its own, ``.label-studio/venv`` in the repository's folder, installed by
``scripts/label_studio.sh``; its pins never meet ours. It is started under a clean
environment (it reads bare names such as ``HOST``, ``PORT`` and ``USERNAME``), with every
call home turned off (analytics, Sentry, version checks, converter downloads, feature-flag
fetches), a first user and a known legacy API token, and its SQLite data in a directory of
its own. It moves to the next port on its own when its port is taken, so the port is
checked first.

Example::

    with LabelStudioServer(tmp / "ls", free_port()) as ls:
        ls.wait_ready()
        print(ls.url, ls.token)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
VERSION = "1.23.2"
DEFAULT_VENV = ROOT / ".label-studio" / "venv"
VERSION_MARKER = ".dojo-label-studio-version"
INSTALL_SCRIPT = ROOT / "scripts" / "label_studio.sh"

# Without these Label Studio phones home (LABEL-STUDIO.md has the measurements).
OFFLINE_ENV = {
    "COLLECT_ANALYTICS": "false",
    "SENTRY_DSN": "",
    "FRONTEND_SENTRY_DSN": "",
    "LATEST_VERSION_CHECK": "false",
    "CONVERTER_DOWNLOAD_RESOURCES": "false",
    "FEATURE_FLAGS_OFFLINE": "true",
}
# Label Studio refuses to call private and loopback addresses (its SSRF guard); the miner's
# webhook listener is on loopback beside it, so loopback alone is let through.
SSRF_ENV = {
    "USE_DEFAULT_BANNED_SUBNETS": "false",
    "USER_ADDITIONAL_BANNED_SUBNETS": ",".join(
        (
            "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
            "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
            "fc00::/7", "fe80::/10",
        )
    ),
}  # fmt: skip


class LabelStudioMissing(RuntimeError):
    """Label Studio is not installed where it was looked for; the message says how to install it."""


def executable(venv: Path = DEFAULT_VENV) -> Path:
    return venv / "bin" / "label-studio"


def installed(venv: Path = DEFAULT_VENV) -> bool:
    """Whether ``venv`` holds the pinned Label Studio, as ``scripts/label_studio.sh`` leaves it."""
    marker = venv / VERSION_MARKER
    return executable(venv).is_file() and marker.is_file() and marker.read_text().strip() == VERSION


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``port`` (connections of an earlier run in TIME_WAIT do not
    count: the server binds with SO_REUSEADDR, as this check does)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def server_environment(
    data_dir: Path, venv: Path, username: str, password: str, token: str
) -> dict[str, str]:
    """The whole environment Label Studio starts under: nothing of ours leaks in."""
    return {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(data_dir),
        "LANG": "C.UTF-8",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        **OFFLINE_ENV,
        **SSRF_ENV,
    }


class LabelStudioServer:
    """One Label Studio process: its data in ``data_dir``, listening on ``127.0.0.1:port``.

    ``token`` is the first user's legacy API token (generated when not given). Starting
    again in the same ``data_dir`` keeps its projects, users and token.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        venv: Path = DEFAULT_VENV,
        username: str = "owner@dojo.localhost",
        password: str | None = None,
        token: str | None = None,
        log_path: Path | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.port = port
        self.venv = venv
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.token = token or secrets.token_hex(20)
        self.log_path = log_path or self.data_dir / "label-studio.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(executable(self.venv)), "start", "--no-browser", "--internal-host", "127.0.0.1",
            "-p", str(self.port), "--enable-legacy-api-token",
        ]  # fmt: skip

    def start(self) -> None:
        if not installed(self.venv):
            raise LabelStudioMissing(
                f"Label Studio {VERSION} is not installed in {self.venv}; run {INSTALL_SCRIPT} (a few minutes)"
            )
        deadline = time.monotonic() + 10.0  # a stopped server's socket may linger a moment
        while not port_free(self.port):
            if time.monotonic() > deadline:
                # Label Studio would silently take the next port; refuse instead.
                raise RuntimeError(f"port {self.port} is taken; give Label Studio a free one")
            time.sleep(0.2)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = server_environment(self.data_dir, self.venv, self.username, self.password, self.token)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir, env=env,
                start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        try:
            # Streamed and closed unread: only the status counts.
            with httpx.stream("GET", f"{self.url}/health", timeout=2) as response:
                return response.status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Until ``GET /health`` answers 200 (tens of seconds; longer on its first start, which
        migrates its database)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"Label Studio exited early; see {self.log_path}:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"Label Studio did not answer on {self.url}/health within {timeout:g}s; see {self.log_path}"
        )

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM its process group (Label Studio starts children), SIGKILL after ``timeout``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Whatever it started in its group goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def __enter__(self) -> LabelStudioServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


__all__ = [
    "DEFAULT_VENV",
    "VERSION",
    "LabelStudioMissing",
    "LabelStudioServer",
    "installed",
    "port_free",
]
