"""A worker's hours and a miner's team in a real browser: actions that cannot be undone ask
first, tasks named by their prompts, *Your work* comparing each answer with the other
workers' and showing the validator's score, an answer opened read-only, the miner's team
page (figures, invites, removing a worker, the message workers see), a dashboard a page at
a time, and a new key that joins the list at once.

The platform, the miners and the browser are those of ``test_browser``; other workers act
through the HTTP API, the people under test through the pages. With
``DOJO_UPDATE_SCREENSHOTS=1`` the tests refresh ``docs/your-work.png`` and ``docs/team-page.png``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.dojo.platform import test_browser as shared
from tests.dojo.platform._support import ranking, sign_in_worker, sql, task_body
from tests.dojo.platform.test_browser import DESKTOP, DOCS, PHONE, RANKING, MinerOnPlatform, Platform
from tests.dojo.platform.test_browser_miner_page import _miner_context

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
if TYPE_CHECKING:
    from playwright.sync_api import Page

# The platform and its two miners, one of each for this module (pytest finds fixtures by name).
platform = shared.platform
miners = shared.miners


def _three_way_task(platform: Platform, miner: MinerOnPlatform, prompt: str, max_results: int = 3) -> str:
    return platform.create_task(
        miner,
        "Which answer does what the prompt asks best?",
        prompt,
        [
            {"model": "m1", "cid": "r1", "completion": "The first answer."},
            {"model": "m2", "cid": "r2", "completion": "The second answer, a little longer."},
            {"model": "m3", "cid": "r3", "completion": "The third answer."},
        ],
        RANKING,
        max_results=max_results,
    )


def _answer_by_api(platform: Platform, miner: MinerOnPlatform, task_id: str, order: list[str]) -> None:
    """Another worker of ``miner``'s (a subscription key) answers through the API."""
    with httpx.Client(base_url=platform.url, timeout=10) as http:
        worker = sign_in_worker(http)
        http.post(
            "/api/v1/worker/subscriptions",
            json={"name": "team", "key": miner.subscription_key},
            headers=worker.auth,
        ).raise_for_status()
        answered = http.post(
            f"/api/v1/worker/tasks/{task_id}/result", json={"resultData": ranking(order)}, headers=worker.auth
        )
        assert answered.status_code == 200, answered.text


def _report_score(platform: Platform, miner: MinerOnPlatform, task_id: str, score: float) -> None:
    """What the miner does when a validator's ScoringResult arrives."""
    reported = platform.client.put(
        f"/api/v1/tasks/{task_id}/score", json={"score": score}, headers={"x-api-key": miner.api_key}
    )
    assert reported.status_code == 200, reported.text


def _rank(page: Page, platform: Platform, task_id: str, *keys: str) -> None:
    page.goto(f"{platform.url}/tasks/{task_id}")
    page.locator("body").focus()
    for key in keys:
        page.keyboard.press(key)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _screenshot(page: Page, name: str, tmp_path) -> None:
    """``docs/<name>`` on request only, so that a test run leaves the tree clean."""
    target = DOCS / name if os.environ.get("DOJO_UPDATE_SCREENSHOTS") else tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


def _confirm(page: Page, says: str, button: str) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(says)
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice first
    dialog.get_by_role("button", name=button).click()
    expect(dialog).to_have_count(0)


def _cancel(page: Page, says: str, key: str | None = None) -> None:
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(says)
    if key:
        page.keyboard.press(key)
    else:
        dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)


def test_leaving_a_team_and_removing_a_key_ask_first(browser, platform, miners):
    alpha, beta = miners["alpha"], miners["beta"]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        shared._join_by_invite(page, platform, alpha)
        page.goto(f"{platform.url}/keys")
        page.get_by_label("Name").fill("Team Beta")
        page.get_by_label("Subscription key").fill(beta.subscription_key)
        page.get_by_role("button", name="Add key").click()
        page.wait_for_url(f"{platform.url}/keys?added=1")
        invited = page.locator("#subscriptions tr[data-by-invite]")
        keyed = page.locator("#subscriptions tr", has_text="Team Beta")

        # Leave is for good: it asks, and Cancel (or Esc) leaves everything as it was.
        invited.get_by_role("button", name=re.compile("Leave team")).click()
        _cancel(page, "cannot be undone")
        invited.get_by_role("button", name=re.compile("Leave team")).click()
        _cancel(page, "new invite link", key="Escape")
        page.reload()
        expect(invited).to_have_count(1)
        invited.get_by_role("button", name=re.compile("Leave team")).click()
        _confirm(page, "cannot be undone", "Leave the team")
        expect(invited).to_have_count(0)
        expect(page.locator("#flash")).to_contain_text("You left the team")

        keyed.get_by_role("button", name="Remove key Team Beta").click()
        _cancel(page, "add their subscription key again")
        expect(keyed).to_have_count(1)
        keyed.get_by_role("button", name="Remove key Team Beta").click()
        _confirm(page, "stop getting this miner's tasks", "Remove the key")
        # The row goes once the platform has answered; only then does a reload show the result.
        expect(keyed).to_have_count(0)
        expect(page.locator("#flash")).to_contain_text("Key removed")
        page.reload()
        expect(page.locator("#no-subscriptions")).to_be_visible()
    finally:
        context.close()


