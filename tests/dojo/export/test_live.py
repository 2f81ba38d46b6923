"""An export of a database the validator is writing to: one consistent snapshot, and the
validator's writes go on meanwhile."""

from __future__ import annotations

import threading

import pyarrow.parquet as pq

from dojo.export import ExportOptions, export_dataset
from tests.dojo.export.conftest import MINERS, ScoredTasks

HK = [hotkey for _, hotkey in MINERS]
GOOD = [[1, 2, 3, 4]]


def test_an_export_of_a_live_database_is_the_database_as_it_was_when_it_began(
    store, scored: ScoredTasks, tmp_path
):
    for _ in range(6):
        scored.add({HK[0]: GOOD, HK[1]: GOOD, HK[2]: [[1, 2, 4, 3]]})
    scored.score()

    # Between two batches the validator scores more tasks, all newer than the export's
    # cursor: a reader without a snapshot would export them too.
    def validator_works(done: int, total: int) -> None:
        scored.add({HK[0]: GOOD, HK[1]: GOOD})
        scored.score()

    # And a thread keeps writing tasks (unscored: sent, collected) the whole time.
    stop = threading.Event()
    written: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        other = ScoredTasks(store)
        other.count = 1000
        try:
            while not stop.is_set():
                written.append(other.add({HK[3]: GOOD}).task_id)
        except BaseException as exc:  # reported below: the export must not make the validator fail
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        summary = export_dataset(store.url, tmp_path, ExportOptions(batch_size=2), progress=validator_works)
        before = len(written)
        while len(written) < before + 3 and thread.is_alive():  # writes go on after the export too
            pass
    finally:
        stop.set()
        thread.join(30)
    assert not errors and len(written) > 3

    tasks = pq.read_table(tmp_path / "tasks.parquet").to_pylist()
    assert summary.tasks == len(tasks) == 6
    assert [t["task_id"] for t in tasks] == [f"task{k:05d}" for k in range(6)]
    pairs = pq.read_table(tmp_path / "preferences.parquet").to_pylist()
    assert {p["task_id"] for p in pairs} == {t["task_id"] for t in tasks} and len(pairs) == 6 * 6
    # Every task is whole: its completions, its miners, its workers.
    assert all(len(t["completions"]) == 4 and t["n_miners"] == 3 and t["n_workers"] == 3 for t in tasks)
    # The tasks scored during the export (the rounds also took the thread's) are in the next one.
    again = export_dataset(store.url, tmp_path / "again")
    assert again.tasks == store.status()["tasks"]["scored"] >= 6 + 3
