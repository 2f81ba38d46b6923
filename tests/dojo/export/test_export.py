"""``export_dataset`` on a real validator database: every file's schema, the pairs, the
consensus, de-obfuscation, pseudonyms, filters, and loading with ``datasets`` and pandas."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

import dojo.export
from commons.scoring import average_ranks
from dojo.export import (
    DEFAULT_MIN_AGREEMENT,
    ExportError,
    ExportOptions,
    Pseudonyms,
    export_dataset,
    preference_pairs,
    render_content,
)
from dojo.export._schema import describe, preferences_schema, tasks_schema
from tests.dojo.export.conftest import MINERS, ScoredTasks

HK = [hotkey for _, hotkey in MINERS]
GOOD = [1, 2, 3, 4]


def _read(out: Path, name: str, fmt: str = "parquet") -> list[dict[str, Any]]:
    if fmt == "parquet":
        return pq.read_table(out / f"{name}.parquet").to_pylist()
    with open(out / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _keys(schema: pa.Schema | pa.StructType) -> dict[str, Any]:
    """The nested key structure a JSON row of ``schema`` must have."""
    keys: dict[str, Any] = {}
    for f in schema:
        t = f.type.value_type if pa.types.is_list(f.type) else f.type
        keys[f.name] = _keys(t) if pa.types.is_struct(t) else None
    return keys


def _check_keys(value: Any, keys: dict[str, Any] | None, where: str) -> None:
    if keys is None or value is None:
        return
    for item in value if isinstance(value, list) else [value]:
        assert set(item) == set(keys), (where, sorted(item), sorted(keys))
        for k, sub in keys.items():
            _check_keys(item[k], sub, f"{where}.{k}")


def _strings(value: Any) -> list[str]:
    """Every string in a row (or rows), keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _mixed_database(scored: ScoredTasks) -> dict[str, Any]:
    """Two rounds of tasks: agreeing ones, one below the agreement threshold, one with a
    tie in its consensus, one nobody answered, one without originals, one unscored."""
    honest, liar = [GOOD, GOOD], [[4, 3, 2, 1]]
    agreeing = [
        scored.add({HK[0]: honest, HK[1]: [GOOD], HK[2]: [[1, 2, 4, 3]], HK[3]: liar}) for _ in range(4)
    ]
    disagreeing = scored.add({HK[0]: [[1, 2, 3, 4]], HK[1]: [[4, 3, 2, 1]], HK[2]: [[2, 4, 1, 3]]})
    tied = scored.add(
        {
            HK[0]: [[1, 2, 3, 4], [2, 1, 3, 4]],
            HK[1]: [[1, 2, 3, 4], [2, 1, 3, 4]],
            HK[2]: [[1, 2, 3, 4], [2, 1, 3, 4]],
        }
    )
    unanswered = scored.add({HK[0]: None, HK[1]: None})
    scored.score()
    five = scored.add({HK[0]: [[1, 2, 3, 4, 5]], HK[1]: [[1, 2, 3, 4, 5]], HK[2]: [[1, 2, 3, 5, 4]]}, n=5)
    unknown = scored.add({HK[0]: [GOOD], HK[1]: [GOOD], HK[2]: [GOOD]}, original=False)
    scored.score()
    unscored = scored.add({HK[0]: [GOOD], HK[1]: [GOOD]})  # collected, in no round yet
    return {
        "agreeing": agreeing,
        "disagreeing": disagreeing,
        "tied": tied,
        "unanswered": unanswered,
        "five": five,
        "unknown": unknown,
        "unscored": unscored,
    }


@pytest.fixture
def mixed(scored: ScoredTasks) -> dict[str, Any]:
    return _mixed_database(scored)


def test_the_public_api_is_exactly_all():
    public = {name for name in vars(dojo.export) if not name.startswith("_") and name != "annotations"}
    assert public == set(dojo.export.__all__)


