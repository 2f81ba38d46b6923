"""The task page in a real browser: whole rankings only, holds and drafts, closed tasks,
skip, keys from a live preview, the shortcuts help, lead time, reports, and the phone layout.

The platform, the miners and the browser are the ones ``test_browser.py`` runs (one of each
per module); workers come in by the session an invite link opens, as a cookie.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
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
    from playwright.sync_api import Page, Route

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
    browser, platform: Platform, miner, viewport=DESKTOP, clock=False, touch=False, worker=None
) -> Iterator[tuple[Page, WorkerClient]]:
    """A page logged in as a new worker on ``miner``'s team (or as ``worker``, in a browser of
    its own); ``touch``: a phone's touch screen. No script error may happen on it. The
    browser asks for reduced motion, so a row's tint is read as it ends, not mid-transition."""
    worker = worker or _new_worker(platform, miner)
    context = browser.new_context(
        viewport=viewport, has_touch=touch, is_mobile=touch, reduced_motion="reduce"
    )
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


def _until(page: Page, condition: Callable[[], bool]) -> bool:
    """Whether ``condition()`` came to hold within some 5 s, looked at every 20 ms: for what
    no page element shows (Playwright's own route handlers, the page's storage)."""
    for _ in range(250):
        if condition():
            return True
        page.wait_for_timeout(20)
    return condition()


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
        assert _draft(page, worker, task_id)["placed"] == ["2"]

        # A reload brings the draft back; the page says the task is taken and answers nothing.
        page.reload()
        expect(page.locator("#task-closed")).to_contain_text("other workers hold")
        assert _order(page) == ["2", "1", "3"]
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
        assert page.locator("#submit-task").is_disabled() and page.locator("#skip-task").is_disabled()
        page.keyboard.press("3")  # a closed task's ranking stays as it is
        expect(page.locator("#ranking-status")).to_contain_text("closed")
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
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


# --- ranking: numbers, moves, Keep this order ---------------------------------------------------


def test_typing_every_number_ranks_and_the_last_number_confirms(browser, platform, miners):
    task_id = _text_task(platform, miners["beta"], ["one", "two", "three", "four"])
    with _worker_page(browser, platform, miners["beta"]) as (page, worker):
        _open(page, platform, task_id)
        # What "press their numbers best first" invites: all four. After 2 4 1 the last placed
        # itself; its number, 3, confirms it instead of starting a new ranking.
        for key in "2413":
            page.keyboard.press(key)
        expect(page.locator("#ranking-count")).to_have_text("4 of 4 placed")
        assert _order(page) == ["2", "4", "1", "3"]
        expect(page.locator("#ranking-status")).to_contain_text("Ranked: 2, 4, 1, 3. Press Enter to submit.")
        # Another placed number says where that response is and changes nothing.
        page.keyboard.press("4")
        expect(page.locator("#ranking-status")).to_contain_text("Response 4 is already 2nd")
        assert _order(page) == ["2", "4", "1", "3"]
        _submit_by_enter(page)
    assert _history(platform, worker)[task_id]["ranking"] == {"c2": 1, "c4": 2, "c1": 3, "c3": 4}


def test_a_move_places_the_moved_response_and_nothing_else(browser, platform, miners):
    task_id = _text_task(platform, miners["beta"], ["one", "two", "three", "four"])
    with _worker_page(browser, platform, miners["beta"]) as (page, worker):
        _open(page, platform, task_id)
        count = page.locator("#ranking-count")
        page.get_by_role("button", name="Move response 3 up").click()
        assert _order(page) == ["1", "3", "2", "4"]
        expect(count).to_have_text("1 of 4 placed")
        # Submit is refused, and the responses still without a place are marked.
        page.locator("#submit-task").click()
        expect(page.locator("#task-error")).to_contain_text("Rank every response first (1 of 4 placed)")
        assert page.locator(".rank-item.needs-place").evaluate_all(
            "els => els.map(e => e.dataset.label)"
        ) == [
            "1",
            "2",
            "4",
        ]
        assert task_id not in _history(platform, worker)
        # A drag places the dragged one: two of four.
        page.locator('.rank-item[data-label="4"]').drag_to(
            page.locator('.rank-item[data-label="1"]'), target_position={"x": 20, "y": 2}
        )
        assert _order(page) == ["4", "1", "3", "2"]
        expect(count).to_have_text("2 of 4 placed")
        # A number takes the first place no placed response holds; the last places itself.
        page.keyboard.press("2")
        assert _order(page) == ["4", "2", "3", "1"]
        expect(count).to_have_text("4 of 4 placed")
        page.keyboard.press("Backspace")
        assert _order(page) == ["4", "1", "3", "2"]
        expect(count).to_have_text("2 of 4 placed")
        # Keep this order: the order shown, as an explicit choice.
        page.get_by_role("button", name="Keep this order").click()
        expect(count).to_have_text("4 of 4 placed")
        with page.expect_navigation():
            page.locator("#submit-task").click()
    assert _history(platform, worker)[task_id]["ranking"] == {"c4": 1, "c1": 2, "c3": 3, "c2": 4}