def test_disabling_the_key_the_miner_runs_with_says_so_and_a_new_key_joins_the_list(
    browser, platform, miners
):
    alpha = miners["alpha"]
    _three_way_task(platform, alpha, "Any task: the miner's API key is now in use.")
    context = _miner_context(browser, platform, alpha)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{platform.url}/miner")
        column = page.locator('[data-key-kind="api-keys"]')
        running = column.locator("li[data-in-use]")
        expect(running).to_have_count(1)
        expect(running).to_contain_text("your miner's key")
        expect(running).to_contain_text(re.compile(r"last used (just now|\d+ min ago)"))
        running.get_by_role("button", name=re.compile("Disable key")).click()
        _cancel(page, "most likely the DOJO_API_KEY your running miner uses")
        assert (
            platform.client.get("/api/v1/tasks/unknown", headers={"x-api-key": alpha.api_key}).status_code
            == 404
        )

        # A new key shows in full once and joins the list at once, with its own Disable.
        keys_before = column.locator("li[data-key-id]").count()
        column.get_by_role("button", name="Generate API key").click()
        key = column.locator("[data-new-key]")
        expect(key).to_have_text(re.compile(r"dojo_api_\S{43}"))
        prefix = key.text_content()[:16]
        expect(column.locator("li[data-key-id]")).to_have_count(keys_before + 1)
        fresh = column.locator(f'li[data-prefix="{prefix}"]')
        expect(fresh).to_contain_text("never used")
        fresh.get_by_role("button", name=f"Disable key {prefix}").click()
        _confirm(page, "never used", "Disable the key")
        expect(fresh).to_have_attribute("data-disabled", "")
        new_key = key.text_content()
        assert platform.client.get("/api/v1/tasks/unknown", headers={"x-api-key": new_key}).status_code == 401
        assert errors == []
    finally:
        context.close()


