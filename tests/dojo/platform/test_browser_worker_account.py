"""An invited worker's account in a real browser: the recovery code shown once after
joining, logging back in with it to the same worker, the history of its own answers, a new
code, and the invite's access on the keys and tasks pages.

The platform, the miners and the browser are those of ``test_browser``; the miners act
through the HTTP API, the worker through the pages.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.dojo.platform import test_browser as shared
from tests.dojo.platform._support import task_body
from tests.dojo.platform.test_browser import (
    DESKTOP,
    PHONE,
    RANKING,
    MinerOnPlatform,
    Platform,
    _no_horizontal_overflow,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
if TYPE_CHECKING:
    from playwright.sync_api import Page

# The platform and its two miners, one of each for this module (pytest finds fixtures by name).
platform = shared.platform
miners = shared.miners
CODE = re.compile(r"dojo-rc(-[A-Z0-9]{5}){5}")


def _join(page: Page, platform: Platform, miner: MinerOnPlatform) -> str:
    """Join ``miner``'s team by invite as a new worker; returns the recovery code the welcome page shows."""
    page.goto(platform.invite(miner))
    page.get_by_role("button", name="Join the team").click()
    page.wait_for_url(f"{platform.url}/welcome")
    code = page.locator("#recovery-code").text_content().strip()
    assert CODE.fullmatch(code), code
    return code


def _two_way_task(platform: Platform, miner: MinerOnPlatform, title: str, max_results: int = 3) -> str:
    return platform.create_task(
        miner,
        title,
        "Say hello.",
        [
            {"model": "x", "cid": "h1", "completion": "Hello."},
            {"model": "y", "cid": "h2", "completion": "Hello there, friend!"},
        ],
        RANKING,
        max_results=max_results,
    )


def _rank_second_first(page: Page, platform: Platform, task_id: str) -> None:
    """On the task page: response 2 first (the last places itself), then submit."""
    page.goto(f"{platform.url}/tasks/{task_id}")
    page.locator("body").focus()
    page.keyboard.press("2")
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _recover(page: Page, platform: Platform, code: str) -> None:
    page.get_by_text("Have a recovery code?").click()
    page.get_by_label("Recovery code").fill(code)
    page.get_by_role("button", name="Log in with the code").click()


def _log_out(page: Page, platform: Platform) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{platform.url}/login")


def _worker_cookie(page: Page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "dojo_worker_session")