# --- the deadline ----------------------------------------------------------------------------------


def test_a_deadline_that_passes_while_at_work_closes_the_page_and_keeps_the_draft(browser, platform, miners):
    task_id = _text_task(platform, miners["beta"], ["one", "two", "three"])
    with _worker_page(browser, platform, miners["beta"], clock=True) as (page, worker):
        _open(page, platform, task_id)
        # The platform's copy of the draft is saved after a pause in the work, at the latest as
        # the page closes: the test reads it back once that save has been answered.
        with page.expect_response(
            lambda r: r.url.endswith(f"/tasks/{task_id}/draft") and r.request.method == "PUT"
        ) as saved:
            page.keyboard.press("2")
            expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
            page.clock.fast_forward("04:00:05")  # past the task's deadline, four hours out
        assert saved.value.status == 200
        closed = page.locator("#task-closed")
        expect(closed).to_contain_text("its deadline passed at")
        expect(page.locator("#task-closed-draft")).to_be_visible()
        # Not a lost hold to carry on with, and nothing that still ranks or submits.
        expect(page.locator("#hold-lost")).to_be_hidden()
        expect(page.locator("#hold-status")).to_have_text("")
        assert "Press Enter" not in page.locator("#ranking-status").text_content()
        page.keyboard.press("3")
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
        expect(page.locator("#ranking-status")).to_contain_text("closed")
        for control in ("#submit-task", "#keep-order", '[aria-label="Move response 1 up"]'):
            expect(page.locator(control)).to_be_disabled()
        # The work so far is kept, here and on the platform.
        assert _draft(page, worker, task_id)["placed"] == ["2"]
        kept = platform.client.get(f"/api/v1/worker/tasks/{task_id}/draft", headers=worker.auth)
        assert kept.status_code == 200 and kept.json()["placed"] == ["c2"]


# --- drafts, rationale and how to judge -------------------------------------------------------------