def test_your_work_names_tasks_compares_answers_and_opens_them_read_only(browser, platform, miners, tmp_path):
    alpha = miners["alpha"]
    haiku = _three_way_task(platform, alpha, "Write a haiku about the sea, in lower case, with no title.")
    other = _three_way_task(platform, alpha, "Explain recursion to a child in two sentences.")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        shared._join_by_invite(page, platform, alpha)
        # The list names each task by its prompt's first words, not the miner's one title.
        expect(page.locator(f'#task-list tr[data-task-id="{haiku}"] a')).to_have_text(
            "Write a haiku about the sea, in lower case, with no title."
        )
        expect(page.locator(f'#task-list tr[data-task-id="{other}"] a')).to_have_text(
            "Explain recursion to a child in two sentences."
        )
        _rank(page, platform, haiku, "1", "2")  # 1, 2, then 3 places itself
        _rank(page, platform, other, "3", "2")
        # Two more workers answer the haiku: one in the same order, one with the last two
        # swapped. Against their consensus (ranks 1, 2.5, 2.5) this worker agrees 6/7.
        _answer_by_api(platform, alpha, haiku, ["r1", "r2", "r3"])
        _answer_by_api(platform, alpha, haiku, ["r1", "r3", "r2"])
        _report_score(platform, alpha, haiku, 0.75)

        page.goto(f"{platform.url}/history")
        row = page.locator(f'#history tr[data-task-id="{haiku}"]')
        link = row.get_by_role("link", name="Write a haiku about the sea, in lower case, with no title.")
        expect(link).to_be_visible()
        assert float(row.locator("[data-agreement]").get_attribute("data-agreement")) == pytest.approx(6 / 7)
        expect(row.locator("[data-agreement]")).to_have_text("0.86")
        expect(row.locator("[data-score]")).to_have_text("0.75")
        alone = page.locator(f'#history tr[data-task-id="{other}"]')
        expect(alone.locator("[data-agreement]")).to_have_text("—")  # nobody else answered it yet
        expect(alone.locator("[data-score]")).to_have_text("—")
        expect(page.locator("#agreement-mean")).to_have_text("0.86")
        expect(page.locator("#score-mean")).to_have_text("0.75")
        _screenshot(page, "your-work.png", tmp_path)

        # The answer opens read-only: the responses in the worker's order, how it compares.
        link.click()
        page.wait_for_url(f"{platform.url}/history/{haiku}")
        expect(page.get_by_role("heading", name=re.compile("Your answer"))).to_contain_text("read-only")
        expect(page.locator("#answer-order")).to_have_text("1 › 2 › 3")
        expect(page.locator("#answer-agreement")).to_have_text("0.86")
        expect(page.locator("#answer-score")).to_have_text("0.75")
        expect(page.locator(".completion-title")).to_have_text(
            ["Your #1: Response 1", "Your #2: Response 2", "Your #3: Response 3"]
        )
        assert page.locator("form, button[type=submit]").count() == 0
        expect(page.get_by_role("link", name="change your answer")).to_have_attribute(
            "href", f"/tasks/{haiku}"
        )
        # Once the deadline passed, it still opens, and offers no change.
        sql(
            platform.settings.database_url,
            "UPDATE tasks SET expire_at = '2026-01-01 00:00:00' WHERE id = :id",
            id=haiku,
        )
        page.reload()
        expect(page.locator("#answer-final")).to_have_text(
            "The task's deadline has passed: this answer is final."
        )
        assert page.get_by_role("link", name="change your answer").count() == 0
        page.goto(f"{platform.url}/history")
        expect(row.locator("[data-state]")).to_have_text("complete")
        assert row.get_by_role("link", name="change your answer").count() == 0
        row.get_by_role("link", name=re.compile("Write a haiku")).click()
        page.wait_for_url(f"{platform.url}/history/{haiku}")
        # On a phone both pages fit the width.
        page.set_viewport_size(PHONE)
        for path in ("/history", f"/history/{haiku}"):
            page.goto(platform.url + path)
            shared._no_horizontal_overflow(page)
        # An answer of someone else's, or none: not found.
        assert page.goto(f"{platform.url}/history/no-such-task").status == 404
    finally:
        context.close()


