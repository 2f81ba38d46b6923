"""What a simulated worker answers: its behaviour, the worker-mix spec, and the result data.

The behaviours are the incentive simulator's (:mod:`dojo.simulate`) acting on one task at a
time, with the simulator's default parameters:

- ``honest`` (``noise``): ranks by true rank + N(0, noise²); 0 ranks exactly by the truth.
- ``random``: a uniformly random ranking.
- ``constant``: the completions in the order shown, whatever the task.
- ``reverse``: the true order reversed.
- ``lazy`` (``participation``, ``noise``): honest on a random share ``participation`` of
  its tasks; skips the rest.

A behaviour that needs the true order and gets none from its oracle ranks at random.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dojo.simulate import BEHAVIOURS as SIMULATOR_BEHAVIOURS

# Parameter names and defaults; the defaults are the simulator's, so a "honest" worker
# here is the simulator's honest worker.
BEHAVIOURS: dict[str, dict[str, float]] = {
    "honest": {"noise": float(SIMULATOR_BEHAVIOURS["honest"]["noise"])},
    "random": {},
    "constant": {},
    "reverse": {},
    "lazy": {
        "participation": float(SIMULATOR_BEHAVIOURS["lazy"]["participation"]),
        "noise": float(SIMULATOR_BEHAVIOURS["lazy"]["noise"]),
    },
}
NEEDS_TRUTH = frozenset({"honest", "reverse", "lazy"})
MAX_WORKERS = 1000
MIX_EXAMPLE = "honest:2,random:1 or honest(noise=0.5):2,lazy(participation=0.3)"

_ENTRY = re.compile(r"(?P<name>[A-Za-z_]\w*)\s*(?:\((?P<params>[^()]*)\))?\s*(?::\s*(?P<count>\S+))?")


class WorkerSpecError(ValueError):
    """A worker mix or behaviour that cannot be used; the message says what and how to fix it."""


class UnsupportedTask(ValueError):
    """A task this worker cannot answer (a criterion it does not know)."""


@dataclass(frozen=True)
class Behaviour:
    """One worker's way of answering; ``params`` are filled with the defaults and checked."""

    name: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in BEHAVIOURS:
            raise WorkerSpecError(f"unknown behaviour {self.name!r}; use one of {', '.join(BEHAVIOURS)}")
        allowed = BEHAVIOURS[self.name]
        extra = set(self.params) - set(allowed)
        if extra:
            known = ", ".join(allowed) if allowed else "none"
            raise WorkerSpecError(
                f"{self.name!r} takes no parameter {', '.join(sorted(extra))}; its parameters: {known}"
            )
        try:
            merged = {**allowed, **{k: float(v) for k, v in self.params.items()}}
        except (TypeError, ValueError):
            raise WorkerSpecError(
                f"{self.name}: parameters must be numbers, got {dict(self.params)}"
            ) from None
        for key, value in merged.items():
            if not math.isfinite(value):
                raise WorkerSpecError(f"{self.name}: {key} must be a finite number, got {value}")
        if merged.get("noise", 0.0) < 0:
            raise WorkerSpecError(f"{self.name}: noise is a standard deviation and must be >= 0")
        if not 0.0 <= merged.get("participation", 0.0) <= 1.0:
            raise WorkerSpecError(f"{self.name}: participation must be within [0, 1]")
        object.__setattr__(self, "params", merged)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return f"{self.name}({','.join(f'{k}={v:g}' for k, v in self.params.items())})"

    @property
    def needs_truth(self) -> bool:
        return self.name in NEEDS_TRUTH

    def takes_task(self, rng: random.Random) -> bool:
        """Whether to answer this task (False: skip it); only ``lazy`` ever skips."""
        return self.name != "lazy" or rng.random() < self.params["participation"]

    def order(self, cids: Sequence[str], truth: Mapping[str, int] | None, rng: random.Random) -> list[str]:
        """The completion ids best first. ``truth``: true rank by id (1 = best), or None."""
        cids = list(cids)
        if self.name == "constant":
            return cids
        if self.name == "random" or truth is None:
            rng.shuffle(cids)
            return cids
        # Ids the oracle does not know sit in the middle, where they cost least.
        middle = (len(cids) + 1) / 2
        true = {cid: float(truth.get(cid, middle)) for cid in cids}
        if self.name == "reverse":
            key = {cid: -rank for cid, rank in true.items()}
        else:
            noise = self.params["noise"]
            key = {cid: rank + (rng.gauss(0.0, noise) if noise > 0 else 0.0) for cid, rank in true.items()}
        # A random tie-break, so tied true ranks do not always favour the first shown.
        tie = {cid: rng.random() for cid in cids}
        return sorted(cids, key=lambda cid: (key[cid], tie[cid]))