def test_the_draft_follows_the_worker_to_another_browser_and_the_rationale_to_the_miner(
    browser, platform, miners
):
    beta = miners["beta"]
    task_id = _text_task(platform, beta, ["one", "two", "three"])
    worker = _new_worker(platform, beta)
    why = "three is the only complete answer"
    with _worker_page(browser, platform, beta, worker=worker) as (page, _):
        _open(page, platform, task_id)
        with page.expect_response(
            lambda r: r.url.endswith(f"/tasks/{task_id}/draft") and why in (r.request.post_data or "")
        ) as saved:
            page.keyboard.press("3")
            page.get_by_label("Why this order?").fill(why)
        assert saved.value.ok

    # Another browser (nothing in its storage) takes the work up where it was left.
    with _worker_page(browser, platform, beta, worker=worker) as (page, _):
        _open(page, platform, task_id)
        assert _order(page) == ["3", "1", "2"]
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
        expect(page.locator("#ranking-status")).to_contain_text("from your other browser")
        rationale = page.get_by_label("Why this order?")
        expect(rationale).to_have_value(why)

        # How to judge: one panel, for this kind of task and its criteria; it stays as the worker leaves it.
        guide = page.locator("#guidelines")
        expect(guide).to_contain_text("does what the prompt asks")
        expect(guide).to_contain_text("Rank all 3 responses, best first")
        assert guide.evaluate("e => e.open")
        guide.locator("summary").click()
        assert not guide.evaluate("e => e.open")
        # The page keeps the choice a moment after the toggle. (wait_for_function would poll
        # by eval, which the page's policy forbids: page.evaluate is not the page's script.)
        assert _until(page, lambda: page.evaluate("localStorage.getItem('dojo-guidelines')") == "closed")
        page.reload()
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
        assert not page.locator("#guidelines").evaluate("e => e.open")

        # The rationale is one line: Enter in it submits the answer, with the rationale.
        page.keyboard.press("1")
        expect(page.locator("#ranking-count")).to_have_text("3 of 3 placed")
        rationale.press("End")
        rationale.press_sequentially(" (checked twice)")
        with page.expect_navigation():
            rationale.press("Enter")
    assert _history(platform, worker)[task_id]["ranking"] == {"c3": 1, "c1": 2, "c2": 3}
    got = platform.client.get(f"/api/v1/tasks/task-result/{task_id}", headers={"x-api-key": beta.api_key})
    assert [r["rationale"] for r in got.json()["body"]["taskResults"]] == [why + " (checked twice)"]
    # The answer ended the draft.
    assert (
        platform.client.get(f"/api/v1/worker/tasks/{task_id}/draft", headers=worker.auth).status_code == 204
    )
    # Your work shows it with the answer.
    with _worker_page(browser, platform, beta, worker=worker) as (page, _):
        page.goto(f"{platform.url}/history/{task_id}")
        expect(page.locator("#answer-rationale")).to_have_text(why + " (checked twice)")


def test_an_answer_sent_while_the_draft_is_being_saved_waits_for_that_save(browser, platform, miners):
    """The page saves the draft after a pause in the work; an answer sent while that save is
    still on its way goes after it, or the save could land after the answer and leave on the
    platform a draft of a task already answered (the answer ends the draft)."""
    beta = miners["beta"]
    task_id = _text_task(platform, beta, ["one", "two", "three"])
    with _worker_page(browser, platform, beta) as (page, worker):
        _open(page, platform, task_id)
        held: list[Route] = []

        def hold_draft_saves(route: Route) -> None:
            if route.request.method == "PUT":
                held.append(route)
            else:
                route.continue_()

        page.route(f"**/tasks/{task_id}/draft", hold_draft_saves)
        seen: list[str] = []
        page.on("request", lambda r: seen.append(f"sent {r.method} {r.url.rsplit('/', 1)[-1]}"))
        page.on("response", lambda r: seen.append(f"answered {r.request.method} {r.url.rsplit('/', 1)[-1]}"))
        with page.expect_request(lambda r: r.url.endswith(f"/tasks/{task_id}/draft") and r.method == "PUT"):
            page.keyboard.press("2")
            page.keyboard.press("3")
        expect(page.locator("#ranking-count")).to_have_text("3 of 3 placed")
        _until(page, lambda: bool(held))  # the handler runs as Playwright next reads the browser's events
        assert len(held) == 1
        with page.expect_navigation():
            page.keyboard.press("Enter")
            held[0].continue_()
    assert seen.index("answered PUT draft") < seen.index("sent POST result")
    assert _history(platform, worker)[task_id]["ranking"] == {"c2": 1, "c3": 2, "c1": 3}
    kept = platform.client.get(f"/api/v1/worker/tasks/{task_id}/draft", headers=worker.auth)
    assert kept.status_code == 204


# --- names, touch screens, the skip link and the focus ring -----------------------------------------

# The contrast of the focused element's outline against what it is drawn on (WCAG's formula).
FOCUS_RING = """(el) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let bg = [255, 255, 255];
  for (let p = el.parentElement; p; p = p.parentElement) {
    const c = rgb(getComputedStyle(p).backgroundColor);
    if (c.length < 4 || c[3] > 0) { bg = c; break; }
  }
  const style = getComputedStyle(el);
  const [hi, lo] = [lum(rgb(style.outlineColor)), lum(bg)].sort((a, b) => b - a);
  return { style: style.outlineStyle, width: parseFloat(style.outlineWidth), ratio: (hi + 0.05) / (lo + 0.05) };
}"""