def test_every_file_has_its_schema_in_both_formats(store, mixed, tmp_path):
    for fmt in ("parquet", "jsonl"):
        out = tmp_path / fmt
        summary = export_dataset(store.url, out, ExportOptions(format=fmt))
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["README.md", f"tasks.{fmt}", f"preferences.{fmt}"]
        )
        if fmt == "parquet":
            for name, schema in (("tasks", tasks_schema()), ("preferences", preferences_schema())):
                written = pq.read_schema(out / f"{name}.parquet")
                assert written.equals(schema)
                assert written.metadata[b"dojo.file"] == name.encode()
                assert all(f.metadata[b"description"] for f in written)  # each column says what it is
        for name, schema in (("tasks", tasks_schema()), ("preferences", preferences_schema())):
            rows = _read(out, name, fmt)
            for row in rows:
                _check_keys(row, _keys(schema), name)
        tasks = _read(out, "tasks", fmt)
        # Scored tasks only, in (created_at, task_id) order; the unscored one is not there.
        assert [t["task_id"] for t in tasks] == sorted(
            t.task_id
            for k, v in mixed.items()
            if k != "unscored"
            for t in (v if isinstance(v, list) else [v])
        )
        assert summary.tasks == len(tasks) == 9
        assert summary.preferences == len(_read(out, "preferences", fmt))


def test_synthetic_metadata_adds_its_columns_and_the_content_as_sent(store, mixed, tmp_path):
    export_dataset(store.url, tmp_path, ExportOptions(include_synthetic_metadata=True))
    assert pq.read_schema(tmp_path / "tasks.parquet").equals(tasks_schema(True))
    row = next(r for r in _read(tmp_path, "tasks") if r["task_id"] == mixed["agreeing"][0].task_id)
    assert row["source"] == "http://synthetic.internal:5003" and json.loads(row["criteria"]) == [
        {"type": "ranking"}
    ]
    assert row["round_id"] == 1 and 0 <= row["consensus_trust"] <= 1
    sent = [c["sent_content"]["files"][0]["content"] for c in row["completions"]]
    assert sent == [s["files"][0]["content"] for s in mixed["agreeing"][0].sent]
    # Without the flag the export says nothing of where tasks came from.
    export_dataset(store.url, tmp_path / "plain")
    assert b"synthetic.internal" not in (tmp_path / "plain" / "tasks.parquet").read_bytes()