def result_data(criteria: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[dict[str, Any]]:
    """The ``resultData`` of a submission: one entry per criterion, all agreeing with ``order``.

    A multi-score criterion gets scores spread evenly from ``max`` (best) to ``min`` (worst).
    """
    n = len(order)
    out: list[dict[str, Any]] = []
    for criterion in criteria:
        kind = criterion.get("type")
        if kind == "ranking":
            out.append({"type": "ranking", "value": {cid: rank for rank, cid in enumerate(order, start=1)}})
        elif kind == "multi-score":
            low, high = float(criterion["min"]), float(criterion["max"])
            step = (high - low) / (n - 1) if n > 1 else 0.0
            scores = {cid: min(high, max(low, high - i * step)) for i, cid in enumerate(order)}
            if n > 1:
                scores[order[-1]] = low  # exactly the bound, whatever the rounding
            out.append({"type": "multi-score", "value": scores})
        else:
            raise UnsupportedTask(f"criterion {kind!r} is not one a simulated worker can answer")
    return out


def _split_top_level(spec: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(spec):
        if char == "(":
            depth += 1
            if depth > 1:
                raise WorkerSpecError(f"worker mix {spec!r}: parentheses do not nest")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise WorkerSpecError(f"worker mix {spec!r}: ')' without '('")
        elif char == "," and depth == 0:
            parts.append(spec[start:i])
            start = i + 1
    if depth:
        raise WorkerSpecError(f"worker mix {spec!r}: '(' without ')'")
    parts.append(spec[start:])
    return parts


def _params(entry: str, text: str) -> dict[str, float]:
    params: dict[str, float] = {}
    for item in text.split(","):
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key or not value:
            raise WorkerSpecError(
                f"worker mix entry {entry!r}: write parameters as name=number, got {item!r}"
            )
        if key in params:
            raise WorkerSpecError(f"worker mix entry {entry!r}: parameter {key!r} given twice")
        try:
            params[key] = float(value)
        except ValueError:
            raise WorkerSpecError(f"worker mix entry {entry!r}: {key}={value!r} is not a number") from None
    return params


def parse_mix(spec: str) -> list[Behaviour]:
    """The workers of a mix such as ``honest:2,random:1`` or ``honest(noise=0.5):2``, one per worker.

    Grammar: ``entry ("," entry)*``; ``entry = name ["(" key=number ("," key=number)* ")"] [":" count]``;
    ``count`` defaults to 1; spaces are allowed between tokens.
    """
    if not spec or not spec.strip():
        raise WorkerSpecError(f"the worker mix is empty; write e.g. {MIX_EXAMPLE}")
    workers: list[Behaviour] = []
    for raw in _split_top_level(spec):
        entry = raw.strip()
        match = _ENTRY.fullmatch(entry)
        if not entry or match is None:
            raise WorkerSpecError(
                f"worker mix {spec!r}: cannot read entry {entry!r}; write e.g. {MIX_EXAMPLE}"
            )
        params = _params(entry, match["params"]) if match["params"] is not None else {}
        try:
            behaviour = Behaviour(match["name"], params)
        except WorkerSpecError as exc:
            raise WorkerSpecError(f"worker mix entry {entry!r}: {exc}") from None
        count_text = match["count"] or "1"
        if re.fullmatch(r"[0-9]+", count_text) is None or int(count_text) < 1:
            raise WorkerSpecError(f"worker mix entry {entry!r}: the count must be a whole number >= 1")
        workers.extend([behaviour] * int(count_text))
        if len(workers) > MAX_WORKERS:
            raise WorkerSpecError(f"worker mix {spec!r}: more than {MAX_WORKERS} workers")
    return workers
