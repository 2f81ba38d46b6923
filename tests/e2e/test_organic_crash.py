"""SIGKILL the validator with organic tasks at each step of their life (accepted but not
answered, queued, written, sent, collected, scored but not delivered, delivered but not
written down), start it again, and check that none is lost, none reaches a miner twice, and
every webhook arrives, under one id, at least once."""

from __future__ import annotations

import signal
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy.orm import Session

from commons.organic import verify_webhook
from dojo.localnet.net import LocalNet
from dojo.validator.models import MinerScore
from dojo.validator.store import TaskStore
from template.clock import utcnow
from tests.e2e._lifecycle import assert_lifecycle_invariants, lifecycle_net, query, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DEADLINE = 30.0


class Receiver:
    def __init__(self, secret: str):
        self.hooks: list[tuple[str, str]] = []  # (webhook id, task id), each verified
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                event = verify_webhook(secret, dict(self.headers.items()), body)
                outer.hooks.append((self.headers["webhook-id"], event.data.task_id))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _crash_at(net: LocalNet, failpoint: str | None, then=None) -> None:
    net.start_process(net.validator, env={"DOJO_FAILPOINT": failpoint} if failpoint else None)
    if then is not None:
        then()
    if failpoint is None:
        return
    wait_for(
        lambda: net.validator.process.poll() is not None,
        120,
        f"the validator to die at {failpoint}",
        net,
        poll=0.2,
    )
    assert net.validator.process.returncode == -signal.SIGKILL, net.validator.log()[-2000:]
    assert f"failpoint {failpoint}: SIGKILL" in net.validator.log()


def _count(net: LocalNet, sql: str, *params) -> int:
    return query(net.validator_db, sql, *params)[0][0]


def _task(external_id: str, callback: str) -> dict:
    return {
        "prompt": "Which reply is kindest?",
        "external_id": external_id,
        "callback_url": callback,
        "miners": 3,
        "completions": [{"id": f"r{i}", "content": {"kind": "text", "text": f"reply {i}"}} for i in range(3)],
    }


