"""The task page in a real browser: whole rankings only, holds and drafts, closed tasks,
skip, keys from a live preview, the shortcuts help, lead time, reports, and the phone layout.

The platform, the miners and the browser are the ones ``test_browser.py`` runs (one of each
per module); workers come in by the session an invite link opens, as a cookie.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from tests.dojo.platform import test_browser as _base
from tests.dojo.platform._support import WorkerClient, sql, workers_by_invite
from tests.dojo.platform.test_browser import DESKTOP, PHONE, RANKING, Platform, _code

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
if TYPE_CHECKING:
    from playwright.sync_api import Page

WORKER_COOKIE = "dojo_worker_session"
# The same module-scoped fixtures: one platform and its miners for this module.
platform, miners = _base.platform, _base.miners


def _text_task(platform: Platform, miner, answers: list[str], prompt: str = "Say hello.", **kwargs) -> str:
    responses = [{"model": f"m{i}", "cid": f"c{i}", "completion": a} for i, a in enumerate(answers, start=1)]
    return platform.create_task(miner, "Which answer is best?", prompt, responses, RANKING, **kwargs)


def _new_worker(platform: Platform, miner) -> WorkerClient:
    (worker,) = workers_by_invite(platform.settings.database_url, miner.hotkey, 1)
    return worker


@contextmanager
def _worker_page(
    browser, platform: Platform, miner, viewport=DESKTOP, clock=False
) -> Iterator[tuple[Page, WorkerClient]]:
    """A page logged in as a new worker on ``miner``'s team; no script error may happen on it."""
    worker = _new_worker(platform, miner)
    context = browser.new_context(viewport=viewport)
    context.add_cookies([{"name": WORKER_COOKIE, "value": worker.token, "url": platform.url}])
    page = context.new_page()
    if clock:
        page.clock.install()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, worker
        assert errors == []
    finally:
        context.close()


def _order(page: Page) -> list[str]:
    return page.locator("#ranking .rank-item").evaluate_all("els => els.map(e => e.dataset.label)")


def _history(platform: Platform, worker: WorkerClient) -> dict[str, dict]:
    got = platform.client.get("/api/v1/worker/history", headers=worker.auth)
    assert got.status_code == 200, got.text
    return {r["taskId"]: r for r in got.json()["results"]}


def _draft(page: Page, worker: WorkerClient, task_id: str) -> dict | None:
    stored = page.evaluate("key => localStorage.getItem(key)", f"dojo-draft:{worker.worker_id}:{task_id}")
    return None if stored is None else json.loads(stored)


def _open(page: Page, platform: Platform, task_id: str) -> None:
    page.goto(f"{platform.url}/tasks/{task_id}")
    expect(page.locator("#hold-status")).to_contain_text("Held for you")


def _submit_by_enter(page: Page) -> None:
    with page.expect_navigation():  # to this worker's next task, or back to the list
        page.keyboard.press("Enter")


def test_submit_takes_only_a_whole_ranking_and_the_draft_goes_with_it(browser, platform, miners):
    task_id = _text_task(platform, miners["beta"], ["one", "two", "three", "four"])
    with _worker_page(browser, platform, miners["beta"]) as (page, worker):
        _open(page, platform, task_id)
        count = page.locator("#ranking-count")
        expect(count).to_have_text("0 of 4 placed")
        page.keyboard.press("3")
        assert _order(page) == ["3", "1", "2", "4"]
        expect(count).to_have_text("1 of 4 placed")
        # Enter with one response placed sends nothing and says why.
        page.keyboard.press("Enter")
        expect(page.locator("#task-error")).to_contain_text("1 of 4 placed")
        assert page.url == f"{platform.url}/tasks/{task_id}"
        assert task_id not in _history(platform, worker)
        # Backspace takes the number back; Esc clears what is on screen.
        page.keyboard.press("Backspace")
        assert _order(page) == ["1", "2", "3", "4"]
        expect(count).to_have_text("0 of 4 placed")
        page.keyboard.press("4")
        page.keyboard.press("2")
        expect(count).to_have_text("2 of 4 placed")
        page.keyboard.press("Escape")
        assert _order(page) == ["1", "2", "3", "4"]
        expect(count).to_have_text("0 of 4 placed")
        # Three numbers of four: the last places itself, and Enter submits that ranking.
        for key in "421":
            page.keyboard.press(key)
        expect(count).to_have_text("4 of 4 placed")
        assert _draft(page, worker, task_id)["order"] == ["4", "2", "1", "3"]
        _submit_by_enter(page)
        assert _history(platform, worker)[task_id]["ranking"] == {"c4": 1, "c2": 2, "c1": 3, "c3": 4}
        assert _draft(page, worker, task_id) is None  # a submitted answer leaves no draft behind