def test_recovery_code_shown_once_brings_back_the_same_worker(browser, platform, miners):
    alpha = miners["alpha"]
    task_id = _two_way_task(platform, alpha, "Greet the user")
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=platform.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # Joining shows the code, a copy button and how to keep it.
        code = _join(page, platform, alpha)
        assert page.get_by_role("heading", name="Keep it safe").is_visible()
        assert page.get_by_text("Do not share it").is_visible()
        page.get_by_role("button", name="Copy code").click()
        expect(page.get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == code
        who = page.locator(".who .pill").get_attribute("title")
        assert who.startswith("invited worker ")

        # Once: neither a reload nor the home page shows it again.
        page.reload()
        assert code not in page.content()
        assert "shown once" in page.locator("#code-shown").text_content()
        page.goto(f"{platform.url}/")
        page.wait_for_url(f"{platform.url}/tasks")
        assert code not in page.content()

        _rank_second_first(page, platform, task_id)
        _log_out(page, platform)
        page.goto(f"{platform.url}/tasks")
        page.wait_for_url(f"{platform.url}/login")

        # A wrong code says so and logs nobody in.
        _recover(page, platform, "dojo-rc-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
        expect(page.locator("#recover-error")).to_contain_text("That recovery code does not work")
        assert page.url.startswith(f"{platform.url}/login")
        assert page.locator(".who .pill").count() == 0

        # The right one (typed in lower case, without dashes) is the same worker again.
        page.get_by_label("Recovery code").fill(code.lower().replace("-", " "))
        page.get_by_role("button", name="Log in with the code").click()
        page.wait_for_url(f"{platform.url}/tasks")
        assert page.locator(".who .pill").get_attribute("title") == who
        # The task it ranked is its own done one, not offered again: nothing waits for it.
        assert (
            page.locator(f'tr[data-task-id="{task_id}"] [data-state]').get_attribute("data-state") == "done"
        )
        assert page.locator("#available").text_content() == "0"
        page.get_by_role("button", name="Start next task").click()
        page.wait_for_url(f"{platform.url}/tasks?none=1")
        # Its history shows the earlier answer, response 2 first.
        page.get_by_role("link", name="Your work").click()
        row = page.locator(f'#history tr[data-task-id="{task_id}"]')
        assert row.locator("[data-order]").text_content().strip() == "2 › 1"
        assert page.locator("#done-total").text_content() == "1"
        assert errors == []
    finally:
        context.close()


def test_a_used_invite_link_and_the_invite_page_lead_to_the_recovery_code(browser, platform, miners):
    beta = miners["beta"]
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        link = platform.invite(beta)
        page.goto(link)
        page.get_by_role("button", name="Join the team").click()
        page.wait_for_url(f"{platform.url}/welcome")
        code = page.locator("#recovery-code").text_content().strip()
        who = page.locator(".who .pill").get_attribute("title")
        _log_out(page, platform)

        # The person opens the link they joined with again: spent, and the page says where to go.
        page.goto(link)
        assert page.get_by_role("heading", name="Invite link not valid").is_visible()
        assert "recovery code" in page.locator("#message-hint").text_content()
        page.locator("main").get_by_role("link", name="Log in").click()
        page.wait_for_url(f"{platform.url}/login#recover")
        expect(page.get_by_label("Recovery code")).to_be_focused()

        # A new link from the miner: the invite page offers the code before making a new account,
        # and after logging in with it the same worker is back on the invite page.
        fresh = platform.invite(beta)
        page.goto(fresh)
        page.get_by_role("link", name="log back in with it").click()
        page.get_by_label("Recovery code").fill(code)
        page.get_by_role("button", name="Log in with the code").click()
        page.wait_for_url(fresh)
        assert page.locator(".who .pill").get_attribute("title") == who
        assert page.get_by_text("Joining adds this team to your account").is_visible()
        _no_horizontal_overflow(page)
    finally:
        context.close()


def test_history_pages_totals_and_a_new_recovery_code(browser, platform, miners):
    beta = miners["beta"]
    task_ids = []
    for _ in range(6):  # 60 tasks, 10 a request
        created = platform.client.post(
            "/api/v1/tasks/create-tasks", json=task_body(tasks=10), headers={"x-api-key": beta.api_key}
        )
        assert created.status_code == 200, created.text
        task_ids += created.json()["body"]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        old_code = _join(page, platform, beta)
        auth = {"Authorization": f"Bearer {_worker_cookie(page)}"}
        # 51 answers, a whole ranking each, with lead times 60 s, then 2 s … 51 s; the first
        # answer changed at the end (no time measured for the change); one skip.
        for task_id, seconds in zip(task_ids[:51], [60, *range(2, 52)], strict=True):
            order = ["c2", "c0", "c1"] if seconds == 51 else ["c0", "c1", "c2"]
            submitted = platform.client.post(
                f"/api/v1/worker/tasks/{task_id}/result",
                json={
                    "resultData": [{"type": "ranking", "value": {c: r for r, c in enumerate(order, 1)}}],
                    "leadTime": seconds,
                },
                headers=auth,
            )
            assert submitted.status_code == 200, submitted.text
        resubmitted = platform.client.post(
            f"/api/v1/worker/tasks/{task_ids[0]}/result",
            json={"resultData": [{"type": "ranking", "value": {"c1": 1, "c2": 2, "c0": 3}}]},
            headers=auth,
        )
        assert resubmitted.json()["replaced"] is True
        skipped = platform.client.post(f"/api/v1/worker/tasks/{task_ids[51]}/skip", headers=auth)
        assert skipped.status_code == 200, skipped.text

        page.goto(f"{platform.url}/history")
        assert page.locator("#done-total").text_content() == "51"
        assert page.locator("#skipped-total").text_content() == "1"
        # 2 … 51 s and 60 s: 1385 s in all; the median of the 51 is the 26th, 27 s.
        assert page.locator("#time-total").text_content() == "23 min 5 s"
        assert page.locator("#time-median").text_content() == "27 s"
        rows = page.locator("#history tbody tr")
        assert rows.count() == 50
        # Newest first: the changed answer, then the last new one (response 3 first, 51 s).
        first, second = rows.nth(0), rows.nth(1)
        assert first.get_attribute("data-task-id") == task_ids[0]
        assert first.locator("[data-order]").text_content().strip() == "2 › 3 › 1"
        assert "changed" in first.text_content()
        assert first.locator("[data-time]").text_content() == "1 min"
        assert second.get_attribute("data-task-id") == task_ids[50]
        assert second.locator("[data-order]").text_content().strip() == "3 › 1 › 2"
        assert second.locator("[data-time]").text_content() == "51 s"
        assert second.locator("[data-state]").text_content() == "open"
        assert "Page 1 of 2" in page.locator("#page-of").text_content()
        page.get_by_role("link", name="Older").click()
        page.wait_for_url(f"{platform.url}/history?page=2")
        assert [r.get_attribute("data-task-id") for r in page.locator("#history tbody tr").all()] == [
            task_ids[1]
        ]
        assert page.get_by_role("link", name="Older").count() == 0
        assert page.get_by_role("link", name="Newer").is_visible()
        # The skipped task is not an answer: it is on neither page.
        assert page.locator(f'tr[data-task-id="{task_ids[51]}"]').count() == 0

        # A new recovery code, shown once; the old one stops working, the new one logs back in.
        page.get_by_role("button", name="Make a new recovery code").click()
        result = page.locator("#new-recovery-result")
        expect(result).to_be_visible()  # once the platform has answered
        expect(result).to_contain_text("Your old code no longer works")
        expect(page.locator("#new-recovery-code")).to_have_text(CODE)
        new_code = page.locator("#new-recovery-code").text_content().strip()
        assert CODE.fullmatch(new_code) and new_code != old_code
        who = page.locator(".who .pill").get_attribute("title")
        page.reload()
        assert new_code not in page.content()
        _log_out(page, platform)
        _recover(page, platform, old_code)
        expect(page.locator("#recover-error")).to_contain_text("does not work")
        page.get_by_label("Recovery code").fill(new_code)
        page.get_by_role("button", name="Log in with the code").click()
        page.wait_for_url(f"{platform.url}/tasks")
        assert page.locator(".who .pill").get_attribute("title") == who
        _no_horizontal_overflow(page)
        page.goto(f"{platform.url}/history")
        page.set_viewport_size(PHONE)
        _no_horizontal_overflow(page)
    finally:
        context.close()


def test_invite_access_needs_no_key_and_a_disabled_key_says_so(browser, platform, miners):
    alpha, beta = miners["alpha"], miners["beta"]
    miner_auth = {"Authorization": f"Bearer {beta.token}"}
    key = platform.client.post("/api/v1/miner/subscription-keys", headers=miner_auth).json()
    beta_task = _two_way_task(platform, beta, "A task of beta's")
    # A task that a first worker fills: the list of a second worker does not offer it.
    full_task = _two_way_task(platform, alpha, "Only one answer wanted", max_results=1)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    other = browser.new_context(viewport=DESKTOP).new_page()
    try:
        _join(page, platform, alpha)
        page.goto(f"{platform.url}/keys")
        (row,) = page.locator("#subscriptions tbody tr").all()
        assert row.get_attribute("data-by-invite") is not None
        assert "no key needed" in row.text_content()
        assert page.locator("#invite-teams").is_visible()
        assert page.get_by_role("heading", name="Add a key from another miner").is_visible()
        page.goto(f"{platform.url}/tasks")
        assert page.locator("#no-team").count() == 0
        assert "add a subscription key" not in page.locator("main").text_content()
        assert page.get_by_role("button", name="Start next task").is_enabled()
        _rank_second_first(page, platform, full_task)
        page.goto(f"{platform.url}/tasks")
        mine = page.locator(f'tr[data-task-id="{full_task}"]')
        assert mine.locator("[data-state]").get_attribute("data-state") == "done"
        assert "task full" in mine.text_content()

        _join(other, platform, alpha)
        other.goto(f"{platform.url}/tasks")
        assert other.locator(f'tr[data-task-id="{full_task}"]').count() == 0
        states = other.locator("#task-list [data-state]").evaluate_all("els => els.map(e => e.dataset.state)")
        assert set(states) <= {"open", "held"}, states

        # A key from beta brings beta's task; once beta disables the key, the keys page marks it
        # and the task leaves the list.
        page.goto(f"{platform.url}/keys")
        page.get_by_label("Name").fill("Team Beta")
        page.get_by_label("Subscription key").fill(key["key"])
        page.get_by_role("button", name="Add key").click()
        page.wait_for_url(f"{platform.url}/keys?added=1")
        page.goto(f"{platform.url}/tasks")
        assert page.locator(f'tr[data-task-id="{beta_task}"]').count() == 1
        disabled = platform.client.delete(f"/api/v1/miner/subscription-keys/{key['id']}", headers=miner_auth)
        assert disabled.status_code in (200, 204), disabled.text
        page.goto(f"{platform.url}/keys")
        beta_row = page.locator("#subscriptions tr", has_text="Team Beta")
        assert beta_row.get_attribute("data-disabled") is not None
        assert "key disabled by the miner" in beta_row.text_content()
        assert page.locator("#disabled-keys").is_visible()
        page.goto(f"{platform.url}/tasks")
        assert page.locator(f'tr[data-task-id="{beta_task}"]').count() == 0
    finally:
        other.context.close()
        context.close()