def _ring(page: Page) -> dict:
    return page.evaluate(f"({FOCUS_RING})(document.activeElement)")


def test_the_skip_link_the_focus_ring_and_a_refusal_in_view_on_a_laptop(browser, platform, miners):
    task_id = _text_task(
        platform, miners["beta"], ["A function that calls itself.", "Russian dolls, one in another."]
    )
    with _worker_page(browser, platform, miners["beta"]) as (page, _worker):
        _open(page, platform, task_id)
        # From the top of the page, the second Tab is the way to the answer.
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to your answer")
        expect(skip).to_be_focused()
        rings = {"skip link": _ring(page)}
        page.keyboard.press("Enter")
        expect(page.locator("#answer")).to_be_focused()
        page.keyboard.press("Tab")
        first = page.locator(".rank-item").first
        expect(first).to_be_focused()
        rings["response in the ranking"] = _ring(page)
        # Each response is named by what the worker saw in it, not by its number alone.
        assert (
            first.get_attribute("aria-label")
            == "1st: response 1 (A function that calls itself.), not placed yet"
        )
        expect(page.locator('.rank-item[data-label="2"]')).to_contain_text("Russian dolls, one in another.")
        page.keyboard.press("Shift+ArrowDown")  # moves response 1 down: placed, on a tinted row
        page.keyboard.press("Tab")
        rings["arrow button on a placed response"] = _ring(page)
        page.locator("#keep-order").focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")
        rings["Keep this order"] = _ring(page)
        for name, ring in rings.items():
            assert ring["style"] != "none" and ring["width"] >= 2, name
            assert ring["ratio"] >= 3, f"the focus ring of the {name} has a contrast of {ring['ratio']:.2f}:1"

        # Enter with the ranking not whole: the refusal shows beside Submit, in view.
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("Escape")
        expect(page.locator("#ranking-count")).to_have_text("0 of 2 placed")
        page.keyboard.press("Enter")
        refusal = page.locator("#task-error")
        expect(refusal).to_contain_text("Rank every response first")
        expect(refusal).to_be_in_viewport()


def test_on_a_touch_screen_no_keyboard_hints_and_the_refusal_where_the_worker_taps(browser, platform, miners):
    task_id = _text_task(
        platform,
        miners["beta"],
        ["A function that calls itself.", "Like Russian dolls: each doll holds a smaller one.", "three"],
    )
    with _worker_page(browser, platform, miners["beta"], viewport=PHONE, touch=True) as (page, _worker):
        _open(page, platform, task_id)
        assert page.evaluate("matchMedia('(hover: none) and (pointer: coarse)').matches")
        _base._no_horizontal_overflow(page)  # the names on the list fit, however long
        shown_keys = page.locator("kbd").evaluate_all(
            "els => els.filter((e) => e.getClientRects().length).map((e) => e.textContent)"
        )
        assert shown_keys == []
        expect(page.locator("#open-shortcuts")).to_be_hidden()
        expect(page.locator("#ranking-help")).to_contain_text("move them with ▲ ▼")
        expect(page.locator('.rank-item[data-label="2"] .rank-summary')).to_have_text(
            "Like Russian dolls: each doll holds a smaller…"
        )
        # Submit at the bottom of the screen with nothing placed: the refusal is said there.
        page.locator("#answer-bar-submit").tap()
        bar = page.locator("#answer-bar-summary")
        expect(bar).to_contain_text("Rank every response first (0 of 3 placed): move them with ▲ ▼")
        expect(bar).to_be_in_viewport()
        # A tap on ▲ places that response only.
        page.locator("#answer-bar-jump").tap()
        page.get_by_role("button", name="Move response 2 up").tap()
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
        expect(page.locator("#answer-bar-summary")).to_have_text("1 of 3 placed")
        assert "Press" not in page.locator("#ranking-status").text_content()


# --- the Content-Security-Policy -------------------------------------------------------------------


def _directive(policy: str, name: str) -> str | None:
    for part in policy.split(";"):
        words = part.split()
        if words and words[0] == name:
            return " ".join(words[1:])
    return None