def test_organic_tasks_survive_a_crash_at_every_step(tmp_path):
    net = lifecycle_net(
        tmp_path,
        worker_mix=["honest:3", "honest:3", "honest:3"],
        task_deadline=DEADLINE,
        task_interval=2.0,
        scoring_interval=1.0,
        collection_grace=60.0,
        organic=True,
        organic_caller=False,
        organic_min_miner_score=0.0,
    )
    try:
        net.start(roles=("platform", "miner", "workers"))
        net.provision_organic_key()
        key = net.keys()["organic"]
        receiver = Receiver(key["webhook_secret"])
        # Miners measured in earlier rounds: each may take organic tasks from the start.
        store = TaskStore(net.validator_db)
        with Session(store.engine) as db, db.begin():
            for n in (n for n in net.neurons if n.role == "miner"):
                db.add(
                    MinerScore(
                        miner_hotkey=n.hotkey,
                        miner_uid=n.uid,
                        moving_score=0.5,
                        rounds=3,
                        updated_at=utcnow(),
                    )
                )
        store.close()
        api = httpx.Client(
            base_url=net.organic_url, headers={"Authorization": f"Bearer {key['api_key']}"}, timeout=10
        )
        first = _task("crash-0", receiver.url)

        def post_unanswered() -> None:
            # 1. Killed after writing a task and before answering: the caller saw no 202.
            wait_for(lambda: _answers(net), 60, "the organic API", net, poll=0.2)
            with pytest.raises(httpx.TransportError):
                api.post("/v1/tasks", json=first)

        _crash_at(net, "validator.organic.after_accept", then=post_unanswered)
        [(task_id, status)] = query(net.validator_db, "SELECT task_id, status FROM organic_tasks")
        assert status == "queued"

        # 2. More are queued while it is down. Started again: killed once the first round's tasks
        #    are written (one of them organic), before a byte is sent.
        store = TaskStore(net.validator_db)
        owner = query(net.validator_db, "SELECT key_id FROM organic_keys")[0][0]
        store.close()
        for i in range(1, 4):
            _queue(net, owner, _task(f"crash-{i}", receiver.url))
        _crash_at(net, "validator.fanout.after_write")
        assert _count(net, "SELECT count(*) FROM organic_tasks") == 4
        assert _count(net, "SELECT count(*) FROM organic_tasks WHERE status = 'sent'") >= 1
        assert _count(net, "SELECT count(*) FROM organic_tasks WHERE status = 'queued'") >= 1
        # 3. Sent, killed before the answers are written; then killed after a collection pass.
        _crash_at(net, "validator.fanout.after_send")
        _crash_at(net, "validator.collect.after_store")
        # 4. Killed just after a round is committed: results and webhooks written, none delivered yet.
        _crash_at(net, "validator.scoring.after_commit")
        # 5. Killed after a webhook was delivered and before that was written down: sent again.
        _crash_at(net, "validator.webhook.after_post")
        _crash_at(net, None)
        # The caller that saw no 202 retries with the same external id: the same task.
        wait_for(lambda: _answers(net), 60, "the organic API", net, poll=0.2)
        again = api.post("/v1/tasks", json=first).json()
        assert again["task_id"] == task_id and again["duplicate"]
        wait_for(
            lambda: _count(net, "SELECT count(*) FROM organic_deliveries WHERE status = 'delivered'") == 4,
            240,
            "all four organic tasks final and their webhooks delivered",
            net,
            poll=1.0,
        )
    finally:
        net.stop()
    assert_lifecycle_invariants(net, initial_moving={n.hotkey: 0.5 for n in net.neurons if n.role == "miner"})
    # Each organic task became one task row, sent once to each of its miners.
    assert _count(net, "SELECT count(*) FROM tasks WHERE source = 'organic'") == 4
    assert (
        query(
            net.validator_db,
            "SELECT task_id, miner_hotkey FROM assignments GROUP BY 1, 2 HAVING count(*) > 1",
        )
        == []
    )
    # Each is final: scored, or (when restarts under load took the time its workers needed) failed
    # with that reason. None is lost either way, and its caller is told.
    states = query(net.validator_db, "SELECT status, status_detail FROM organic_tasks")
    assert all(
        status == "scored" or detail == "the validator could not send it before its deadline"
        for status, detail in states
    ), states
    assert sum(status == "scored" for status, _ in states) >= 2, states
    ids = dict(query(net.validator_db, "SELECT delivery_id, task_id FROM organic_deliveries"))
    # Every webhook arrived, verified, under its one id; the one cut short arrived twice.
    seen: dict[str, set[str]] = {}
    for webhook_id, tid in receiver.hooks:
        seen.setdefault(webhook_id, set()).add(tid)
    assert set(seen) == set(ids) and all(tids == {ids[w]} for w, tids in seen.items())
    assert len(receiver.hooks) > len(ids)
    api.close()


def _answers(net: LocalNet) -> bool:
    try:
        return httpx.get(f"{net.organic_url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _queue(net: LocalNet, owner: str, task: dict) -> None:
    """A task accepted as the API accepts it (the validator is down meanwhile)."""
    from commons.organic import TaskRequest
    from dojo.validator.organic.api import _request_hash
    from dojo.validator.organic.store import NewOrganic, OrganicStore

    request = TaskRequest.model_validate(task)
    store = TaskStore(net.validator_db)
    try:
        OrganicStore(store.engine).accept(
            [
                NewOrganic(
                    task_id=uuid.uuid4().hex,
                    owner_id=owner,
                    external_id=request.external_id,
                    request_hash=_request_hash(request),
                    created_at=utcnow(),
                    visibility="private",
                    callback_url=request.callback_url,
                    deadline_seconds=DEADLINE,
                    miners_wanted=3,
                    request={
                        "prompt": request.prompt,
                        "task_type": "text",
                        "criteria": [{"type": "ranking"}],
                        "completions": [
                            {"label": c.id, "model": "", "content": c.content.model_dump(mode="json")}
                            for c in request.completions
                        ],
                    },
                )
            ]
        )
    finally:
        store.close()
