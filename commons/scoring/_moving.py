"""Moving scores: the per-hotkey moving average of round scores that becomes the chain
weights, with its versioned, atomically saved state."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from template.chain.weights import WeightRules, weights_for_chain
from template.private import write_private

STATE_VERSION = 1


class StateVersionError(ValueError):
    """Saved scoring state of a version this code cannot read (newer, or unknown)."""


@dataclass
class _MinerRecord:
    uid: int
    score: float
    rounds: int


class MovingScores:
    """Per-hotkey exponential moving average of round scores, and the weights it implies.

    ``score ← (1 - α) · score + α · round_score``, starting from 0 for every new hotkey.
    Miners are keyed by hotkey and remember their uid: a hotkey seen on a different uid,
    or a uid now held by a different hotkey, starts again from 0 (a new registration
    inherits nothing). All methods take one lock, so the validator can update from the
    scoring thread and snapshot (``to_dict``/``save``) from another.

    State (``to_dict``): ``{"version": 1, "alpha": α, "miners": {hotkey: {"uid", "score",
    "rounds"}}}``. ``from_dict`` reads every version up to :data:`STATE_VERSION` through
    the migrations in ``_MIGRATIONS`` and refuses newer ones with :class:`StateVersionError`.
    """

    def __init__(self, alpha: float = 0.1):
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = float(alpha)
        self._miners: dict[str, _MinerRecord] = {}
        self._lock = threading.RLock()

    def _reset_conflicts(self, hotkey: str, uid: int) -> None:
        record = self._miners.get(hotkey)
        if record is not None and record.uid != uid:
            del self._miners[hotkey]
        for other in [h for h, r in self._miners.items() if r.uid == uid and h != hotkey]:
            del self._miners[other]

    def update(
        self, hotkeys: Sequence[str], uids: Sequence[int], round_scores: Sequence[float] | np.ndarray
    ) -> None:
        """Fold one round's per-miner scores (e.g. :meth:`RoundResult.miner_scores`) in."""
        scores = np.nan_to_num(np.asarray(round_scores, dtype=np.float64), nan=0.0)
        if not len(hotkeys) == len(uids) == scores.size:
            raise ValueError(f"{len(hotkeys)} hotkeys, {len(uids)} uids and {scores.size} scores")
        if len(set(uids)) != len(uids) or len(set(hotkeys)) != len(hotkeys):
            raise ValueError("a uid or hotkey appears twice in one update")
        with self._lock:
            for hotkey, uid, s in zip(hotkeys, uids, np.clip(scores, 0.0, 1.0), strict=True):
                self._reset_conflicts(hotkey, int(uid))
                record = self._miners.setdefault(hotkey, _MinerRecord(int(uid), 0.0, 0))
                record.score = (1.0 - self.alpha) * record.score + self.alpha * float(s)
                record.rounds += 1

    def sync(self, uid_to_hotkey: Mapping[int, str]) -> None:
        """Forget every miner whose (uid, hotkey) is no longer on the metagraph."""
        with self._lock:
            for hotkey in [h for h, r in self._miners.items() if uid_to_hotkey.get(r.uid) != h]:
                logger.info(
                    "scoring: dropping hotkey {} (uid {}): deregistered or replaced",
                    hotkey,
                    self._miners[hotkey].uid,
                )
                del self._miners[hotkey]

    def scores(self) -> dict[str, float]:
        """Moving score by hotkey."""
        with self._lock:
            return {h: r.score for h, r in self._miners.items()}

    def uid_scores(self, n_neurons: int) -> np.ndarray:
        """Moving scores as a ``(n_neurons,)`` array by uid; 0 for uids not scored."""
        out = np.zeros(n_neurons)
        with self._lock:
            for record in self._miners.values():
                if 0 <= record.uid < n_neurons:
                    out[record.uid] = record.score
        return out

    def weights(self, n_neurons: int, rules: WeightRules | None = None) -> tuple[list[int], list[int]]:
        """The u16 ``(uids, weights)`` to set on chain, by ``template.chain.weights`` rules.

        Scores are normalised under the subnet's max weight limit, then max-upscaled to
        u16 with zeros dropped (``weights_for_chain``). No score at all gives no weights.
        """
        scores = self.uid_scores(n_neurons)
        if not np.any(scores > 0):
            return [], []
        return weights_for_chain(list(range(n_neurons)), scores, rules or WeightRules())

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": STATE_VERSION,
                "alpha": self.alpha,
                "miners": {
                    h: {"uid": r.uid, "score": r.score, "rounds": r.rounds} for h, r in self._miners.items()
                },
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MovingScores:
        version = data.get("version")
        if not isinstance(version, int):
            raise StateVersionError("scoring state has no integer 'version'; it is not a MovingScores state")
        if version > STATE_VERSION or version < 1:
            raise StateVersionError(
                f"scoring state version {version} is not readable by this code (reads 1..{STATE_VERSION}); "
                "upgrade the validator or move the state file aside"
            )
        state = dict(data)
        while state["version"] < STATE_VERSION:
            state = _MIGRATIONS[state["version"]](state)
        out = cls(alpha=float(state["alpha"]))
        for hotkey, rec in state["miners"].items():
            out._miners[str(hotkey)] = _MinerRecord(int(rec["uid"]), float(rec["score"]), int(rec["rounds"]))
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON atomically (temporary file in the same folder, then rename),
        private to this user (``template.private.write_private``)."""
        write_private(path, json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | os.PathLike[str], alpha: float = 0.1) -> MovingScores:
        """Read a state written by :meth:`save`; a missing file gives a fresh state."""
        target = Path(path)
        if not target.exists():
            return cls(alpha=alpha)
        return cls.from_dict(json.loads(target.read_text()))


# Migrations from version v to v + 1, applied in order by ``MovingScores.from_dict``.
# Version 1 is the first; add ``1: _v1_to_v2`` here, with a test, when the format changes.
_MIGRATIONS: dict[int, Any] = {}
