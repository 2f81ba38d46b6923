"""The miner's page in a real browser: an invite link made with a button and copied with
another, a new key shown once with its copy button, and a task row that opens to each
worker's ranking (by the response numbers the workers saw) and the completions they flagged.

The platform, the miners and the browser are those of ``test_browser``; workers act through
the pages, as people do.
"""

from __future__ import annotations

import re

import pytest

from tests.dojo.platform import test_browser as shared
from tests.dojo.platform.test_browser import DESKTOP, RANKING, MinerOnPlatform, Platform

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect

# The platform and its two miners, one of each for this module (pytest finds fixtures by name).
platform = shared.platform
miners = shared.miners


def _miner_context(browser, platform: Platform, miner: MinerOnPlatform):
    """A browser context logged in as ``miner`` (its session cookie), allowed the clipboard."""
    context = browser.new_context(viewport=DESKTOP, permissions=["clipboard-read", "clipboard-write"])
    host = platform.url.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "dojo_miner_session", "value": miner.token, "domain": host, "path": "/"}])
    return context


def _clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def test_the_invite_button_makes_a_link_that_is_copied_and_lets_a_worker_in(browser, platform, miners):
    alpha = miners["alpha"]
    context = _miner_context(browser, platform, alpha)
    page = context.new_page()
    try:
        page.goto(f"{platform.url}/miner")
        page.get_by_role("button", name="Invite a worker").click()
        link = page.get_by_label("Invite link (send it to one worker)")
        expect(link).to_have_value(re.compile(re.escape(f"{platform.url}/invite/inv_") + r"\S+"))
        url = link.input_value()
        page.get_by_role("button", name="Copy link").click()
        expect(page.get_by_role("button", name="Copied")).to_be_visible()
        assert _clipboard(page) == url

        # A new key is shown once, in full, with its own copy button.
        column = page.locator('[data-key-kind="api-keys"]')
        column.get_by_role("button", name="Generate API key").click()
        key = column.locator("[data-new-key]")
        expect(key).to_have_text(re.compile(r"dojo_api_[A-Za-z0-9_-]{43}"))
        column.get_by_role("button", name="Copy key").click()
        expect(column.get_by_role("button", name="Copied")).to_be_visible()
        assert _clipboard(page) == key.text_content()
    finally:
        context.close()

    # The copied link lets one person join alpha's team; it works once.
    worker = browser.new_context(viewport=DESKTOP)
    joining = worker.new_page()
    try:
        joining.goto(url)
        assert joining.get_by_text(alpha.hotkey).is_visible()
        joining.get_by_role("button", name="Join the team").click()
        joining.wait_for_url(f"{platform.url}/welcome")
    finally:
        worker.close()
    again = browser.new_context(viewport=DESKTOP)
    try:
        late = again.new_page()
        late.goto(url)
        expect(late.get_by_role("heading", name="Invite link not valid")).to_be_visible()
    finally:
        again.close()


def test_a_task_row_opens_to_each_ranking_and_the_flags(browser, platform, miners):
    beta = miners["beta"]
    task_id = platform.create_task(
        beta,
        "Which greeting is friendlier?",
        "Greet a new colleague.",
        [
            {"model": "terse-model", "cid": "g1", "completion": "Hi."},
            {"model": "warm-model", "cid": "g2", "completion": "Welcome aboard, glad to have you!"},
        ],
        RANKING,
        max_results=2,
    )
    worker = browser.new_context(viewport=DESKTOP)
    page = worker.new_page()
    try:
        shared._join_by_invite(page, platform, beta)
        page.goto(f"{platform.url}/tasks/{task_id}")
        page.get_by_role("button", name="Report a problem with response 1").click()
        page.get_by_label("What is broken in response 1?").fill("Too short to judge")
        page.get_by_role("button", name="Send report").click()
        expect(page.locator("#flagged-1")).to_contain_text("Too short to judge")
        page.keyboard.press("2")  # response 2 first; response 1 places itself
        with page.expect_navigation():
            page.keyboard.press("Enter")
    finally:
        worker.close()

    context = _miner_context(browser, platform, beta)
    miner_page = context.new_page()
    try:
        miner_page.goto(f"{platform.url}/miner")
        answers = miner_page.locator(f'tr[data-answers-for="{task_id}"]')
        summary = answers.locator("summary")
        expect(summary).to_have_text("1 answer · 1 flag")
        assert not answers.locator("table.answers").is_visible()  # closed until opened
        summary.click()
        # The ranking by the response numbers the worker saw (2 first), not by completion ids.
        order = answers.locator("ol.answer-order li [data-response]")
        expect(order).to_have_text(["Response 2", "Response 1"])
        expect(answers.locator("ol.answer-order")).to_contain_text("warm-model")
        assert "g2" not in answers.locator("ol.answer-order").inner_text()
        flag = answers.locator('li[data-flag-cid="g1"]')
        expect(flag).to_contain_text("Response 1")
        expect(flag).to_contain_text("Too short to judge")
        lead_time = answers.locator("[data-lead-time]").get_attribute("data-lead-time")
        assert lead_time and float(lead_time) > 0
    finally:
        context.close()
