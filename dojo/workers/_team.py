"""A team of simulated workers: several :class:`SimulatedWorker` run together until told to stop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from loguru import logger

from dojo.workers._behaviours import Behaviour, parse_mix
from dojo.workers._oracle import Oracle
from dojo.workers._worker import SimulatedWorker, WorkerStats


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
    ):
        workers = parse_mix(behaviours) if isinstance(behaviours, str) else list(behaviours)
        if not workers:
            raise ValueError("a team needs at least one worker")
        low, high = think_time
        if not 0 <= low <= high:
            raise ValueError(f"think time must be 0 <= low <= high seconds, got {think_time}")
        if poll_interval <= 0:
            raise ValueError("the poll interval must be positive")
        if len(invites) > len(workers):
            raise ValueError(
                f"{len(invites)} invite links for {len(workers)} workers; give one per worker at most"
            )
        if subscription_key is None and len(invites) < len(workers):
            raise ValueError("workers without an invite link need the miner's subscription key")
        self.workers = [
            SimulatedWorker(
                platform_url,
                behaviour,
                oracle,
                name=f"worker-{i}",
                subscription_key=subscription_key,
                invite=invites[i] if i < len(invites) else None,
                think_time=(low, high),
                poll_interval=poll_interval,
                rng=random.Random(f"{seed}/{i}") if seed is not None else None,
                timeout=timeout,
            )
            for i, behaviour in enumerate(workers)
        ]

    async def run(self, stop: asyncio.Event) -> None:
        """Run every worker until ``stop`` is set (or until none can go on)."""
        await asyncio.gather(*(self._guarded(worker, stop) for worker in self.workers))

    @staticmethod
    async def _guarded(worker: SimulatedWorker, stop: asyncio.Event) -> None:
        try:
            await worker.run(stop)
        except Exception as exc:  # one worker's bug must not stop its team
            worker.stats.errors += 1
            worker.stats.failed = f"{type(exc).__name__}: {exc}"
            logger.opt(exception=exc).error("{} stopped on an unexpected error", worker.name)

    def stats(self) -> TeamStats:
        return TeamStats([replace(worker.stats) for worker in self.workers])
