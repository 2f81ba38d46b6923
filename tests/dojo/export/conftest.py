"""Fixtures for the export tests: a validator database of each kind, filled through the
validator's own store (tasks written, sent, collected and scored as the validator does)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dojo.validator.models import CollectStatus, SendStatus
from dojo.validator.rounds import score_inputs
from dojo.validator.store import (
    AcceptedResult,
    CollectionOutcome,
    NewAssignment,
    NewCompletion,
    NewTask,
    SendOutcome,
    TaskStore,
)
from template.clock import utcnow

# `datasets` reads local files only here: never the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

MINERS = [
    (1, "5HotkeyAlphaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    (2, "5HotkeyBravoooooooooooooooooooooooooooooooooooooo"),
    (3, "5HotkeyCharlieeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"),
    (4, "5HotkeyDeltaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
]


@pytest.fixture(autouse=True)
def _hub_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # its cache too: nothing outside the test


def code(name: str, body: str) -> dict[str, Any]:
    return {"kind": "code", "files": [{"filename": name, "content": body, "language": "html"}]}


def content_of(kind: str, label: str) -> dict[str, Any]:
    """A completion of ``kind`` whose text (or picture) says ``label``."""
    if kind == "text":
        return {"kind": "text", "text": f"The answer: {label}"}
    if kind == "dialogue":
        return {
            "kind": "dialogue",
            "turns": [
                {"role": "user", "message": "Where do we meet?"},
                {"role": "assistant", "message": f"At {label}."},
            ],
        }
    if kind == "image":
        import base64
        import io
        import zlib

        from PIL import Image

        out = io.BytesIO()
        shade = zlib.crc32(label.encode()) % 200
        Image.new("RGB", (8, 6), (shade, 40, 200 - shade)).save(out, "PNG")
        return {
            "kind": "image",
            "media_type": "image/png",
            "data": base64.b64encode(out.getvalue()).decode(),
            "width": 8,
            "height": 6,
            "alt": "",
        }
    return code("index.html", f"<p>{label}</p>")


@dataclass
class Planned:
    task_id: str
    completion_ids: list[str]
    originals: list[dict[str, Any] | None]
    sent: list[dict[str, Any]]


class ScoredTasks:
    """Writes tasks through :class:`TaskStore` and scores them in rounds, as the validator does.

    ``add(workers)``: ``workers`` maps a miner's hotkey to its workers' rankings, each a list
    of ranks in the task's completion order (1 = best); a miner given ``None`` is assigned
    the task and returns nothing. ``rationales`` maps a hotkey to its workers' rationales.
    """

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self.count = 0
        self.clock = utcnow() - timedelta(days=1)

    def add(
        self,
        workers: dict[str, list[list[float]] | None],
        *,
        n: int = 4,
        original: bool = True,
        created_at: datetime | None = None,
        criteria: list[dict[str, Any]] | None = None,
        ground_truth: list[int | None] | None = None,
        rationales: dict[str, list[str | None]] | None = None,
        kind: str = "code",
    ) -> Planned:
        k = self.count
        self.count += 1
        self.clock += timedelta(seconds=1)
        created = created_at or self.clock
        cids = [f"t{k}c{i}" for i in range(n)]
        if kind == "code":
            sent = [
                code("index.html", f"<script>var v{k}_{i} = 'obfuscated {i}';</script>") for i in range(n)
            ]
            originals = [
                code("index.html", f"<script>const answer{i} = 'original {k}.{i}';</script>")
                if original
                else None
                for i in range(n)
            ]
        else:
            sent = [content_of(kind, f"sent {k}.{i}") for i in range(n)]
            originals = [content_of(kind, f"original {k}.{i}") if original else None for i in range(n)]
        truth = ground_truth or list(range(1, n + 1))
        task = NewTask(
            task_id=f"task{k:05d}",
            created_at=created,
            task_type={"code": "code_generation"}.get(kind, kind),
            prompt=f"Draw scene {k} with a red square",
            criteria=criteria or [{"type": "ranking"}],
            expire_at=created + timedelta(minutes=1),
            source="http://synthetic.internal:5003",
            completions=tuple(
                NewCompletion(cid, "dojo-procedural-1", sent[i], truth[i], originals[i])
                for i, cid in enumerate(cids)
            ),
        )
        uid_of = {hk: uid for uid, hk in MINERS}
        assignments = [
            NewAssignment(
                hotkey,
                uid_of.get(hotkey, 99),
                f"req{k}-{uid_of.get(hotkey, 99)}",
                tuple((f"t{k}m{uid_of.get(hotkey, 99)}c{i}", cids[i]) for i in reversed(range(n))),
            )
            for hotkey in workers
        ]
        outgoing = self.store.add_task(task, assignments)
        self.store.record_sends(
            [
                SendOutcome(o.assignment_id, SendStatus.ACCEPTED, dojo_task_id=f"d-{o.request_id}")
                for o in outgoing
            ],
            created,
        )
        later = created + timedelta(minutes=2)
        kind = (criteria or [{"type": "ranking"}])[0]["type"]
        outcomes = []
        for o in outgoing:
            rankings = workers[o.miner_hotkey]
            if rankings is None:
                outcomes.append(CollectionOutcome(o.assignment_id, CollectStatus.NO_RESULT, "none"))
                continue
            said = (rationales or {}).get(o.miner_hotkey) or [None] * len(rankings)
            results = tuple(
                AcceptedResult(
                    f"w{j}", kind, {cids[i]: float(r) for i, r in enumerate(ranking)}, later, said[j]
                )
                for j, ranking in enumerate(rankings)
            )
            outcomes.append(CollectionOutcome(o.assignment_id, CollectStatus.COLLECTED, None, results))
        self.store.record_collections(outcomes, later)
        return Planned(task.task_id, cids, originals, sent)

    def score(self) -> int | None:
        """Score every collected task in rounds; returns the last round's id."""
        last = None
        while (round_id := self.store.open_round(1000, utcnow())) is not None:
            scores = score_inputs(self.store.round_inputs(round_id))
            self.store.commit_round(scores, 0.1, dict(MINERS), utcnow())
            last = round_id
        return last


@pytest.fixture
def store(store_url: str) -> Iterator[TaskStore]:
    s = TaskStore(store_url)
    yield s
    s.close()


@pytest.fixture
def scored(store: TaskStore) -> ScoredTasks:
    return ScoredTasks(store)
