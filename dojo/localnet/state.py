"""What a local network in a directory is, as every part of :mod:`dojo.localnet` reads it:
its record ``DIR/localnet.json`` (:func:`read_state`, :func:`write_state`), the kinds of
process it runs (:data:`KINDS`) and which of them a clean exit means stopped well
(:func:`clean_exit`), and which processes are still its own (:func:`is_running`,
:func:`strays`, by :data:`MARKER_ENV`).

The network itself (:mod:`dojo.localnet.net`) writes the record and the view
(:mod:`dojo.localnet.view`) reads it. The imports go one way: ``net`` imports ``view`` and
this module, ``view`` imports only this module, and this module neither
(``tests/test_layering.py``).
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from template.private import write_private

STATE_FILE = "localnet.json"
LOCK_FILE = "localnet.lock"


@dataclass(frozen=True)
class ProcessKind:
    """What the local network knows of one kind of process besides its command line
    (:meth:`dojo.localnet.net.LocalNet.command`): how people read its name, and which exit
    codes mean that it stopped cleanly when asked to. A new kind is a row of :data:`KINDS`, a
    branch of :meth:`LocalNet.command` and, if others wait for it, a line in
    :meth:`LocalNet.start`."""

    role: str
    label: str  # in "stopping: workers, validator, miners, …"
    # uvicorn (the platform, the synthetic API) and Label Studio re-raise the SIGTERM they handled.
    clean_codes: tuple[int, ...] = (0,)


# In the order they start; they stop in the reverse (the organic caller and workers first,
# the platform last).
KINDS = (
    ProcessKind("platform", "platform", clean_codes=(0, -signal.SIGTERM)),
    # A miner on Label Studio (--miner-backends) has its server and a team of annotators.
    ProcessKind("labelstudio", "Label Studio", clean_codes=(0, -signal.SIGTERM)),
    ProcessKind("synthetic", "synthetic API", clean_codes=(0, -signal.SIGTERM)),
    ProcessKind("miner", "miners"),
    ProcessKind("validator", "validators"),
    ProcessKind("workers", "workers"),
    ProcessKind("annotators", "annotators"),
    ProcessKind("organic", "organic caller"),
)
KIND = {k.role: k for k in KINDS}
START_ORDER = tuple(k.role for k in KINDS)
STOP_ORDER = tuple(reversed(START_ORDER))


# Every process of a local network has this variable, naming the network's directory: what
# `status` and `down` find with it and have no record of (a supervisor killed between
# starting a process and writing its pid down) is still theirs to show and stop.
MARKER_ENV = "DOJO_LOCALNET"
# The organic caller's API key and the key's webhook secret, which the network hands it in
# its environment, not on a command line every local user reads with ps (``dojo organic``
# reads the key from the same variable, this name).
ORGANIC_KEY_ENV, ORGANIC_SECRET_ENV = "DOJO_ORGANIC_KEY", "DOJO_ORGANIC_WEBHOOK_SECRET"


def clean_exit(role: str, code: int) -> bool:
    """Whether a process of ``role`` that was asked to stop stopped cleanly."""
    return code in KIND[role].clean_codes


# --- which process is ours ------------------------------------------------------------------


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as the kernel counts it; None when no such process is
    running (a zombie counts as gone). With the pid it names one process for good: a pid
    the system hands out again gets another start time."""
    if pid <= 0:
        return None
    if Path("/proc/self/stat").exists():
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # Field 2 (the command) may hold spaces and parentheses: count from its last ')'.
        fields = text[text.rindex(")") + 2 :].split()
        state, start = fields[0], fields[19]  # fields 3 and 22 of proc(5)
        return None if state in ("Z", "X") else start
    result = subprocess.run(["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True)
    line = result.stdout.strip()
    if result.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line.split(None, 1)[1] if " " in line else line


def is_running(pid: int | None, start: str | None) -> bool:
    """Whether ``pid`` is still the process that started at ``start``."""
    return pid is not None and start is not None and process_start(pid) == start


def running_processes(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The processes of ``state`` (the supervisor among them) that still run."""
    if not state:
        return []
    records = [state.get("supervisor") or {}] + list(state.get("processes", []))
    return [r for r in records if is_running(r.get("pid"), r.get("start_time"))]


def marked_processes(directory: Path) -> list[tuple[int, int]]:
    """(pid, process group) of every running process whose environment names the network
    in ``directory`` (:data:`MARKER_ENV`); Linux only (elsewhere none)."""
    if not Path("/proc/self/environ").exists():
        return []
    wanted = f"{MARKER_ENV}={directory.resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            text = (entry / "stat").read_text()
        except OSError:  # gone meanwhile, or another user's
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            found.append((int(entry.name), int(fields[2])))
    return found


def strays(directory: Path, state: dict[str, Any] | None) -> list[int]:
    """Processes of the network in ``directory`` that no running record of ``state`` names,
    nor has started (same process group): a supervisor killed between starting a process
    and writing it down leaves one."""
    live = {r["pid"] for r in running_processes(state)}
    return [pid for pid, group in marked_processes(directory) if pid not in live and group not in live]


# --- DIR/localnet.json ----------------------------------------------------------------------


def read_state(directory: Path) -> dict[str, Any] | None:
    """What the last ``up`` in ``directory`` wrote, or None if none ran there."""
    path = directory / STATE_FILE
    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"{path} is not valid JSON ({exc}); delete it if no localnet runs there") from None
    return state


def write_state(directory: Path, state: dict[str, Any]) -> None:
    write_private(directory / STATE_FILE, json.dumps(state, indent=1))