def test_no_page_runs_an_inline_script_and_none_breaks_its_policy(browser, platform, miners):
    beta = miners["beta"]
    task_id = _base._ball_task(platform, beta)
    worker = _new_worker(platform, beta)
    hits_before = list(platform.canary.hits)
    context = browser.new_context(viewport=DESKTOP)
    context.add_cookies(
        [
            {"name": WORKER_COOKIE, "value": worker.token, "url": platform.url},
            {"name": "dojo_miner_session", "value": beta.token, "url": platform.url},
        ]
    )
    context.add_init_script(
        "window.__violations = [];"
        " document.addEventListener('securitypolicyviolation',"
        " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    page = context.new_page()
    console: list[str] = []
    page.on(
        "console",
        lambda m: (
            console.append(m.text)
            if "Content Security Policy" in m.text and "/preview/" not in (m.location or {}).get("url", "")
            else None
        ),
    )
    # An answer of the worker's, for its read-only page under Your work.
    answered = _base._ball_task(platform, beta)
    platform.client.post(f"/api/v1/worker/tasks/{answered}/hold", headers=worker.auth).raise_for_status()
    result = [
        {"type": "ranking", "value": {"cid-a": 1, "cid-b": 2, "cid-c": 3}},
        {"type": "multi-score", "value": {"cid-a": 9, "cid-b": 5, "cid-c": 2}},
    ]
    platform.client.post(
        f"/api/v1/worker/tasks/{answered}/result", json={"resultData": result}, headers=worker.auth
    ).raise_for_status()
    try:
        pages = ["/login", "/miner/login", "/tasks", "/keys", "/history", "/welcome", "/miner", "/miner/team"]
        pages += [f"/tasks/{task_id}", f"/history/{answered}", "/tasks/no-such-task"]
        pages += [platform.invite(beta).removeprefix(platform.url)]
        for path in pages:
            response = page.goto(platform.url + path)
            assert response is not None
            policy = response.headers["content-security-policy"]
            scripts = _directive(policy, "script-src") or _directive(policy, "default-src") or ""
            assert "'unsafe-inline'" not in scripts, f"{path}: {policy}"
            assert page.locator("script:not([src])").count() == 0, path
            page.wait_for_load_state("load")
            assert page.evaluate("window.__violations") == [], path
        assert console == []

        # The task page works under it: previews run in documents of their own, keys rank.
        page.goto(f"{platform.url}/tasks/{task_id}")
        expect(page.locator('.rank-item[data-label="1"]')).to_contain_text("Bouncing ball")
        expect(page.locator('.rank-item[data-label="2"]')).to_contain_text("Counter")
        first = page.frame_locator("#completion-1 iframe")
        expect(first.locator("h1")).to_have_text("Bouncing ball")
        first.locator("h1").click()
        page.keyboard.press("2")
        expect(page.locator("#ranking-count")).to_have_text("1 of 3 placed")
        assert page.evaluate("window.__violations") == []
        # So does the read-only answer's.
        page.goto(f"{platform.url}/history/{answered}")
        page.locator("#answer-response-1 summary", has_text="Preview").click()
        expect(page.frame_locator("#answer-response-1 iframe").locator("h1")).to_have_text("Bouncing ball")
        assert page.evaluate("window.__violations") == []

        # A preview opened on its own is as shut in as in its frame: no cookies, no network.
        preview = context.new_page()
        served = preview.goto(f"{platform.url}/tasks/{task_id}/preview/2")
        assert "sandbox allow-scripts" in served.headers["content-security-policy"]
        preview.locator("body[data-ran=yes]").wait_for()
        for probe in ("cookie", "storage"):
            assert "blocked" in preview.locator(f"#probe-{probe}").text_content(), probe
        preview.locator("#probe-fetch").wait_for()
        assert "blocked" in preview.locator("#probe-fetch").text_content()
        # Another worker's browser, or none, gets no preview of this task.
        anonymous = browser.new_context().request.get(f"{platform.url}/tasks/{task_id}/preview/2")
        assert anonymous.status == 401
        assert platform.canary.hits == hits_before, f"a preview reached the network: {platform.canary.hits}"
    finally:
        context.close()