def test_pairs_are_the_ordered_pairs_of_every_task_that_passes_the_threshold(store, mixed, tmp_path):
    summary = export_dataset(store.url, tmp_path)
    tasks = {t["task_id"]: t for t in _read(tmp_path, "tasks")}
    pairs = _read(tmp_path, "preferences")
    passing = [t for t in tasks.values() if t["task_kappa"] >= DEFAULT_MIN_AGREEMENT and t["n_miners"]]
    strict = [t for t in passing if len(set(t["consensus_mean_ranks"])) == len(t["completions"])]
    assert tasks[mixed["disagreeing"].task_id]["task_kappa"] < DEFAULT_MIN_AGREEMENT
    assert tasks[mixed["unanswered"].task_id]["consensus_ranking"] is None
    assert mixed["five"].task_id in {t["task_id"] for t in strict}
    # Every strict task gives n(n-1)/2 pairs; the task whose consensus ties two completions
    # gives one pair fewer; no other task gives any.
    tied = tasks[mixed["tied"].task_id]
    assert tied in passing and tied not in strict and tied["consensus_ranking"] == [1.5, 1.5, 3.0, 4.0]
    expected = sum(len(t["completions"]) * (len(t["completions"]) - 1) // 2 for t in strict)
    by_task: dict[str, int] = {}
    for p in pairs:
        by_task[p["task_id"]] = by_task.get(p["task_id"], 0) + 1
    assert by_task.pop(tied["task_id"]) == 5
    assert sum(by_task.values()) == expected == len(pairs) - 5 == summary.preferences - 5
    assert set(by_task) == {t["task_id"] for t in strict}
    assert summary.tasks_with_preferences == len(strict) + 1
    # Each pair: the consensus prefers chosen, margin as documented, texts are the originals.
    for p in pairs:
        task = tasks[p["task_id"]]
        ids = [c["completion_id"] for c in task["completions"]]
        i, j = ids.index(p["chosen_id"]), ids.index(p["rejected_id"])
        means = task["consensus_mean_ranks"]
        assert means[i] < means[j]
        assert p["margin"] == pytest.approx((means[j] - means[i]) / (len(ids) - 1))
        assert 0 < p["margin"] <= 1 and p["agreement"] == task["task_kappa"]
        assert p["prompt"] == task["prompt"]
        assert p["chosen"] == render_content(task["completions"][i]["content"])
    # The threshold is a flag: everything with a consensus passes at -1, nothing at 1.
    everything = export_dataset(store.url, tmp_path / "all", ExportOptions(min_agreement=-1.0))
    assert everything.tasks_with_preferences == len([t for t in tasks.values() if t["n_miners"]])
    assert export_dataset(store.url, tmp_path / "none", ExportOptions(min_agreement=1.0)).preferences == 0


def test_the_consensus_weights_miners_by_their_reliability_in_the_round(store, mixed, tmp_path):
    export_dataset(store.url, tmp_path)
    task = next(t for t in _read(tmp_path, "tasks") if t["task_id"] == mixed["agreeing"][0].task_id)
    miners = {m["miner"]: m for m in task["miners"]}
    assert len(miners) == 4 and sum(m["weight"] for m in miners.values()) == pytest.approx(1.0)
    liar = next(m for m in miners.values() if m["answer"] == [4.0, 3.0, 2.0, 1.0])
    honest = [m for m in miners.values() if m["answer"] == [1.0, 2.0, 3.0, 4.0]]
    assert liar["weight"] < min(m["weight"] for m in honest) and liar["score"] == 0.0
    assert (
        task["consensus_ranking"] == [1.0, 2.0, 3.0, 4.0] == [float(r) for r in task["ground_truth_ranking"]]
    )
    # The documented formula, from the stored task scores: weight q², q = the miner's mean
    # max(0, agreement) over the tasks it answered in the round.
    with store.engine.connect() as conn:
        q = dict(
            conn.execute(
                text(
                    "SELECT miner_hotkey, avg(CASE WHEN agreement > 0 THEN agreement ELSE 0 END) FROM task_scores"
                    " WHERE round_id = 1 AND answered GROUP BY miner_hotkey"
                )
            ).all()
        )
    by_answer = {repr(m["answer"]): m for m in task["miners"]}
    answers = {
        HK[0]: [1.0, 2.0, 3.0, 4.0],
        HK[1]: [1.0, 2.0, 3.0, 4.0],
        HK[2]: [1.0, 2.0, 4.0, 3.0],
        HK[3]: [4.0, 3.0, 2.0, 1.0],
    }
    w = np.array([q[h] ** 2 for h in HK])
    ranks = average_ranks(np.array([answers[h] for h in HK]))
    assert task["consensus_mean_ranks"] == pytest.approx(
        list((w[:, None] * ranks).sum(0) / w.sum()), abs=1e-8
    )
    assert by_answer[repr([4.0, 3.0, 2.0, 1.0])]["weight"] == pytest.approx(w[3] / w.sum())
    # Workers are under the miner: the honest miner's two workers, each its own ranking.
    two = next(m for m in miners.values() if m["n_workers"] == 2)
    assert [w["values"] for w in two["workers"]] == [[1.0, 2.0, 3.0, 4.0]] * 2
    assert task["n_workers"] == 5 and task["n_miners"] == 4
    assert 0 < task["mean_rho"] < 1  # the liar's rho is -1-ish, the others' near 1


def test_a_multi_score_task_ranks_the_highest_score_first(store, scored, tmp_path):
    criteria = [{"type": "multi-score", "min": 1, "max": 10}]
    scored.add({HK[0]: [[9, 7, 5, 1]], HK[1]: [[10, 6, 4, 2]], HK[2]: [[8, 7, 3, 1]]}, criteria=criteria)
    scored.score()
    export_dataset(store.url, tmp_path)
    [task] = _read(tmp_path, "tasks")
    assert task["criteria_type"] == "multi-score" and task["consensus_ranking"] == [1.0, 2.0, 3.0, 4.0]
    assert [m["answer"] for m in task["miners"]][0] in (
        [9.0, 7.0, 5.0, 1.0],
        [10.0, 6.0, 4.0, 2.0],
        [8.0, 7.0, 3.0, 1.0],
    )
    assert [p["chosen_id"] for p in _read(tmp_path, "preferences")][:3] == ["t0c0"] * 3


def test_the_original_content_is_exported_and_an_unknown_one_is_flagged(store, mixed, tmp_path):
    export_dataset(store.url, tmp_path)
    tasks = {t["task_id"]: t for t in _read(tmp_path, "tasks")}
    planned = mixed["agreeing"][0]
    row = tasks[planned.task_id]
    assert [c["content"] for c in row["completions"]] == [
        {"kind": "code", "text": None, "files": o["files"], "turns": None, "image": None}
        for o in planned.originals
    ]
    assert all(c["original_known"] for c in row["completions"])
    assert all("original" in c["content"]["files"][0]["content"] for c in row["completions"])
    # The obfuscated form is nowhere else in the export: not in tasks, not in preferences.
    unknown_id = mixed["unknown"].task_id
    known = [t for t in tasks.values() if t["task_id"] != unknown_id]
    known += [p for p in _read(tmp_path, "preferences") if p["task_id"] != unknown_id]
    assert not [s for s in _strings(known) if "obfuscated" in s]
    texts = " ".join(p["chosen"] + p["rejected"] for p in _read(tmp_path, "preferences"))
    assert "original" in texts
    unknown = tasks[mixed["unknown"].task_id]
    assert [c["original_known"] for c in unknown["completions"]] == [False] * 4
    assert [c["content"]["files"] for c in unknown["completions"]] == [
        s["files"] for s in mixed["unknown"].sent
    ]


def test_pseudonyms_are_stable_within_an_export_new_in_the_next_and_reveal_no_hotkey(store, mixed, tmp_path):
    first = export_dataset(
        store.url, tmp_path / "a", ExportOptions(format="jsonl", include_synthetic_metadata=True)
    )
    second = export_dataset(store.url, tmp_path / "b")
    assert first.miners == second.miners == 4
    names_a = [[m["miner"] for m in t["miners"]] for t in _read(tmp_path / "a", "tasks", "jsonl")]
    names_b = [[m["miner"] for m in t["miners"]] for t in _read(tmp_path / "b", "tasks")]
    assert len({n for row in names_a for n in row}) == 4  # one name per miner over every task
    assert all(re.fullmatch(r"miner-[0-9a-f]{8}", n) for row in names_a for n in row)
    assert not {n for row in names_a for n in row} & {n for row in names_b for n in row}
    workers = [
        w["worker"]
        for t in _read(tmp_path / "a", "tasks", "jsonl")
        for m in t["miners"]
        for w in m["workers"]
    ]
    assert all(re.fullmatch(r"worker-[0-9a-f]{12}", w) for w in workers)
    # Every miner's first worker is "w0" on its side: here each is a different person.
    task = _read(tmp_path / "a", "tasks", "jsonl")[0]
    assert len({m["workers"][0]["worker"] for m in task["miners"]}) == len(task["miners"])
    # No hotkey (nor the start of one) and no request id is anywhere in the files: in the
    # plain bytes of the JSON lines and the card, in every value of the Parquet files.
    texts = [p.read_text() for p in (tmp_path / "a").iterdir()] + [(tmp_path / "b" / "README.md").read_text()]
    texts += _strings(_read(tmp_path / "b", "tasks")) + _strings(_read(tmp_path / "b", "preferences"))
    for written in texts:
        for hotkey in HK:
            assert hotkey[:16] not in written
        assert "req0-" not in written and "d-req" not in written


def test_a_pseudonym_is_an_hmac_under_the_exports_key():
    import hashlib
    import hmac

    names = Pseudonyms(b"k" * 32)
    digest = hmac.new(b"k" * 32, b"miner\0" + HK[0].encode(), hashlib.sha256).hexdigest()
    assert names.miner(HK[0]) == f"miner-{digest[:8]}" == Pseudonyms(b"k" * 32).miner(HK[0])
    assert names.worker(HK[0], "w0") != names.worker(HK[1], "w0")
    assert names.worker("ab", "c") != names.worker("a", "bc")
    assert Pseudonyms().miner(HK[0]) != Pseudonyms().miner(HK[0])  # a new random key each time


def test_since_takes_tasks_created_from_that_time(store, scored, tmp_path):
    now = scored.clock
    for days in (3, 2, 1):
        scored.add({HK[0]: [GOOD], HK[1]: [GOOD]}, created_at=now - timedelta(days=days))
    scored.score()
    summary = export_dataset(store.url, tmp_path, ExportOptions(since=now - timedelta(days=2, hours=1)))
    assert summary.tasks == 2
    assert [t["created_at"] for t in _read(tmp_path, "tasks")] == [
        now - timedelta(days=2),
        now - timedelta(days=1),
    ]


def test_batches_are_row_groups_and_every_task_is_read_once(store, scored, tmp_path):
    for _ in range(7):
        scored.add({HK[0]: [GOOD], HK[1]: [GOOD]}, created_at=scored.clock)  # equal times: the task id orders
    scored.score()
    progress: list[tuple[int, int]] = []
    export_dataset(
        store.url, tmp_path, ExportOptions(batch_size=3), progress=lambda d, t: progress.append((d, t))
    )
    assert progress == [(3, 7), (6, 7), (7, 7)]
    assert pq.ParquetFile(tmp_path / "tasks.parquet").metadata.num_row_groups == 3
    assert [t["task_id"] for t in _read(tmp_path, "tasks")] == [f"task{k:05d}" for k in range(7)]


def test_an_empty_database_exports_empty_files_that_load(store, tmp_path):
    summary = export_dataset(store.url, tmp_path)
    assert summary.tasks == summary.preferences == 0
    assert pq.read_table(tmp_path / "tasks.parquet").num_rows == 0
    import pandas as pd

    assert list(pd.read_parquet(tmp_path / "preferences.parquet").columns) == preferences_schema().names


def test_the_files_load_with_datasets_and_pandas(store, mixed, tmp_path):
    import datasets
    import pandas as pd

    for fmt, loader in (("parquet", "parquet"), ("jsonl", "json")):
        out = tmp_path / fmt
        summary = export_dataset(store.url, out, ExportOptions(format=fmt))
        pairs = datasets.load_dataset(
            loader,
            data_files=str(out / f"preferences.{fmt}"),
            split="train",
            cache_dir=str(tmp_path / "cache"),
        )
        assert len(pairs) == summary.preferences and {"prompt", "chosen", "rejected"} <= set(
            pairs.column_names
        )
        tasks = datasets.load_dataset(
            loader, data_files=str(out / f"tasks.{fmt}"), split="train", cache_dir=str(tmp_path / "cache")
        )
        assert len(tasks) == summary.tasks
        # The folder itself, through the card's configs and features.
        by_card = datasets.load_dataset(str(out), "tasks", split="train", cache_dir=str(tmp_path / "cache"))
        assert str(by_card.features["n_workers"].dtype) == "int32"
        assert len(datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))) == len(
            pairs
        )
        frame = (
            pd.read_parquet(out / "tasks.parquet")
            if fmt == "parquet"
            else pd.read_json(out / "tasks.jsonl", lines=True)
        )
        assert len(frame) == summary.tasks and list(frame.columns) == tasks_schema().names


