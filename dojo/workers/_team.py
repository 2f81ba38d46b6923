"""A team of simulated workers: several :class:`SimulatedWorker` run together until told to stop."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from dojo.workers._behaviours import Behaviour, parse_mix
from dojo.workers._oracle import Oracle
from dojo.workers._worker import SimulatedWorker, WorkerStats
from template.private import write_private


@dataclass
class TeamStats:
    """A snapshot of what every worker of a team did, with totals."""

    workers: list[WorkerStats] = field(default_factory=list)

    def total(self, what: str) -> int:
        return sum(getattr(w, what) for w in self.workers)

    def to_dict(self) -> dict[str, Any]:
        keys = ("submitted", "skipped", "missed", "rate_limited", "errors")
        return {
            **{key: self.total(key) for key in keys},
            "failed": sum(w.failed is not None for w in self.workers),
            "workers": [asdict(w) for w in self.workers],
        }


class SimulatedTeam:
    """Workers with the given behaviours (or a mix spec, see :func:`parse_mix`) on one platform.

    The first ``len(invites)`` workers join by those invite links, the others by wallet
    and ``subscription_key``. ``seed`` makes every worker's answers reproducible.

    ``identities`` (a file, private to this user) keeps each wallet worker's key and
    session: a team started again with it is the same workers, and logs in only those
    whose session has ended. ``stand_in`` (seconds) adds one worker answering as the first,
    who takes only tasks due within that many seconds (see :class:`SimulatedWorker`).
    """

    def __init__(
        self,
        platform_url: str,
        subscription_key: str | None,
        behaviours: Sequence[Behaviour] | str,
        oracle: Oracle | None = None,
        *,
        invites: Sequence[str] = (),
        think_time: tuple[float, float] = (0.2, 1.0),
        poll_interval: float = 1.0,
        seed: int | None = None,
        timeout: float = 10.0,
        identities: str | os.PathLike[str] | None = None,
        stand_in: float | None = None,
    ):
        workers = parse_mix(behaviours) if isinstance(behaviours, str) else list(behaviours)
        if not workers:
            raise ValueError("a team needs at least one worker")
        if stand_in is not None and not stand_in > 0:
            raise ValueError("a stand-in takes tasks due within a positive number of seconds")
        low, high = think_time
        if not 0 <= low <= high:
            raise ValueError(f"think time must be 0 <= low <= high seconds, got {think_time}")
        if poll_interval <= 0:
            raise ValueError("the poll interval must be positive")
        if len(invites) > len(workers):
            raise ValueError(
                f"{len(invites)} invite links for {len(workers)} workers; give one per worker at most"
            )
        if subscription_key is None and (len(invites) < len(workers) or stand_in is not None):
            raise ValueError("workers without an invite link need the miner's subscription key")
        self._identities = Path(identities) if identities is not None else None
        known = _read_identities(self._identities)
        names = [f"worker-{i}" for i in range(len(workers))]
        if stand_in is not None:
            workers.append(workers[0])
            names.append("stand-in")
        self.workers = [
            SimulatedWorker(
                platform_url,
                behaviour,
                oracle,
                name=name,
                subscription_key=subscription_key,
                invite=invites[i] if i < len(invites) else None,
                think_time=(low, high),
                poll_interval=poll_interval,
                rng=random.Random(f"{seed}/{i}") if seed is not None else None,
                timeout=timeout,
                key=known.get(name, {}).get("key"),
                token=known.get(name, {}).get("token"),
                on_session=self._keep,
                due_within=stand_in if name == "stand-in" else None,
            )
            for i, (name, behaviour) in enumerate(zip(names, workers, strict=True))
        ]
        self._keep()  # the keys, before any log-in: a restart must find the same workers

    def _keep(self, _worker: SimulatedWorker | None = None) -> None:
        """Write every wallet worker's key and session token to the identities file."""
        if self._identities is None:
            return
        kept = {w.name: {"key": w.key, "token": w.token} for w in self.workers if w.invite is None}
        write_private(self._identities, json.dumps({"workers": kept}, indent=1))

    async def run(self, stop: asyncio.Event) -> None:
        """Run every worker until ``stop`` is set (or until none can go on)."""
        await run_members(self.workers, stop)

    def stats(self) -> TeamStats:
        return TeamStats([replace(worker.stats) for worker in self.workers])


class Member(Protocol):
    """A simulated worker of any platform, as its team runs it."""

    @property
    def name(self) -> str: ...

    @property
    def stats(self) -> WorkerStats: ...

    async def run(self, stop: asyncio.Event) -> None: ...


async def run_members(members: Sequence[Member], stop: asyncio.Event) -> None:
    """Run every member until ``stop`` is set; one member's bug stops that member only."""
    await asyncio.gather(*(_guarded(member, stop) for member in members))


async def _guarded(member: Member, stop: asyncio.Event) -> None:
    try:
        await member.run(stop)
    except Exception as exc:  # one member's bug must not stop its team
        member.stats.errors += 1
        member.stats.failed = f"{type(exc).__name__}: {exc}"
        logger.opt(exception=exc).error("{} stopped on an unexpected error", member.name)


def _read_identities(path: Path | None) -> dict[str, dict[str, str]]:
    if path is None or not path.exists():
        return {}
    try:
        workers = json.loads(path.read_text())["workers"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not an identities file ({exc}); move it away to start new workers"
        ) from None
    if not isinstance(workers, dict):
        raise ValueError(f"{path} is not an identities file; move it away to start new workers")
    return workers
