"""Responses go out gzipped to clients that ask, pages without a repeating secret in them.

A task page of ten code completions is some 370 KB of highlighted HTML; over a worker's
home connection it must travel as a fraction of that. Small JSON answers (the queue's hot
path) go out as they are. The CSRF token a page embeds is masked afresh in every response,
so compression cannot leak it (BREACH), and each masked form is still accepted.
"""

from __future__ import annotations

import gzip
import random
import re

import httpx

from tests.dojo.platform._support import create_tasks, ranking, sign_in_worker, task_body

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def _program(rng: random.Random, n: int) -> str:
    """Some lines of plausible, varied JavaScript in an HTML file, as a model writes."""
    names = ["ball", "speed", "canvas", "ctx", "width", "height", "gravity", "bounce", "frame", "color"]
    lines = ["<!doctype html>", "<html><body><canvas id='c'></canvas><script>"]
    for i in range(16):
        a, b = rng.sample(names, 2)
        value = rng.randint(0, 10_000) / 100
        lines.append(
            f"  function {a}_{i}_{n}({b}, step) {{ const {a}{i} = {b} * {value} + step; "
            f"if ({a}{i} > {rng.randint(1, 999)}) {{ return Math.sin({a}{i}) * {value}; }} "
            f"return {b}.map((x) => x + {rng.randint(1, 99)}); }}"
        )
    lines += ["</script></body></html>"]
    return "\n".join(lines)


def _big_task(client: httpx.Client, miner) -> str:
    rng = random.Random(7)
    body = task_body(completions=10)
    for n, response in enumerate(body["taskData"][0]["responses"]):
        response["completion"] = {
            "files": [{"filename": "index.html", "content": _program(rng, n), "language": "html"}]
        }
    created = client.post("/api/v1/tasks/create-tasks", json=body, headers=miner.key)
    assert created.status_code == 200, created.text
    return created.json()["body"][0]


def test_a_large_task_page_is_gzipped_and_small_json_is_not(platform, client, miner):
    task_id = _big_task(client, miner)
    with httpx.Client(base_url=platform.url, timeout=30) as browser:
        worker = sign_in_worker(browser)  # the session cookie
        browser.post(
            "/api/v1/worker/subscriptions",
            json={"name": "team", "key": miner.subscription_key},
            headers=worker.auth,
        ).raise_for_status()
        plain = browser.get(f"/tasks/{task_id}", headers={"accept-encoding": "identity"})
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        with browser.stream("GET", f"/tasks/{task_id}", headers={"accept-encoding": "gzip"}) as page:
            wire = b"".join(page.iter_raw())
        assert page.status_code == 200 and page.headers["content-encoding"] == "gzip"
        assert "accept-encoding" in page.headers["vary"].lower()
        html = gzip.decompress(wire).decode()
        assert len(plain.content) > 300_000, len(plain.content)
        assert len(wire) < len(plain.content) / 8, (len(wire), len(plain.content))
        assert int(page.headers["content-length"]) == len(wire)
        assert page.headers["content-security-policy"] == plain.headers["content-security-policy"]

        # Masked afresh each time (BREACH), and every masked form passes the CSRF check.
        tokens = [CSRF_META.search(html).group(1), CSRF_META.search(plain.text).group(1)]
        assert tokens[0] != tokens[1] and browser.cookies["dojo_csrf"] not in html + plain.text
        for token in tokens:
            held = browser.post(f"/api/v1/worker/tasks/{task_id}/hold", headers={"x-csrf-token": token})
            assert held.status_code == 200, held.text
        forged = browser.post(
            f"/api/v1/worker/tasks/{task_id}/hold", headers={"x-csrf-token": tokens[0][:-2]}
        )
        assert forged.status_code == 403

    # The hot path's small answers are sent as they are, whatever the client accepts.
    worker = sign_in_worker(client)
    (small,) = create_tasks(client, miner, expire_in=600)
    client.post(
        "/api/v1/worker/subscriptions",
        json={"name": "team", "key": miner.subscription_key},
        headers=worker.auth,
    ).raise_for_status()
    gzip_ok = {**worker.auth, "accept-encoding": "gzip"}
    # Skipping the large task leaves the small one to claim, whatever order the queue keeps.
    client.post(f"/api/v1/worker/tasks/{task_id}/skip", headers=worker.auth).raise_for_status()
    claimed = client.post("/api/v1/worker/tasks/next", headers=gzip_ok)
    assert claimed.status_code == 200 and "content-encoding" not in claimed.headers
    submitted = client.post(
        f"/api/v1/worker/tasks/{claimed.json()['id']}/result",
        json={"resultData": ranking([c["cid"] for c in claimed.json()["completions"]])},
        headers=gzip_ok,
    )
    assert submitted.status_code == 200 and "content-encoding" not in submitted.headers
    assert claimed.json()["id"] == small
