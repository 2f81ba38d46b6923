"""Weights: every weight vector the validator tried to set, and the chain's answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dojo.validator.models import (
    WeightSet,
)
from dojo.validator.store._base import StoreBase, _iso


class WeightRecords(StoreBase):
    """Each ``set_weights`` attempt: the vector, the block, the outcome."""

    def record_weights(
        self,
        *,
        attempted_at: datetime,
        block: int | None,
        uids: Sequence[int],
        weights: Sequence[int],
        hotkeys: Sequence[str],
        version_key: int,
        outcome: str,
        detail: str | None,
        attempts: int,
    ) -> None:
        with self._sessions.begin() as db:
            db.add(
                WeightSet(
                    attempted_at=attempted_at,
                    block=block,
                    uids=list(uids),
                    weights=list(weights),
                    hotkeys=list(hotkeys),
                    version_key=version_key,
                    outcome=outcome,
                    detail=detail,
                    attempts=attempts,
                )
            )

    def last_weights_block(self) -> int | None:
        """The block of the last weights the chain accepted."""
        with self._sessions.begin() as db:
            return db.scalar(
                select(WeightSet.block)
                .where(WeightSet.outcome == "set")
                .order_by(WeightSet.weight_set_id.desc())
                .limit(1)
            )


def _weights_view(row: WeightSet) -> dict[str, Any]:
    total = sum(row.weights) or 1
    return {
        "attempted_at": _iso(row.attempted_at),
        "block": row.block,
        "outcome": row.outcome,
        "detail": row.detail,
        "weights": {h: w / total for h, w in zip(row.hotkeys, row.weights, strict=True)},
    }
