"""What a local network is doing, read and shown: the status of ``dojo localnet status``
and the live view of ``dojo localnet up``.

A *snapshot* is one dict, the shape ``dojo localnet status --json`` prints: the processes
(pid, alive), per miner tasks received, answered and scored, latest and moving score and
weight on chain, the counts of tasks sent, results collected, rounds scored and weights
set, the next deadline and the last weights (all of the first validator, ``validator``);
and ``validators``, one entry per validator with its stake, its counts and its weights on
chain, and its trust and dividend once the chain has computed an epoch, beside each
miner's ``consensus`` and ``incentive``. :class:`StatusReader` makes one from
``DIR/localnet.json`` (:func:`dojo.localnet.net.state_of`), the validators' databases (read
through :meth:`dojo.validator.store.TaskStore.status`) and the local chain.

On a terminal, :func:`show` keeps a rich ``Live`` table of the latest snapshot, read in a
thread every second so a busy database never freezes the view; otherwise it prints one
plain line per event, found by comparing consecutive snapshots (:func:`events`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from dojo.localnet.state import STATE_FILE, clean_exit, is_running, read_state, strays

if TYPE_CHECKING:
    from rich.console import RenderableType

    from template.chain.base import EpochView

READ_INTERVAL = 1.0


# --- reading ----------------------------------------------------------------------------------


class ValidatorDatabase:
    """One validator's database, read only: opened once it exists (the validator makes
    it), never created here, and kept open between reads."""

    def __init__(self, path: Path):
        self.path = path
        self._store: Any = None
        self._ready = False

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def state(self, status: dict[str, Any] | None) -> str:
        """ "absent", "starting" (tables still being made) or "ready"."""
        return "ready" if status is not None else "starting" if self.path.exists() else "absent"

    def read(self, now: datetime) -> tuple[dict[str, Any] | None, int, str | None]:
        """What the validator's database says; (None, 0, None) before the validator has
        made it, or while it is still creating its tables."""
        if self._store is None:
            if not self.path.is_file():
                return None, 0, None
            from dojo.validator.store import TaskStore

            self._store = TaskStore.read_only(self.path)
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from dojo.validator.models import Task, TaskStatus, WeightSet

        if not self._ready:
            if not self._store.ready():
                return None, 0, None
            self._ready = True
        with Session(self._store.engine) as db:
            # Counted before the status is read, so the last weights it shows are never older
            # than the sets counted (the event line names the block of the newest).
            weights_set = db.scalar(
                select(func.count()).select_from(WeightSet).where(WeightSet.outcome == "set")
            )
        status = self._store.status(now)
        with Session(self._store.engine) as db:
            deadline = db.scalar(
                select(func.min(Task.expire_at)).where(
                    Task.status.in_([TaskStatus.SENDING, TaskStatus.WAITING]), Task.expire_at > now
                )
            )
        return status, int(weights_set or 0), None if deadline is None else _iso(deadline, "milliseconds")


class StatusReader:
    """Reads snapshots of the local network in ``directory``; keeps the validators'
    databases and the chain open between reads."""

    def __init__(self, directory: Path, netuid: int = 1):
        self.directory = directory
        self.netuid = netuid
        self.validator_db = directory / "data" / "validator" / "validator.sqlite"
        self._databases: dict[str, ValidatorDatabase] = {}
        self._chain: Any = None

    def close(self) -> None:
        for database in self._databases.values():
            database.close()
        self._databases.clear()

    def _database(self, name: str) -> ValidatorDatabase:
        if name not in self._databases:
            self._databases[name] = ValidatorDatabase(self.directory / "data" / name / "validator.sqlite")
        return self._databases[name]

    def read(self, state: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """The snapshot for ``state`` (the ``localnet.json`` shape) as things are now."""
        now = now or datetime.now(timezone.utc)
        processes = [
            {
                "name": p["name"],
                "role": p["role"],
                "pid": p.get("pid"),
                "alive": is_running(p.get("pid"), p.get("start_time")),
                "exit_code": p.get("exit_code"),
                "restarts": p.get("restarts", 0),
                "last_exit_code": p.get("last_exit_code"),
                "restart_at": p.get("restart_at"),
                "gave_up": p.get("gave_up", False),
                "port": p.get("port"),
                "log": p.get("log"),
            }
            for p in state.get("processes", [])
        ]
        supervisor = state.get("supervisor") or {}
        running = is_running(supervisor.get("pid"), supervisor.get("start_time"))
        # A localnet.json of one validator only (written before there could be several).
        recorded = state.get("validators") or [state["validator"]]
        readings = {v["name"]: self._database(v["name"]).read(now) for v in recorded}
        first = state["validator"]["name"]
        status, weights_set, next_deadline = readings[first]
        block, chain_weights, epoch = self._chain_state([v["uid"] for v in recorded])
        by_uid = {m["uid"]: m for m in state.get("miners", [])}
        shares = _shares(chain_weights.get(state["validator"]["uid"], {}))
        miner_view = {m.uid: m for m in epoch.miners} if epoch is not None else {}
        validator_view = {v.uid: v for v in epoch.validators} if epoch is not None else {}
        per_hotkey = status["miners"] if status else {}
        miners = []
        for m in state.get("miners", []):
            row = per_hotkey.get(m["hotkey"], {})
            at_epoch = miner_view.get(m["uid"])
            miners.append(
                {
                    "name": m["name"],
                    "uid": m["uid"],
                    "hotkey": m["hotkey"],
                    "team": m.get("team"),
                    "backend": m.get("backend", "dojo"),
                    "received": row.get("accepted", 0),
                    "answered": row.get("answered", 0),
                    "scored": row.get("scored", 0),
                    "latest_score": row.get("latest_score"),
                    "moving_score": row.get("moving_score"),
                    "weight": shares.get(m["uid"], 0.0),
                    # The chain's Yuma consensus of the last epoch (None before the first).
                    "consensus": at_epoch.consensus if at_epoch else None,
                    "incentive": at_epoch.incentive if at_epoch else None,
                }
            )

        def hotkey_of(uid: int) -> str:
            return by_uid[uid]["hotkey"] if uid in by_uid else str(uid)

        validators = []
        for v in recorded:
            own, sets, _ = readings[v["name"]]
            own_tasks = own["tasks"] if own else {}
            own_last = own["last_weights"] if own else None
            view = validator_view.get(v["uid"])
            validators.append(
                {
                    "name": v["name"],
                    "uid": v["uid"],
                    "hotkey": v["hotkey"],
                    "stake": v.get("stake"),
                    "database": self._database(v["name"]).state(own),
                    "tasks_sent": int(own_tasks.get("total", 0)) - int(own_tasks.get("unsent", 0)),
                    "results_collected": own["results_collected"] if own else 0,
                    "rounds_scored": own["rounds_scored"] if own else 0,
                    "weights_set": sets,
                    "last_weights": None
                    if own_last is None
                    else {"block": own_last["block"], "at": own_last["attempted_at"]},
                    # Its latest weights on chain, as shares by miner hotkey.
                    "weights": {
                        hotkey_of(uid): w for uid, w in _shares(chain_weights.get(v["uid"], {})).items()
                    },
                    "trust": view.trust if view else None,
                    "dividend": view.dividend if view else None,
                }
            )
        tasks = status["tasks"] if status else {}
        last = status["last_weights"] if status else None
        if running:
            unsupervised: list[str] = []
        else:
            left = strays(Path(state.get("directory") or self.directory), state)
            unsupervised = [p["name"] for p in processes if p["alive"]] + [f"pid {pid}" for pid in left]
        database = self._database(first).state(status)
        return {
            "time": _iso(now),
            "directory": state.get("directory"),
            # Whether the supervisor (`dojo localnet up`) runs; "unsupervised": what runs
            # without it (it was killed), which `down` stops, recorded or not.
            "running": running,
            "unsupervised": unsupervised,
            "validator_db": database,  # "absent", "starting" (tables still being made), "ready"
            "started_at": state.get("started_at"),
            "stopped_at": state.get("stopped_at"),
            "block": block,
            "platform_url": state.get("platform_url"),
            "synthetic_url": state.get("synthetic_url"),
            "label_studio_url": state.get("label_studio_url"),
            "invite_url": state.get("invite_url"),
            "invite_for": state.get("invite_for"),
            "processes": processes,
            "tasks_sent": int(tasks.get("total", 0)) - int(tasks.get("unsent", 0)),
            "assignments_sent": status["assignments_sent"] if status else 0,
            "results_collected": status["results_collected"] if status else 0,
            "rounds_scored": status["rounds_scored"] if status else 0,
            "weights_set": weights_set,
            "tasks": tasks,
            "organic": status.get("organic") if status else None,
            "next_deadline": next_deadline,
            "last_round": status["last_round"] if status else None,
            "last_weights": None if last is None else {"block": last["block"], "at": last["attempted_at"]},
            "validator": state["validator"],
            "validators": validators,
            # The block of the chain's last epoch (consensus, incentive, trust); None before one.
            "epoch_block": epoch.block if epoch is not None else None,
            "miners": miners,
            "weights": {hotkey_of(uid): w for uid, w in shares.items()},
            "settings": state.get("settings", {}),
        }

    def _chain_state(
        self, validator_uids: list[int]
    ) -> tuple[int | None, dict[int, dict[int, int]], EpochView | None]:
        """The block, each validator's weights on chain, and the chain's last epoch (None
        while it has computed none, or cannot say)."""
        from template.chain.base import ChainUnavailable
        from template.chain.local import LocalChain

        try:
            if self._chain is None:
                self._chain = LocalChain(self.directory / "chain", self.netuid)
            block = self._chain.block()
            weights = {uid: self._chain.weights_of(uid) for uid in validator_uids}
            epoch = self._chain.epoch_view()
            # Block 0: no epoch yet, every figure 0; shown as none rather than as no trust.
            return block, weights, epoch if epoch.block > 0 else None
        except ChainUnavailable:
            return None, {}, None


def _shares(weights: dict[int, int]) -> dict[int, float]:
    total = sum(weights.values())
    return {uid: w / total for uid, w in weights.items()} if total else {}


def status(directory: Path) -> dict[str, Any]:
    """The snapshot of the local network in ``directory`` (``dojo localnet status``)."""
    state = read_state(directory)
    if state is None:
        raise FileNotFoundError(
            f"no localnet in {directory} ({STATE_FILE} is missing); start one with `dojo localnet up --dir {directory}`"
        )
    reader = StatusReader(directory, state.get("netuid", 1))
    try:
        return reader.read(state)
    finally:
        reader.close()


class Poller:
    """Reads a snapshot every ``interval`` seconds in a thread; :attr:`latest` is the last good one."""

    def __init__(self, read: Callable[[], dict[str, Any]], interval: float = READ_INTERVAL):
        self._read = read
        self._interval = interval
        self._stop = threading.Event()
        self.latest: dict[str, Any] | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="localnet-status", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latest = self._read()
                self.error = None
            except Exception as exc:  # a locked or half-made database: keep the last view, say why
                self.error = f"{type(exc).__name__}: {exc}"
                logger.warning("reading the localnet's status failed: {}", self.error)
            self._stop.wait(self._interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


# --- events -----------------------------------------------------------------------------------


def events(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """What happened between two snapshots, one line each (without the time)."""
    if before is None:
        if not (
            after["tasks_sent"]
            or after["results_collected"]
            or after["rounds_scored"]
            or after["weights_set"]
        ):
            return []
        return [
            f"so far: {after['tasks_sent']} tasks sent, {after['results_collected']} results collected, "
            f"{after['rounds_scored']} rounds scored, {after['weights_set']} weight sets"
        ]
    lines: list[str] = []
    tasks = after["tasks_sent"] - before["tasks_sent"]
    if tasks > 0:
        assignments = after["assignments_sent"] - before["assignments_sent"]
        if tasks == 1:
            lines.append(f"task sent to {assignments} miners ({after['tasks_sent']} in all)")
        else:
            lines.append(f"{tasks} tasks sent ({assignments} assignments, {after['tasks_sent']} in all)")
    results = after["results_collected"] - before["results_collected"]
    if results > 0:
        lines.append(f"results collected: {results} ({after['results_collected']} in all)")
    if after["rounds_scored"] > before["rounds_scored"]:
        last = after.get("last_round") or {}
        scores = ", ".join(
            f"{m['name']} {_score(m['latest_score'])}"
            for m in after["miners"]
            if m["latest_score"] is not None
        )
        agreement = last.get("mean_task_agreement")
        lines.append(
            f"round {last.get('round_id', after['rounds_scored'])} scored: {_plural(last.get('tasks'), 'task')}, "
            f"{_plural(last.get('miners'), 'miner')}, mean agreement {_score(agreement)}; scores {scores or '-'}"
        )
    several = len(after.get("validators") or []) > 1
    if after["weights_set"] > before["weights_set"] and not several:
        block = (after.get("last_weights") or {}).get("block")
        shares = ", ".join(f"{m['name']} {m['weight']:.3f}" for m in after["miners"])
        lines.append(f"weights set at block {block}: {shares}")
    if several:
        names = {m["hotkey"]: m["name"] for m in after["miners"]}
        had = {v["name"]: v for v in before.get("validators") or []}
        for v in after["validators"]:
            if v["weights_set"] > had.get(v["name"], {}).get("weights_set", 0):
                block = (v.get("last_weights") or {}).get("block")
                shares = ", ".join(
                    f"{names.get(hotkey, hotkey)} {w:.3f}" for hotkey, w in v["weights"].items()
                )
                lines.append(f"{v['name']} set weights at block {block}: {shares or '-'}")
    if _consensus(after) is not None and _consensus(after) != _consensus(before):
        trust = ", ".join(f"{v['name']} {_score(v['trust'])}" for v in after["validators"])
        incentive = ", ".join(f"{m['name']} {_score(m['incentive'])}" for m in after["miners"])
        lines.append(f"epoch at block {after.get('epoch_block')}: trust {trust}; incentive {incentive}")
    was = {p["name"]: p for p in before["processes"]}
    for p in after["processes"]:
        old = was.get(p["name"])
        if old is None:
            continue
        # Started again since the last look; or counted as started again at the last look
        # but not yet running then (the supervisor was starting it while the status was
        # read), so that this is the first look that sees it run.
        restarted = p.get("restarts", 0) > old.get("restarts", 0) or (
            p.get("restarts", 0) and not old["alive"]
        )
        if restarted and p["alive"]:
            # Its exit has a line of its own unless it came back between two looks.
            how = f" {_exit_words(p.get('last_exit_code'))};" if old["alive"] else ""
            lines.append(
                f"process {p['name']}{how} started again as pid {p['pid']} (restart {p['restarts']})"
            )
        elif old["alive"] and not p["alive"]:
            code = p.get("exit_code") if p.get("exit_code") is not None else p.get("last_exit_code")
            then = (
                "; not starting it again: it keeps exiting"
                if p.get("gave_up")
                else "; starting it again"
                if p.get("restart_at")
                else ""
            )
            lines.append(f"process {p['name']} (pid {p['pid']}) {_exit_words(code)}{then}; see {p['log']}")
    if after.get("unsupervised") and not before.get("unsupervised"):
        lines.append(
            f"the supervisor is gone; still running unsupervised: {', '.join(after['unsupervised'])}"
        )
    return lines


def _consensus(snap: dict[str, Any]) -> tuple[Any, ...] | None:
    """The chain's epoch figures of a snapshot, as the event line shows them (None before
    the first epoch): a new line only when one of them changed."""
    validators = snap.get("validators") or []
    if not any(v.get("trust") is not None for v in validators):
        return None
    return (
        tuple(_score(v.get("trust")) for v in validators),
        tuple(_score(m.get("incentive")) for m in snap["miners"]),
    )


def _exit_words(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        return f"was killed (signal {-code})"
    return f"exited with code {code}"


def _plural(n: int | None, word: str) -> str:
    return f"{n if n is not None else '?'} {word}{'' if n == 1 else 's'}"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _iso(value: datetime, timespec: str = "seconds") -> str:
    return value.astimezone(timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def _parse(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# --- the live view ----------------------------------------------------------------------------


def render(
    snap: dict[str, Any] | None, now: datetime | None = None, note: str | None = None
) -> RenderableType:
    """The status view of one snapshot: a header with the URLs, a row per miner, what the
    validator did, the processes."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    if snap is None:
        return Text("reading the localnet's status …", style="dim")
    now = now or datetime.now(timezone.utc)
    directory = snap.get("directory") or ""

    links = Table.grid(padding=(0, 2))
    links.add_column(style="bold")
    links.add_column(overflow="fold")
    if snap.get("platform_url"):
        links.add_row("worker platform", Text(snap["platform_url"], style="cyan"))
    if snap.get("invite_url"):
        links.add_row("invite link", Text(snap["invite_url"], style="cyan"))
        links.add_row(
            "",
            Text(f"one use: join {snap.get('invite_for')}'s team and rank tasks in the browser", style="dim"),
        )
    if snap.get("synthetic_url"):
        links.add_row("synthetic API", Text(snap["synthetic_url"], style="cyan"))
    if snap.get("label_studio_url"):
        links.add_row("Label Studio", Text(snap["label_studio_url"], style="cyan"))
    started = _parse(snap.get("started_at"))
    title = Text.assemble(
        ("Dojo localnet", "bold magenta"),
        f"  {directory}",
        f"  block {snap['block']}" if snap.get("block") is not None else "",
        f"  up {_seconds((now - started).total_seconds())}"
        if started and snap.get("running")
        else "  unsupervised"
        if snap.get("unsupervised")
        else "  stopped",
    )

    # Fits 80 columns: one space between columns, a bar of at most 10.
    miners = Table(expand=False, box=None, header_style="bold", pad_edge=False, padding=(0, 1, 0, 0))
    for name, justify in (
        ("miner", "left"),
        ("uid", "right"),
        ("team", "left"),
        ("received", "right"),
        ("answered", "right"),
        ("scored", "right"),
        ("latest", "right"),
        ("moving", "right"),
        ("weight", "right"),
        ("", "left"),
    ):
        miners.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    top = max((m["weight"] for m in snap["miners"]), default=0.0)
    for m in snap["miners"]:
        honest = (m.get("team") or "").endswith("honest")
        bar = "█" * round(10 * m["weight"]) if m["weight"] else ""
        # A miner on Label Studio: its team are annotators there (LS), not Dojo platform workers.
        team = (m.get("team") or "-") + (" LS" if m.get("backend") == "label-studio" else "")
        miners.add_row(
            m["name"],
            str(m["uid"]),
            Text(team, style="green" if honest else "yellow"),
            str(m["received"]),
            str(m["answered"]),
            str(m["scored"]),
            _score(m["latest_score"]),
            _score(m["moving_score"]),
            Text(f"{m['weight']:.3f}", style="bold" if m["weight"] and m["weight"] == top else ""),
            Text(bar, style="green" if honest else "yellow"),
        )

    consensus = _validators_table(snap)

    running = bool(snap.get("running"))
    unsupervised = snap.get("unsupervised") or []
    t = snap.get("tasks") or {}
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    if snap.get("validator_db") == "starting":
        facts.add_row("tasks", Text("starting: the validator is making its database", style="dim"))
    else:
        facts.add_row(
            "tasks",
            f"{snap['tasks_sent']} sent · {t.get('pending', 0)} with the workers · "
            f"{t.get('awaiting_collection', 0)} to collect · {t.get('scored', 0)} scored",
        )
    facts.add_row("results", f"{snap['results_collected']} collected · {snap['rounds_scored']} rounds scored")
    organic = snap.get("organic")
    if organic and organic.get("total"):
        facts.add_row(
            "organic",
            f"{organic['total']} accepted · {organic['queued']} queued · {organic['sent']} sent · "
            f"{organic['collected']} collected · {organic['scored']} scored · {organic['delivered']} delivered",
        )
    deadline = _parse(snap.get("next_deadline"))
    if running or unsupervised:
        facts.add_row(
            "next deadline",
            f"in {_seconds((deadline - now).total_seconds())}" if deadline else "none pending",
        )
    last = snap.get("last_weights")
    if last:
        at = _parse(last.get("at"))
        ago = f", {_seconds((now - at).total_seconds())} ago" if at else ""
        facts.add_row("last weights", f"block {last['block']}{ago} · {snap['weights_set']} sets so far")
    elif running:
        facts.add_row(
            "last weights", Text(f"none yet; {_first_weights(snap.get('settings') or {})}", style="dim")
        )
    else:
        facts.add_row("last weights", Text("none", style="dim"))

    procs: list[Text] = []
    for p in snap["processes"]:
        code = p.get("exit_code")
        again = f", restarted {p['restarts']}×" if p.get("restarts") else ""
        if p["alive"]:
            procs.append(Text.assemble(("● ", "green"), p["name"], (again, "yellow")))
        elif p.get("restart_at") and running:
            procs.append(
                Text(f"↻ {p['name']} (exited {p.get('last_exit_code')}; starting again)", style="yellow")
            )
        elif code is not None and clean_exit(p["role"], code) and not p.get("gave_up"):
            procs.append(Text(f"○ {p['name']}", style="dim"))
        else:
            state = "not running" if code is None else f"exited {code}"
            if p.get("gave_up"):
                state += "; kept exiting, not started again"
            procs.append(Text(f"✗ {p['name']} ({state})", style="red"))
    facts.add_row("processes", Columns(procs, padding=(0, 2)))

    if running:
        footer = Text(f"Ctrl-C stops everything · logs in {directory}/logs", style="dim")
    elif unsupervised:
        footer = Text(
            f"the supervisor (dojo localnet up) is gone; still running, not restarted: "
            f"{', '.join(unsupervised)}\n`dojo localnet down --dir {directory}` stops them",
            style="red",
        )
    else:
        stopped_at = _parse(snap.get("stopped_at"))
        when = f" {_seconds((now - stopped_at).total_seconds())} ago" if stopped_at else ""
        footer = Text(
            f"stopped{when} · logs in {directory}/logs\n`dojo localnet up --dir {directory}` resumes",
            style="dim",
        )
    parts: list[Any] = [
        links,
        Text(""),
        miners,
        *([Text(""), consensus] if consensus else []),
        Text(""),
        facts,
        Text(""),
        footer,
    ]
    if note:
        parts.append(Text(note, style="red"))
    return Panel(Group(*parts), title=title, title_align="left", border_style="magenta", expand=False)