def test_a_lost_hold_keeps_the_draft_and_a_full_task_takes_no_answer(browser, platform, miners):
    beta = miners["beta"]
    task_id = _text_task(platform, beta, ["one", "two", "three"], max_results=1)
    with _worker_page(browser, platform, beta, clock=True) as (page, worker):
        _open(page, platform, task_id)
        expect(page.locator("#hold-status")).to_contain_text("left")
        page.keyboard.press("2")
        # The hold runs out on the server and another worker takes the only place ...
        past = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
        sql(
            platform.settings.database_url,
            "UPDATE assignments SET held_until = :p WHERE task_id = :t",
            p=past,
            t=task_id,
        )
        other = _new_worker(platform, beta)
        assert (
            platform.client.post(f"/api/v1/worker/tasks/{task_id}/hold", headers=other.auth).status_code
            == 200
        )
        # ... so the page's extension, due halfway through the hold, is refused: the work stays.
        page.clock.fast_forward("05:10")
        expect(page.locator("#hold-lost")).to_be_visible()
        assert _order(page) == ["2", "1", "3"]
        assert _draft(page, worker, task_id)["typed"] == ["2"]

        # A reload brings the draft back; the page says the task is taken and answers nothing.
        page.reload()
        expect(page.locator("#task-closed")).to_contain_text("other workers hold")
        assert _order(page) == ["2", "1", "3"]
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
        assert page.locator("#submit-task").is_disabled() and page.locator("#skip-task").is_disabled()
        page.keyboard.press("3")  # a whole ranking now, but the keyboard does not submit it
        page.keyboard.press("Enter")
        expect(page.locator("#task-error")).to_contain_text("cannot answer")
        page.keyboard.press("s")
        assert page.locator("#skip-confirm").is_hidden()
    assert task_id not in _history(platform, worker)


def test_skip_asks_first_and_a_skipped_task_takes_no_result(browser, platform, miners):
    task_id = _text_task(platform, miners["beta"], ["one", "two"])
    with _worker_page(browser, platform, miners["beta"]) as (page, worker):
        _open(page, platform, task_id)
        page.keyboard.press("s")
        expect(page.locator("#skip-confirm")).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.locator("#skip-confirm")).to_be_hidden()
        page.keyboard.press("S")
        with page.expect_navigation():
            page.keyboard.press("s")
        # Opened again by its URL, the task says it was skipped, and the API refuses a result.
        page.goto(f"{platform.url}/tasks/{task_id}")
        expect(page.locator("#task-closed")).to_contain_text("skipped")
        status = page.evaluate(
            """async (url) => {
                 try { await Dojo.api("POST", url, {resultData: [{type: "ranking", value: {c1: 1, c2: 2}}]}); return 200; }
                 catch (err) { return err.status; }
               }""",
            f"/api/v1/worker/tasks/{task_id}/result",
        )
        assert status == 409
    assert task_id not in _history(platform, worker)


FORM_HTML = """<!DOCTYPE html><html><body><h1>Sign-up form</h1>
<label>Name <input id="name"></label></body></html>"""


def test_keys_pressed_in_a_preview_rank_on_the_page_but_its_fields_keep_theirs(browser, platform, miners):
    task_id = platform.create_task(
        miners["beta"],
        "A sign-up form",
        "Write a sign-up form in HTML.",
        [
            {"model": "a", "cid": "f1", "completion": _code(("index.html", "html", FORM_HTML))},
            {"model": "b", "cid": "f2", "completion": _code(("index.html", "html", "<p>Nothing here</p>"))},
            {"model": "c", "cid": "f3", "completion": "A form needs HTML."},
        ],
        RANKING,
    )
    with _worker_page(browser, platform, miners["beta"]) as (page, _worker):
        _open(page, platform, task_id)
        frame = page.frame_locator("#completion-1 iframe")
        count = page.locator("#ranking-count")
        frame.locator("h1").click()
        page.keyboard.press("2")
        expect(count).to_have_text("1 of 3 placed")
        # Typing into the preview's own field stays there.
        frame.locator("#name").click()
        page.keyboard.type("31")
        assert frame.locator("#name").input_value() == "31"
        expect(count).to_have_text("1 of 3 placed")
        # A message from anywhere but the page's own preview, with focus in it, ranks nothing.
        page.evaluate("window.postMessage({dojoKey: '3'}, '*')")
        frame.locator("h1").click()
        page.frame_locator("#completion-2 iframe").locator("p").evaluate(
            "() => parent.postMessage({dojoKey: '3'}, '*')"
        )
        expect(count).to_have_text("1 of 3 placed")
        # Backspace and ? from the preview work too; then the keyboard is the page's again.
        page.keyboard.press("Backspace")
        expect(count).to_have_text("0 of 3 placed")
        frame.locator("h1").click()
        page.keyboard.press("?")
        expect(page.locator("#shortcuts")).to_be_visible()