def test_the_card_has_the_hub_header_the_counts_and_the_schema(store, mixed, tmp_path):
    summary = export_dataset(store.url, tmp_path)
    card = (tmp_path / "README.md").read_text()
    header, body = card.split("\n---\n", 1)
    assert (
        header.startswith("---\n")
        and "config_name: preferences" in header
        and "path: tasks.parquet" in header
    )
    assert f"| tasks (scored) | {summary.tasks} |" in body
    assert f"| preference pairs | {summary.preferences}," in body
    for name, _, _ in describe(tasks_schema()) + describe(preferences_schema()):
        assert f"`{name}`" in body
    for topic in ("## How the data was collected", "## Consensus and agreement", "## Privacy"):
        assert topic in body


def test_the_docs_trl_lines_give_trls_forms_and_warn_of_the_reward_trainers_length_filter(
    store, mixed, tmp_path
):
    import datasets

    page = (Path(__file__).parents[3] / "docs" / "dataset.md").read_text()
    assert "`RewardConfig.max_length` is 1 024 tokens" in page and "max_length=8192" in page
    export_dataset(store.url, tmp_path / "out")
    pairs = datasets.load_dataset(str(tmp_path / "out"), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(pairs) > 0
    blocks = {
        block.split(" = ", 1)[0]: block
        for block in re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
        if block.startswith(("implicit = ", "conversational = "))
    }
    assert set(blocks) == {"implicit", "conversational"}, "the docs show no map for a TRL form"
    made: dict[str, Any] = {"pairs": pairs}
    for block in blocks.values():
        exec(block, made)  # the code as a reader copies it
    first, implicit, conversational = pairs[0], made["implicit"][0], made["conversational"][0]
    # Implicit prompt: no prompt column; chosen and rejected each begin with the prompt.
    assert "prompt" not in made["implicit"].column_names
    assert implicit["chosen"] == first["prompt"] + "\n\n" + first["chosen"]
    assert implicit["rejected"] == first["prompt"] + "\n\n" + first["rejected"]
    # Conversational: lists of role/content messages, the prompt the user's, the completions the assistant's.
    assert conversational["prompt"] == [{"role": "user", "content": first["prompt"]}]
    assert conversational["chosen"] == [{"role": "assistant", "content": first["chosen"]}]
    assert conversational["rejected"] == [{"role": "assistant", "content": first["rejected"]}]
    assert conversational["margin"] == first["margin"]


def test_the_docs_page_describes_every_column():
    page = (Path(__file__).parents[3] / "docs" / "dataset.md").read_text()
    for name, _, _ in describe(tasks_schema(True)) + describe(preferences_schema()):
        assert f"`{name}`" in page, name


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_database_from_before_the_original_was_kept_exports_as_sent(tmp_path, scored, store):
    scored.add({HK[0]: [GOOD], HK[1]: [GOOD], HK[2]: [GOOD]})
    scored.score()
    store.close()
    db = sqlite3.connect(tmp_path / "validator.sqlite")
    db.execute("ALTER TABLE task_completions DROP COLUMN original_content")  # as revision 0002 had it
    db.commit()
    db.close()
    summary = export_dataset(tmp_path / "validator.sqlite", tmp_path / "out")
    [task] = _read(tmp_path / "out", "tasks")
    assert summary.completions_original_unknown == 4
    assert [c["content"]["files"][0]["content"] for c in task["completions"]][0].startswith(
        "<script>var v0_0"
    )


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_what_a_user_can_get_wrong_is_an_export_error(tmp_path, store):
    with pytest.raises(ExportError, match="no database at"):
        export_dataset(tmp_path / "missing.sqlite", tmp_path / "out")
    assert not (tmp_path / "missing.sqlite").exists()  # and none was created
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(ExportError, match="not a validator database"):
        export_dataset(other, tmp_path / "out")
    with pytest.raises(ExportError, match="format"):
        ExportOptions(format="csv")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="not a directory"):
        export_dataset(store.url, tmp_path / "file")