def _validators_table(snap: dict[str, Any]) -> Any:
    """Each validator's stake, tasks, weight sets, trust and dividend, and its latest
    weights on chain per miner; under them the miners' consensus and incentive. None for a
    network of one validator before the chain has computed an epoch (the miners' table
    has its weights)."""
    from rich.table import Table
    from rich.text import Text

    validators = snap.get("validators") or []
    epoch = any(v.get("trust") is not None for v in validators)
    if len(validators) < 2 and not epoch:
        return None
    table = Table(expand=False, box=None, header_style="bold", pad_edge=False, padding=(0, 1, 0, 0))
    for name, justify in (
        ("validator", "left"),
        ("uid", "right"),
        ("stake", "right"),
        ("tasks", "right"),
        ("sets", "right"),
        ("trust", "right"),
        ("div.", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for m in snap["miners"]:
        table.add_column(m["name"], justify="right", no_wrap=True)
    for v in validators:
        stake = v.get("stake")
        table.add_row(
            v["name"],
            str(v["uid"]),
            "-" if stake is None else f"{stake:g}",
            str(v["tasks_sent"]),
            str(v["weights_set"]),
            _score(v.get("trust")),
            _score(v.get("dividend")),
            *(_score(v["weights"].get(m["hotkey"], 0.0)) if v["weights"] else "-" for m in snap["miners"]),
        )
    for label, key in (("consensus", "consensus"), ("incentive", "incentive")):
        table.add_row(
            Text(label, style="bold"), "", "", "", "", "", "", *(_score(m.get(key)) for m in snap["miners"])
        )
    return table


def _first_weights(settings: dict[str, Any]) -> str:
    window, deadline = settings.get("person_window"), settings.get("deadline")
    if isinstance(window, (int, float)) and isinstance(deadline, (int, float)) and window < deadline:
        return f"the first come once the first task is collected (about {window:g}s after it)"
    after = f" ({deadline:g}s)" if isinstance(deadline, (int, float)) else ""
    return f"the first come after the first deadline{after}"


def show(
    directory: Path,
    netuid: int,
    duration: float | None,
    state: Callable[[], dict[str, Any]],
    out: TextIO,
    step: Callable[[], bool] = lambda: True,
) -> None:
    """Show the network in ``directory`` until Ctrl-C (KeyboardInterrupt), ``duration``
    seconds, or until ``step`` (the supervisor's round, run every quarter second) says
    nothing is left to run."""
    reader = StatusReader(directory, netuid)
    poller = Poller(lambda: reader.read(state())).start()
    started = time.monotonic()

    def finished() -> bool:
        timed_out = duration is not None and time.monotonic() - started >= duration
        return timed_out or not step()

    try:
        if out.isatty():
            _live(poller, finished, out)
        else:
            _plain(poller, finished, out)
    except KeyboardInterrupt:
        pass
    finally:
        poller.close()
        reader.close()


def _live(poller: Poller, finished: Callable[[], bool], out: TextIO) -> None:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=out)
    with Live(
        console=console,
        refresh_per_second=2,
        get_renderable=lambda: render(poller.latest, note=poller.error),
        redirect_stderr=False,
    ):
        while not finished():
            time.sleep(0.25)


def _plain(poller: Poller, finished: Callable[[], bool], out: TextIO) -> None:
    previous: dict[str, Any] | None = None
    seen: dict[str, Any] | None = None
    while not finished():
        time.sleep(0.25)
        snap = poller.latest
        if snap is None or snap is seen:
            continue
        seen = snap
        clock = datetime.now().strftime("%H:%M:%S")
        for line in events(previous, snap):
            print(f"{clock} {line}", file=out, flush=True)
        previous = snap
    # What the last read saw before the end (a process that exited, say) is still news.
    if poller.latest is not None and poller.latest is not seen:
        for line in events(previous, poller.latest):
            print(f"{datetime.now().strftime('%H:%M:%S')} {line}", file=out, flush=True)