def test_the_team_page_shows_each_worker_and_manages_invites_members_and_the_message(
    browser, platform, miners, tmp_path
):
    beta = miners["beta"]
    task_id = _three_way_task(platform, beta, "Name three colours of the sky at dusk.")
    people = browser.new_context(viewport=DESKTOP)
    worker = people.new_page()
    context = _miner_context(browser, platform, beta)
    page = context.new_page()
    try:
        joined_with = platform.invite(beta)
        worker.goto(joined_with)
        worker.get_by_role("button", name="Join the team").click()
        shared._past_the_welcome(worker, platform)
        _rank(worker, platform, task_id, "2", "1")  # 2, 1, 3
        _answer_by_api(platform, beta, task_id, ["r2", "r1", "r3"])
        _answer_by_api(platform, beta, task_id, ["r2", "r3", "r1"])
        _report_score(platform, beta, task_id, 0.5)
        spare = platform.invite(beta)
        # The id this team's miner knows the worker by, as the worker's own page shows it.
        worker.goto(f"{platform.url}/keys")
        pseudonym = worker.locator("#subscriptions [data-pseudonym]").get_attribute("data-pseudonym")

        page.goto(f"{platform.url}/miner")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
        page.wait_for_url(f"{platform.url}/miner/team")
        row = page.locator(f'#team-members tr[data-worker="{pseudonym}"]')
        expect(row.locator("[data-done]")).to_have_text("1")
        expect(row.locator("[data-skipped]")).to_have_text("0")
        assert float(row.locator("[data-median-time]").get_attribute("data-median-time")) > 0
        assert float(row.locator("[data-agreement]").get_attribute("data-agreement")) == pytest.approx(6 / 7)
        expect(row.locator("[data-score]")).to_contain_text("0.50")
        expect(row).to_contain_text("invite link")
        expect(page.locator("#team-members tbody tr")).to_have_count(3)

        # The invite it joined with says when, and by whom; the spare one is revoked after a question.
        used = page.locator('#team-invites tr[data-state="used"]', has_text=pseudonym)
        expect(used).to_have_count(1)
        unused = page.locator('#team-invites tr[data-state="unused"]')
        expect(unused).to_have_count(1)
        unused.get_by_role("button", name=re.compile("Revoke")).click()
        _confirm(page, "stops working at once", "Revoke the link")
        expect(page.locator('#team-invites tr[data-state="revoked"]')).to_have_count(1)
        stranger = browser.new_context(viewport=DESKTOP)
        try:
            late = stranger.new_page()
            late.goto(spare)
            expect(late.get_by_role("heading", name="Invite link not valid")).to_be_visible()
            expect(late.locator("main")).to_contain_text("took this invite link back")
        finally:
            stranger.close()

        # What the miner tells its team reaches its workers.
        page.get_by_role("textbox", name="Message").fill(
            "We pay 0.2 TAO per hour of ranking, every Monday. Ask @beta on Discord."
        )
        page.get_by_role("button", name="Save message").click()
        expect(page.locator("#flash")).to_contain_text("Message saved")
        worker.goto(f"{platform.url}/tasks")
        expect(worker.locator(".team-notes")).to_contain_text(
            "We pay 0.2 TAO per hour of ranking, every Monday."
        )
        page.reload()
        _screenshot(page, "team-page.png", tmp_path)
        page.set_viewport_size(PHONE)
        for path in ("/miner/team", "/miner"):
            page.goto(platform.url + path)
            shared._no_horizontal_overflow(page)
        page.set_viewport_size(DESKTOP)
        page.goto(f"{platform.url}/miner/team")

        # Removing asks first; then the worker's access ends at once.
        row.get_by_role("button", name=f"Remove worker {pseudonym}").click()
        _cancel(page, "access to your tasks ends at once")
        expect(row).to_have_count(1)
        row.get_by_role("button", name=f"Remove worker {pseudonym}").click()
        _confirm(page, "access to your tasks ends at once", "Remove the worker")
        expect(row).to_have_count(0)
        page.reload()
        expect(page.locator("#team-members tbody tr")).to_have_count(2)
        expect(page.locator(f'#former-members li[data-worker="{pseudonym}"]')).to_contain_text("1 done")
        worker.goto(f"{platform.url}/tasks")
        expect(worker.locator("#no-team")).to_be_visible()
    finally:
        context.close()
        people.close()


def test_the_dashboard_shows_a_page_of_tasks_at_a_time_and_filters_them(browser, platform, miners):
    alpha = miners["alpha"]
    created = []
    for _ in range(3):  # 30 tasks, 10 a request, on top of the others' tasks
        response = platform.client.post(
            "/api/v1/tasks/create-tasks",
            json=task_body(tasks=10),
            headers={"x-api-key": alpha.api_key},
        )
        assert response.status_code == 200, response.text
        created += response.json()["body"]
    context = _miner_context(browser, platform, alpha)
    page = context.new_page()
    try:
        page.goto(f"{platform.url}/miner")
        rows = page.locator("#miner-tasks > tbody > tr[data-task-id]")
        expect(rows).to_have_count(25)
        first_page = [rows.nth(i).get_attribute("data-task-id") for i in range(25)]
        assert set(first_page) <= set(created)  # the newest tasks first
        total = int(re.match(r"(\d+) tasks", page.locator("#task-count").text_content()).group(1))
        with page.expect_navigation():
            page.get_by_role("link", name="Older tasks").click()
        expect(rows).to_have_count(min(25, total - 25))
        second_page = [rows.nth(i).get_attribute("data-task-id") for i in range(rows.count())]
        assert not set(first_page) & set(second_page)
        page.get_by_role("link", name="Latest tasks").click()
        expect(rows.first).to_have_attribute("data-task-id", first_page[0])

        # A filter by state, and by the day the task was created.
        sql(
            platform.settings.database_url,
            "UPDATE tasks SET expire_at = '2026-01-01 00:00:00' WHERE id = :id",
            id=created[3],
        )
        page.get_by_label("State").select_option("expired")
        page.get_by_role("button", name="Show").click()
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-task-id", created[3])
        expect(page.locator("#task-count")).to_contain_text("1 task matches")
        page.get_by_label("State").select_option("")
        page.get_by_label("Created from").fill("2020-01-01")
        page.get_by_label("to", exact=True).fill("2020-01-31")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#miner-tasks")).to_have_count(0)
        expect(page.get_by_text("No task matches these filters.")).to_be_visible()
    finally:
        context.close()