def test_the_shortcuts_help_and_a_report_typed_without_triggering_shortcuts(browser, platform, miners):
    task_id = _text_task(platform, miners["beta"], ["one", "two"])
    with _worker_page(browser, platform, miners["beta"]) as (page, _worker):
        _open(page, platform, task_id)
        dialog = page.locator("#shortcuts")
        page.keyboard.press("?")
        expect(dialog).to_be_visible()
        page.keyboard.press("1")  # the help is in front: keys do not rank behind it
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(page.locator("#ranking-count")).to_have_text("0 of 2 placed")
        page.locator("#open-shortcuts").click()
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()

        page.get_by_role("button", name="Report a problem with response 2").click()
        field = page.get_by_label("What is broken in response 2?")
        expect(field).to_be_focused()
        field.press_sequentially("cut off at line 2? s")
        expect(page.locator("#ranking-count")).to_have_text("0 of 2 placed")
        assert page.locator("#skip-confirm").is_hidden() and dialog.is_hidden()
        page.get_by_role("button", name="Send report").click()
        expect(page.locator("#flagged-2")).to_have_text("You reported: cut off at line 2? s")
        page.reload()  # the platform has it
        expect(page.locator("#flagged-2")).to_have_text("You reported: cut off at line 2? s")


def test_lead_time_is_the_time_on_the_page_not_since_the_claim(browser, platform, miners):
    task_id = _text_task(platform, miners["beta"], ["one", "two"])
    with _worker_page(browser, platform, miners["beta"]) as (page, worker):
        started = time.monotonic()
        _open(page, platform, task_id)
        # The claim is an hour old: what the server would count without the page's measure.
        hour_ago = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(hours=1)
        sql(
            platform.settings.database_url,
            "UPDATE assignments SET created_at = :c WHERE task_id = :t",
            c=hour_ago,
            t=task_id,
        )
        page.keyboard.press("2")
        _submit_by_enter(page)
        wall = time.monotonic() - started
    lead = _history(platform, worker)[task_id]["leadTime"]
    assert lead is not None and 0 < lead < wall


def test_on_a_phone_the_prompt_fits_and_submit_is_in_view(browser, platform, miners):
    prompt = (
        "Explain this log line: " + "x" * 400 + "\n" + "\n".join(f"step {i}: do the thing" for i in range(40))
    )
    task_id = _text_task(platform, miners["beta"], ["one", "two"], prompt=prompt)
    with _worker_page(browser, platform, miners["beta"], viewport=PHONE) as (page, worker):
        _open(page, platform, task_id)
        for box in ("#prompt-text", ".prompt"):
            width, client = page.locator(box).evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert width <= client, f"{box} is cut off: {width} px of text in {client} px"
        more = page.locator("#prompt-more")
        expect(more).to_be_visible()
        more.click()
        expect(more).to_have_attribute("aria-expanded", "true")
        assert page.locator("#prompt-text").evaluate("e => e.scrollHeight <= e.clientHeight")

        # The answer bar: in view without scrolling, the answer in short, and Submit.
        submit = page.locator("#answer-bar-submit")
        assert page.evaluate("scrollY") == 0
        expect(submit).to_be_in_viewport()
        expect(page.locator("#answer-bar-summary")).to_have_text("Not ranked yet")
        page.locator("#answer-bar-jump").click()
        expect(page.locator("#keep-order")).to_be_in_viewport()
        page.locator("#keep-order").click()
        expect(page.locator("#answer-bar-summary")).to_have_text("Ranked: 1, 2")
        with page.expect_navigation():
            submit.click()
        assert _history(platform, worker)[task_id]["ranking"] == {"c1": 1, "c2": 2}
        # A wide screen has the answer panel beside the responses, and no bar.
        page.set_viewport_size(DESKTOP)
        page.goto(f"{platform.url}/tasks/{task_id}")
        expect(page.locator("#answer-bar")).to_be_hidden()