def test_preference_pairs_and_rendering():
    assert preference_pairs([2.0, 1.0, 3.0]) == [(1, 0, 0.5), (1, 2, 1.0), (0, 2, 0.5)]
    assert preference_pairs([1.0, 1.0]) == []
    code = {
        "kind": "code",
        "files": [{"filename": "a.md", "content": "x\n```js\ny\n```", "language": "markdown"}],
    }
    assert render_content(code) == "a.md\n````markdown\nx\n```js\ny\n```\n````"
    assert render_content({"kind": "text", "text": "hi"}) == "hi"
    assert (
        render_content(
            {
                "kind": "dialogue",
                "turns": [{"role": "user", "message": "a"}, {"role": "assistant", "message": "b"}],
            }
        )
        == "user: a\n\nassistant: b"
    )


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_each_workers_rationale_is_exported_beside_its_ranking(tmp_path, scored, store):
    scored.add(
        {HK[0]: [GOOD, GOOD], HK[1]: [GOOD], HK[2]: [GOOD]},
        rationales={HK[0]: ["1 runs, 4 is blank", None]},
    )
    scored.score()
    store.close()
    for fmt in ("parquet", "jsonl"):
        export_dataset(tmp_path / "validator.sqlite", tmp_path / fmt, ExportOptions(format=fmt))
        [task] = _read(tmp_path / fmt, "tasks", fmt)
        said = sorted((w["rationale"] or "") for m in task["miners"] for w in m["workers"])
        assert said == ["", "", "", "1 runs, 4 is blank"], fmt

    # A database from before revision 0004 keeps none: every rationale is null.
    db = sqlite3.connect(tmp_path / "validator.sqlite")
    db.execute("ALTER TABLE miner_results DROP COLUMN rationale")
    db.commit()
    db.close()
    export_dataset(tmp_path / "validator.sqlite", tmp_path / "old")
    [task] = _read(tmp_path / "old", "tasks")
    assert [w["rationale"] for m in task["miners"] for w in m["workers"]] == [None] * 4
