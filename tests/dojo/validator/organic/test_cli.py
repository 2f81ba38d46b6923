"""``dojo validator organic-key`` and ``dojo organic submit|status`` against a running API."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time

from sqlalchemy.orm import Session

from dojo.cli import main as dojo_main
from dojo.validator.models import OrganicTask
from dojo.validator.organic.store import record_organic_results
from template.clock import utcnow
from tests.dojo.validator.organic.conftest import text_task


def _run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = dojo_main(list(args))
    return code, out.getvalue()


def test_keys_are_made_listed_and_revoked_from_the_command_line(tmp_path):
    data = ["--data-dir", str(tmp_path)]
    code, out = _run(
        "validator",
        "organic-key",
        "create",
        "--name",
        "lab",
        "--rate",
        "30",
        "--daily-quota",
        "99",
        *data,
        "--json",
    )
    assert code == 0
    made = json.loads(out)
    assert made["api_key"].startswith("dojo_org_") and made["webhook_secret"].startswith("whsec_")
    code, out = _run("validator", "organic-key", "list", *data, "--json")
    [listed] = json.loads(out)
    assert (
        listed["key_id"] == made["key_id"] and listed["rate_per_minute"] == 30 and listed["daily_quota"] == 99
    )
    assert made["api_key"] not in out and made["webhook_secret"] not in out
    assert _run("validator", "organic-key", "revoke", made["key_id"], *data)[0] == 0
    assert _run("validator", "organic-key", "revoke", made["key_id"], *data)[0] == 1
    assert json.loads(_run("validator", "organic-key", "list", *data, "--json")[1])[0]["revoked_at"]


def test_submit_waits_for_results_and_writes_preference_pairs(organic_api, tmp_path):
    key = organic_api.key()
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps(text_task(3, external_id="x1")) + "\n")
    out = tmp_path / "pairs.jsonl"
    args = [
        "organic",
        "submit",
        str(tasks),
        "--validator",
        organic_api.url,
        "--key",
        key.api_key,
        "--wait",
        "--poll",
        "0.1",
        "--format",
        "pairs",
        "--out",
        str(out),
    ]
    codes: list[int] = []
    runner = threading.Thread(target=lambda: codes.append(dojo_main(args)))
    runner.start()
    # The validator's side, as its round would: the task is sent, then scored.
    deadline = time.monotonic() + 30
    while True:
        with Session(organic_api.store.engine) as db:
            row = db.query(OrganicTask).filter_by(external_id="x1").first()
        if row is not None:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = {
        "criteria_type": "ranking",
        "ranking": ["t2", "t0", "t1"],
        "agreement": 0.7,
        "miners": 3,
        "workers": 9,
        "raw": [],
        "completions": [
            {"id": "t0", "consensus_rank": 2.0, "mean": 2.0, "spread": 0.5},
            {"id": "t1", "consensus_rank": 3.0, "mean": 2.9, "spread": 0.3},
            {"id": "t2", "consensus_rank": 1.0, "mean": 1.1, "spread": 0.3},
        ],
    }
    with Session(organic_api.store.engine) as db, db.begin():
        task = db.get(OrganicTask, row.task_id)
        task.status, task.labels = "sent", {"t0": "a0", "t1": "a1", "t2": "a2"}
        record_organic_results(db, {row.task_id: result}, utcnow())
    runner.join(30)
    assert codes == [0]
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(p["chosen_id"], p["rejected_id"]) for p in pairs] == [("a2", "a0"), ("a2", "a1"), ("a0", "a1")]
    assert pairs[0]["chosen"] == "answer 2" and pairs[0]["prompt"] == "Which answer is best?"
    assert set(pairs[0]) == {
        "prompt",
        "chosen",
        "rejected",
        "margin",
        "agreement",
        "task_id",
        "chosen_id",
        "rejected_id",
    }
    code, shown = _run("organic", "status", row.task_id, "--validator", organic_api.url, "--key", key.api_key)
    assert code == 0 and json.loads(shown)["result"]["ranking"] == ["a2", "a0", "a1"]
    # A signing caller submits without a key.
    staked = organic_api.callers["staked"]
    code, printed = _run(
        "organic",
        "submit",
        str(tasks),
        "--validator",
        organic_api.url,
        "--wallet.name",
        "staked",
        "--wallet.path",
        str(tmp_path / "wallets"),
        "--validator-hotkey",
        organic_api.validator.hotkey.ss58_address,
    )
    assert code == 0 and json.loads(printed)["status"] == "queued", staked
