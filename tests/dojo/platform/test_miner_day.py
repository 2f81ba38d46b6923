"""The miner's day over the API: keys whose prefix says their kind (old ``sk-`` keys still
working), invite links made by a logged-in miner, and a dashboard that shows each worker's
answer, the flags they raised and the validator's own measure of their agreement."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sqlalchemy import event

from commons.scoring import ScoringParams, score_round
from dojo.platform.services.auth import worker_pseudonym_for_miner
from dojo.platform.services.dashboard import PAGE_SIZE, agreements, miner_dashboard
from dojo.platform.services.keys import looks_like_api_key
from dojo.platform.storage.db import Database
from dojo.platform.storage.models import Flag, Miner, Result, Task, Worker
from template.clock import utcnow
from tests.dojo.platform._support import MinerClient, create_tasks, ranking, sql, subscribed_worker


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_keys_say_their_kind_and_old_sk_keys_keep_working(client, miner, platform):
    # The fixture's keys were made through the API: each kind has its own prefix.
    assert re.fullmatch(r"dojo_api_[A-Za-z0-9_-]{43}", miner.api_key)
    assert re.fullmatch(r"dojo_sub_[A-Za-z0-9_-]{43}", miner.subscription_key)
    assert looks_like_api_key(miner.api_key) and looks_like_api_key(f"  {miner.api_key}\n")
    assert not looks_like_api_key(miner.subscription_key)
    assert not looks_like_api_key("sk-" + "a" * 43)  # the old form is either kind
    [listed] = client.get("/api/v1/miner/api-keys", headers=miner.session).json()["keys"]
    assert listed["prefix"] == miner.api_key[:16] and listed["disabled"] is False

    # Keys issued before the prefixes, both kinds sk-, still open the task API and subscribe.
    old_api, old_sub = "sk-" + "A" * 43, "sk-" + "B" * 43
    [(miner_id,)] = sql(platform.database_url, "SELECT id FROM miners WHERE hotkey = :h", h=miner.hotkey)
    for kind, key in (("api", old_api), ("subscription", old_sub)):
        sql(
            platform.database_url,
            "INSERT INTO api_keys (miner_id, kind, key_hash, prefix, created_at)"
            " VALUES (:m, :kind, :h, :p, :now)",
            m=miner_id,
            kind=kind,
            h=_sha256(key),
            p=key[:11],
            now=utcnow(),
        )
    old_keys = MinerClient(miner.hotkey, miner.token, old_api, old_sub)
    (task_id,) = create_tasks(client, old_keys)
    assert client.get(f"/api/v1/tasks/{task_id}", headers={"x-api-key": old_api}).status_code == 200
    worker = subscribed_worker(client, old_keys)
    tasks = client.get("/api/v1/worker/tasks", headers=worker.auth).json()["tasks"]
    assert [t["id"] for t in tasks] == [task_id]

    # Disabled keys are flagged as such in the list, and stop working at once.
    keys = client.get("/api/v1/miner/api-keys", headers=miner.session).json()["keys"]
    old = next(k for k in keys if k["prefix"] == old_api[:11])
    assert client.delete(f"/api/v1/miner/api-keys/{old['id']}", headers=miner.session).status_code == 200
    keys = client.get("/api/v1/miner/api-keys", headers=miner.session).json()["keys"]
    assert {k["prefix"]: k["disabled"] for k in keys} == {miner.api_key[:16]: False, old_api[:11]: True}
    assert client.get(f"/api/v1/tasks/{task_id}", headers={"x-api-key": old_api}).status_code == 401


def test_a_logged_in_miner_makes_invite_links(client, miner, platform):
    made = client.post("/api/v1/miner/invites", headers=miner.session)
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"url", "expiresAt"}
    # At the platform's base URL (its public URL here), one token per link.
    assert body["url"].startswith(f"{platform.settings.base_url}/invite/inv_")
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    week = datetime.now(timezone.utc) + timedelta(seconds=platform.settings.invite_ttl_seconds)
    assert abs((expires - week).total_seconds()) < 60
    second = client.post("/api/v1/miner/invites", headers=miner.session).json()["url"]
    assert second != body["url"]

    # The link is a real invite to this miner's team: the page names the miner, and a
    # worker who uses it sees the miner's tasks.
    path = body["url"].removeprefix(platform.settings.base_url)
    page = client.get(path)
    assert page.status_code == 200 and miner.hotkey in page.text
    (task_id,) = create_tasks(client, miner)
    worker = subscribed_worker(client, miner, name="by key")  # any worker, to hold a session
    other = client.post("/api/v1/miner/invites", headers=miner.session).json()["url"]
    joined = client.post(other.removeprefix(platform.settings.base_url), headers=worker.auth)
    assert joined.status_code == 303
    assert [t["id"] for t in client.get("/api/v1/worker/tasks", headers=worker.auth).json()["tasks"]] == [
        task_id
    ]

    # Only a miner's session makes one; a cookie session needs the CSRF token like any write.
    client.cookies.clear()
    assert client.post("/api/v1/miner/invites").status_code == 401
    assert client.post("/api/v1/miner/invites", headers={"x-api-key": miner.api_key}).status_code == 401
    client.cookies.set("dojo_miner_session", miner.token)
    refused = client.post("/api/v1/miner/invites")
    client.cookies.clear()
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]


def test_the_dashboard_shows_answers_flags_and_kappa(client, miner, platform):
    (task_id,) = create_tasks(client, miner, completions=3, max_results=3)
    first, second, silent = (subscribed_worker(client, miner) for _ in range(3))
    for worker, order in ((first, ["c0", "c1", "c2"]), (second, ["c0", "c2", "c1"])):
        submitted = client.post(
            f"/api/v1/worker/tasks/{task_id}/result",
            json={"resultData": ranking(order)},
            headers=worker.auth,
        )
        assert submitted.status_code == 200, submitted.text
    # The time the first worker's page measured (the queue's tests cover how it is recorded).
    sql(
        platform.database_url,
        "UPDATE results SET lead_time = 65 WHERE worker_id = (SELECT id FROM workers WHERE address = :a)",
        a=first.address,
    )
    flagged = client.post(
        f"/api/v1/worker/tasks/{task_id}/flags",
        json={"cid": "c2", "reason": "the page stays blank"},
        headers=silent.auth,
    )
    assert flagged.status_code == 201, flagged.text
    (empty_task,) = create_tasks(client, miner)

    board = client.get("/api/v1/miner/dashboard", headers=miner.session)
    assert board.status_code == 200, board.text
    tasks = {t["id"]: t for t in board.json()["tasks"]}
    task = tasks[task_id]
    # Worker ids are the pseudonyms the task results use.
    results = client.get(f"/api/v1/tasks/task-result/{task_id}", headers=miner.key).json()
    pseudonyms = [r["workerId"] for r in results["body"]["taskResults"]]
    assert [a["workerId"] for a in task["answers"]] == pseudonyms
    assert [a["ranking"] for a in task["answers"]] == [
        {"c0": 1, "c1": 2, "c2": 3},
        {"c0": 1, "c2": 2, "c1": 3},
    ]
    assert [a["leadTime"] for a in task["answers"]] == [65.0, None]
    assert all(a["scores"] is None and a["submittedAt"].endswith("Z") for a in task["answers"])
    [flag] = task["flags"]
    assert (flag["cid"], flag["reason"]) == ("c2", "the page stays blank")
    assert re.fullmatch(r"[0-9a-f]{16}", flag["workerId"]) and flag["workerId"] not in pseudonyms
    # Ranks 1 2 3 against 1 3 2: kappa = 2 cov / (var + var) = (2/3) / (4/3).
    assert task["agreement"] == pytest.approx(0.5)
    assert tasks[empty_task]["answers"] == [] and tasks[empty_task]["flags"] == []
    assert tasks[empty_task]["agreement"] is None
    assert board.json()["workers"] == 2


def test_agreement_by_hand():
    # Two workers: quadratic-weighted Cohen's kappa. Identical 1, reversed -1, a swap 0.5.
    assert agreements([[[1, 2, 3], [1, 2, 3]]]) == [pytest.approx(1.0)]
    assert agreements([[[1, 2, 3], [3, 2, 1]]]) == [pytest.approx(-1.0)]
    assert agreements([[[1, 2, 3], [1, 3, 2]]]) == [pytest.approx(0.5)]
    # Three workers, one reversed: pairwise disagreement 0 + 8/3 + 8/3 over chance 3 × 4/3.
    assert agreements([[[1, 2, 3], [1, 2, 3], [3, 2, 1]]]) == [pytest.approx(1 - (16 / 3) / 4)]
    # Ties (negated multi-scores 9 5 5) are average ranks 1 2.5 2.5; against 1 2 3, with both
    # means 2: cov = (1 + 0 + 0.5)/3 = 1/2, variances 1/2 and 2/3, kappa = 1 / (7/6) = 6/7.
    assert agreements([[[-9, -5, -5], [1, 2, 3]]]) == [pytest.approx(6 / 7)]
    # Fewer than two answers: no agreement; tasks of different sizes in one call.
    assert agreements([[[1, 2]], [], [[1, 2], [2, 1]]]) == [None, None, pytest.approx(-1.0)]
    assert agreements([]) == []


@pytest.mark.parametrize("seed", range(4))
def test_agreement_is_the_validators_task_agreement(seed):
    """Against commons.scoring.score_round: workers as the raters, every rater weighted alike
    (the first reliability pass), tasks of different sizes and answer counts in one call."""
    rng = np.random.default_rng(seed)
    n_tasks, most_workers = 40, 6
    sizes = rng.integers(2, 7, size=n_tasks)
    answers = []
    for size in sizes:
        truth = rng.permutation(size)
        count = int(rng.integers(0, most_workers + 1))
        # Noisy rankings of a shared order, some of them multi-scores with ties (negated).
        rows = []
        for _ in range(count):
            noisy = truth + rng.normal(0, 1.5, size)
            rows.append(
                list(np.argsort(np.argsort(noisy)) + 1.0) if rng.random() < 0.5 else list(-np.round(-noisy))
            )
        answers.append(rows)
    submissions = np.full((most_workers, n_tasks, int(sizes.max())), np.nan)
    for t, rows in enumerate(answers):
        for w, row in enumerate(rows):
            submissions[w, t, : len(row)] = row
    expected = score_round(submissions, sizes, params=ScoringParams(iterations=1)).task_agreement
    got = agreements(answers)
    for t, rows in enumerate(answers):
        if len(rows) < 2:
            assert got[t] is None
        else:
            assert got[t] == pytest.approx(float(expected[t]), abs=1e-9)


def _task(miner: Miner, i: int, criteria: list[dict]) -> Task:
    return Task(
        id=f"t{i:04d}-{uuid.uuid4().hex[:8]}",
        miner_id=miner.id,
        title=f"task {i}",
        body="",
        prompt="",
        task_type="CODE_GENERATION",
        criteria=criteria,
        completions=[{"cid": f"c{c}", "model": f"m{c}", "completion": "x"} for c in range(3)],
        max_results=5,
        num_results=3,
        expire_at=utcnow() + timedelta(hours=1),
        created_at=utcnow() - timedelta(seconds=i),
    )


def _seed(database: Database, hotkey: str, tasks: int, criteria: list[dict], answers: list[list]) -> None:
    with database.session() as db:
        miner = Miner(hotkey=hotkey)
        workers = [Worker(public_id=uuid.uuid4().hex) for _ in answers]
        db.add_all([miner, *workers])
        db.flush()
        for i in range(tasks):
            task = _task(miner, i, criteria)
            db.add(task)
            db.flush()
            for worker, data in zip(workers, answers, strict=True):
                db.add(Result(task_id=task.id, worker_id=worker.id, result_data=data, lead_time=12.5))
            db.add(Flag(task_id=task.id, worker_id=workers[0].id, cid="c1", reason="cut off"))


def _statements(database: Database, hotkey: str) -> tuple[int, object]:
    count = 0

    def counted(*_args: object) -> None:
        nonlocal count
        count += 1

    event.listen(database.engine, "before_cursor_execute", counted)
    try:
        with database.read_session() as db:
            miner = db.query(Miner).filter_by(hotkey=hotkey).one()
            count = 0
            board = miner_dashboard(db, miner)
    finally:
        event.remove(database.engine, "before_cursor_execute", counted)
    return count, board


def test_the_dashboard_reads_the_first_criterion_in_a_fixed_number_of_queries(platform):
    """A multi-score first criterion is what the validator scores (higher = better); a
    partial answer does not count; hundreds of tasks cost the same queries as a few."""
    scores = [{"type": "multi-score", "min": 0, "max": 10}, {"type": "ranking"}]
    answers = [
        [{"type": "multi-score", "value": {"c0": 9, "c1": 5, "c2": 5}}, *ranking(["c0", "c1", "c2"])],
        [{"type": "multi-score", "value": {"c0": 8, "c1": 6, "c2": 1}}, *ranking(["c2", "c1", "c0"])],
        [{"type": "multi-score", "value": {"c0": 8, "c1": 6}}],  # partial: left out of agreement
    ]
    database = Database(platform.database_url, pool_size=1)
    try:
        _seed(database, "few", 3, scores, answers)
        _seed(database, "many", 300, scores, answers)
        few, few_board = _statements(database, "few")
        many, board = _statements(database, "many")
    finally:
        database.dispose()
    assert few == many > 0
    assert len(board.tasks) == PAGE_SIZE and board.total_tasks == 300 and board.total_results == 900
    assert board.next_cursor is not None and few_board.next_cursor is None
    task = board.tasks[0]
    assert task.title == "task 0"  # newest first
    # Scores 9 5 5 → ranks 1 2.5 2.5; 8 6 1 → 1 2 3: kappa 6/7 (see test_agreement_by_hand),
    # although the rankings, which the validator does not score here, are reversed.
    assert task.agreement == pytest.approx(6 / 7)
    assert [a.order for a in task.answers] == [["c0", "c1", "c2"], ["c2", "c1", "c0"], ["c0", "c1"]]
    assert task.answers[1].scores == {"c0": 8.0, "c1": 6.0, "c2": 1.0}
    [flag] = task.flags
    assert (flag.cid, flag.reason, flag.worker) == ("c1", "cut off", task.answers[0].worker)
    [(public_id,)] = sql(
        platform.database_url,
        "SELECT DISTINCT w.public_id FROM workers w JOIN flags f ON f.worker_id = w.id"
        " JOIN tasks t ON t.id = f.task_id JOIN miners m ON m.id = t.miner_id WHERE m.hotkey = 'many'",
    )
    assert flag.worker == worker_pseudonym_for_miner(public_id, "many")
    assert [t.agreement for t in few_board.tasks] == [pytest.approx(6 / 7)] * 3


def test_each_workers_agreement_leaves_a_partial_answer_out_wherever_it_is_stored(platform):
    """The agreement of a worker with the others (team page, Your work) reads no completions:
    a partial answer stored first must not stand for the task's completions."""
    from sqlalchemy import select

    from dojo.platform.services.team import task_feedback
    from dojo.platform.storage.models import Task

    scores = [{"type": "multi-score", "min": 0, "max": 10}]
    answers = [
        [{"type": "multi-score", "value": {"c0": 8, "c1": 6}}],  # partial, and first
        [{"type": "multi-score", "value": {"c0": 9, "c1": 5, "c2": 5}}],
        [{"type": "multi-score", "value": {"c0": 8, "c1": 6, "c2": 1}}],
    ]
    database = Database(platform.database_url, pool_size=1)
    try:
        _seed(database, "partial-first", 1, scores, answers)
        with database.read_session() as db:
            (task_id,) = db.scalars(select(Task.id).join(Miner).where(Miner.hotkey == "partial-first")).all()
            feedback = task_feedback(db, [task_id])[task_id]
    finally:
        database.dispose()
    # Two complete answers: each against the other alone, the task's kappa 6/7 (as above).
    assert sorted(feedback.agreement.values()) == [pytest.approx(6 / 7)] * 2
    assert feedback.score is None
