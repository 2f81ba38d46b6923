"""Each kind of response on the task page in a real browser: text as safe Markdown, dialogue
as turns with their roles (the shared conversation once), images in a grid that zooms by click
and by keyboard; each ranked by keyboard and by mouse at 1280 and at 390 px; HTML and scripts in
text and dialogue inert.

The platform, the miners and the browser are the ones ``test_browser.py`` runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from commons.media import b64encode
from commons.obfuscation import obfuscate_image
from dojo.synthetic.imagegen import deviate, png_bytes, render, sample_scene
from tests.dojo.platform import test_browser as _base
from tests.dojo.platform._support import WorkerClient, sql, workers_by_invite
from tests.dojo.platform.test_browser import DESKTOP, PHONE, RANKING, Platform

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
if TYPE_CHECKING:
    from playwright.sync_api import Page

WORKER_COOKIE = "dojo_worker_session"
platform, miners = _base.platform, _base.miners
WIDTHS = {"1280": DESKTOP, "390": PHONE}


def _create(platform: Platform, miner, task: str, prompt: str, completions: list) -> str:
    payload = {
        "title": "Which response is best?",
        "body": "",
        "expireAt": (datetime.now(timezone.utc) + timedelta(hours=4)).isoformat(),
        "maxResults": 3,
        "taskData": [
            {
                "prompt": prompt,
                "task": task,
                "criteria": RANKING,
                "responses": [
                    {"model": f"m{i}", "cid": f"c{i}", "completion": c} for i, c in enumerate(completions, 1)
                ],
            }
        ],
    }
    response = platform.client.post(
        "/api/v1/tasks/create-tasks", json=payload, headers={"x-api-key": miner.api_key}
    )
    assert response.status_code == 200, response.text
    return response.json()["body"][0]


@contextmanager
def _page(browser, platform: Platform, miner, viewport) -> Iterator[tuple[Page, WorkerClient]]:
    (worker,) = workers_by_invite(platform.settings.database_url, miner.hotkey, 1)
    context = browser.new_context(viewport=viewport)
    context.add_cookies([{"name": WORKER_COOKIE, "value": worker.token, "url": platform.url}])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield page, worker
        assert errors == []
    finally:
        context.close()


def _open(page: Page, platform: Platform, task_id: str) -> None:
    page.goto(f"{platform.url}/tasks/{task_id}")
    expect(page.locator("#hold-status")).to_contain_text("Held for you")


def _rank(page: Page, how: str, best_first: list[str]) -> None:
    """Rank the responses ``best_first`` (their numbers) by keys, or by mouse alone, and submit."""
    if how == "keyboard":
        page.locator("body").click(position={"x": 1, "y": 1})
        for label in best_first[:-1]:
            page.keyboard.press(label)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        return
    # Mouse: move each response to its place with its ▲ buttons, keep that order, Submit.
    for place, label in enumerate(best_first):
        for _ in range(10):
            shown = page.locator("#ranking .rank-item").evaluate_all("els => els.map(e => e.dataset.label)")
            if shown.index(label) == place:
                break
            page.get_by_role("button", name=f"Move response {label} up").click()
    # The order shown is the ranking now: the moved responses are placed, Keep this order
    # places the rest where they stand.
    page.locator("#keep-order").click()
    submit = (
        page.locator("#answer-bar-submit")
        if page.viewport_size["width"] < 900
        else page.locator("#submit-task")
    )
    with page.expect_navigation():
        submit.click()


def _ranked(platform: Platform, worker: WorkerClient, task_id: str) -> dict[str, int]:
    got = platform.client.get("/api/v1/worker/history", headers=worker.auth)
    return {r["taskId"]: r for r in got.json()["results"]}[task_id]["ranking"]


HOSTILE = (
    "**Bold** and a list:\n\n- one\n- two\n\n"
    '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    '<iframe src="{canary}/frame"></iframe>\n\n'
    "[click me](javascript:window.__pwned=3) and ![pixel]({canary}/pixel.png) and <{canary}/auto>"
)


def _inert(page: Page, platform: Platform, card) -> None:
    assert page.evaluate("window.__pwned") is None
    assert card.locator("script, iframe, img, a").count() == 0
    expect(card.locator("strong").first).to_have_text("Bold")
    expect(card.locator("li").first).to_have_text("one")
    # The markup is shown as text; a script link is not a link at all; an image is a link
    # that says where it points and loads nothing.
    expect(card).to_contain_text("<script>window.__pwned = 1</script>")
    expect(card).to_contain_text("[click me](javascript:window.__pwned=3)")
    expect(card.locator(".md-link").first).to_have_text("pixel")
    expect(card.locator(".md-url").first).to_have_text(f"({platform.canary.url}/pixel.png)")
    assert platform.canary.hits == []


@pytest.mark.parametrize("how", ["keyboard", "mouse"])
@pytest.mark.parametrize("width", ["1280", "390"])
def test_text_renders_as_safe_markdown_and_ranks(browser, platform, miners, width, how):
    hostile = HOSTILE.format(canary=platform.canary.url)
    answers = [hostile, "Plain *second* answer.", "Third answer with `code`.", "Fourth:\n\n1. a\n2. b"]
    task_id = _create(platform, miners["alpha"], "TEXT", "Write a short **note**.", answers)
    with _page(browser, platform, miners["alpha"], WIDTHS[width]) as (page, worker):
        _open(page, platform, task_id)
        expect(page.locator(".task-head")).to_contain_text("Text")
        first = page.locator("#completion-1 .markdown")
        _inert(page, platform, first)
        expect(page.locator("#completion-2 em")).to_have_text("second")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        _rank(page, how, ["2", "4", "1", "3"])
        assert _ranked(platform, worker, task_id) == {"c2": 1, "c4": 2, "c1": 3, "c3": 4}


def _dialogue(last: str) -> list[dict]:
    return [
        {"role": "system", "message": "You are a helpful assistant."},
        {"role": "user", "message": "Move my meeting to **Thursday**, not Tuesday."},
        {"role": "assistant", "message": "Sure. Which room?"},
        {"role": "user", "message": "Room 4B. Now write the note."},
        {"role": "assistant", "message": last},
    ]


@pytest.mark.parametrize("how", ["keyboard", "mouse"])
@pytest.mark.parametrize("width", ["1280", "390"])
def test_dialogue_shows_the_conversation_once_and_each_reply_with_its_role(
    browser, platform, miners, width, how
):
    hostile = HOSTILE.format(canary=platform.canary.url)
    replies = [
        hostile,
        "See you on Thursday in Room 4B.",
        "See you on Tuesday in Room 4B.",
        "Thursday, Room 12.",
    ]
    task_id = _create(
        platform, miners["alpha"], "DIALOGUE", "Continue the conversation.", [_dialogue(r) for r in replies]
    )
    with _page(browser, platform, miners["alpha"], WIDTHS[width]) as (page, worker):
        _open(page, platform, task_id)
        conversation = page.locator(".prompt .conversation")
        expect(conversation.locator(".turn")).to_have_count(4)
        expect(conversation.locator(".turn .role")).to_have_text(["system", "user", "assistant", "user"])
        expect(conversation.locator(".turn-user strong")).to_have_text("Thursday")
        # Each response shows only its own turn, the assistant's reply.
        for n in range(1, 5):
            card = page.locator(f"#completion-{n}")
            expect(card.locator(".turn")).to_have_count(1)
            expect(card.locator(".turn .role")).to_have_text("assistant")
        expect(page.locator("#completion-2 .turn")).to_contain_text("Thursday in Room 4B")
        _inert(page, platform, page.locator("#completion-1 .turn .markdown"))
        _rank(page, how, ["2", "4", "3", "1"])
        assert _ranked(platform, worker, task_id) == {"c2": 1, "c4": 2, "c3": 3, "c1": 4}


def _images(n: int = 4, size: int = 1024) -> list[dict]:
    rng = random.Random(9)
    scene = sample_scene(rng)
    out = []
    for s in [scene, *deviate(scene, n - 1, rng)]:
        _, data = obfuscate_image(png_bytes(render(s, size, rng)), rng)
        out.append(
            {
                "kind": "image",
                "mediaType": "image/jpeg",
                "data": b64encode(data),
                "width": size,
                "height": size,
                "alt": "",
            }
        )
    return out


@pytest.mark.parametrize("how", ["keyboard", "mouse"])
@pytest.mark.parametrize("width", ["1280", "390"])
def test_images_in_a_grid_zoom_by_click_and_by_keyboard_and_rank(browser, platform, miners, width, how):
    task_id = _create(platform, miners["alpha"], "IMAGE", "Three red circles in the top left.", _images())
    with _page(browser, platform, miners["alpha"], WIDTHS[width]) as (page, worker):
        _open(page, platform, task_id)
        images = page.locator(".completion .image-zoom img")
        expect(images).to_have_count(4)
        for n in range(4):
            image = images.nth(n)
            expect(image).to_have_attribute("alt", f"Image of response {n + 1}")
            image.scroll_into_view_if_needed()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth === 1024", arg=image.element_handle()
            )
        boxes = [images.nth(n).bounding_box() for n in range(4)]
        if width == "1280":
            # Two by two: the first two side by side, the next two under them.
            assert boxes[0]["y"] == boxes[1]["y"] and boxes[2]["y"] > boxes[0]["y"] + boxes[0]["height"] / 2
        else:
            assert all(b["width"] <= 390 for b in boxes) and boxes[1]["y"] > boxes[0]["y"]
        viewer = page.locator("dialog.image-viewer")
        if how == "mouse":
            images.nth(1).click()
        else:
            page.locator("#completion-2 .image-zoom").focus()
            page.keyboard.press("Enter")
        expect(viewer).to_be_visible()
        expect(viewer.locator("h2")).to_have_text("Response 2 (2 of 4)")
        page.keyboard.press("ArrowRight")
        expect(viewer.locator("h2")).to_have_text("Response 3 (3 of 4)")
        page.keyboard.press("3")  # a number in the viewer ranks nothing
        expect(page.locator("#ranking-count")).to_have_text("0 of 4 placed")
        page.keyboard.press("Escape")
        expect(viewer).to_be_hidden()
        # The keyboard is back on the image the viewer was opened from.
        page.wait_for_function(
            "() => document.activeElement && document.activeElement.dataset.zoomLabel === 'Response 3'"
        )
        _rank(page, how, ["1", "3", "2", "4"])
        assert _ranked(platform, worker, task_id) == {"c1": 1, "c3": 2, "c2": 3, "c4": 4}


def test_an_image_is_served_to_the_tasks_workers_only_with_its_own_type(platform, miners):
    import httpx

    task_id = _create(platform, miners["alpha"], "IMAGE", "Shapes.", _images(2, 64))
    (worker,) = workers_by_invite(platform.settings.database_url, miners["alpha"].hotkey, 1)
    (outsider,) = workers_by_invite(platform.settings.database_url, miners["beta"].hotkey, 1)
    url = f"{platform.url}/tasks/{task_id}/images/c1"
    got = httpx.get(url, cookies={WORKER_COOKIE: worker.token})
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert (
        got.headers["x-content-type-options"] == "nosniff"
        and "sandbox" in got.headers["content-security-policy"]
    )
    assert got.content[:3] == b"\xff\xd8\xff"
    assert httpx.get(url, cookies={WORKER_COOKIE: outsider.token}).status_code == 404
    assert httpx.get(url).status_code == 401
    assert (
        httpx.get(
            f"{platform.url}/tasks/{task_id}/images/c9", cookies={WORKER_COOKIE: worker.token}
        ).status_code
        == 404
    )


def test_the_miners_dashboard_shows_each_kinds_answers(browser, platform, miners):
    beta = miners["beta"]
    tasks = {
        "text": _create(
            platform, beta, "TEXT", "Write a note.", ["A **note** about Thursday.", "Another note."]
        ),
        "dialogue": _create(
            platform,
            beta,
            "DIALOGUE",
            "Reply.",
            [_dialogue("See you Thursday."), _dialogue("See you Tuesday.")],
        ),
        "image": _create(platform, beta, "IMAGE", "Shapes.", _images(2, 128)),
    }
    (worker,) = workers_by_invite(platform.settings.database_url, beta.hotkey, 1)
    for task_id in tasks.values():
        answer = {"resultData": [{"type": "ranking", "value": {"c2": 1, "c1": 2}}]}
        assert (
            platform.client.post(f"/api/v1/worker/tasks/{task_id}/hold", headers=worker.auth).status_code
            == 200
        )
        got = platform.client.post(f"/api/v1/worker/tasks/{task_id}/result", json=answer, headers=worker.auth)
        assert got.status_code == 200, got.text
    context = browser.new_context(viewport=DESKTOP)
    host = platform.url.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "dojo_miner_session", "value": beta.token, "domain": host, "path": "/"}])
    page = context.new_page()
    try:
        page.goto(f"{platform.url}/miner")
        for kind, task_id in tasks.items():
            row = page.locator(f'[data-answers-for="{task_id}"]')
            row.locator("summary").click()
            expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_contain_text(kind.capitalize())
            glimpses = row.locator(f'[data-glimpse-kind="{kind}"]')
            expect(glimpses).to_have_count(2)
            if kind == "image":
                thumb = glimpses.first.locator("img")
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth === 128", arg=thumb.element_handle()
                )
            elif kind == "dialogue":
                expect(glimpses.first).to_have_text("assistant: See you Tuesday.")  # c2, ranked first
            else:
                expect(glimpses.first).to_have_text("Another note.")
    finally:
        context.close()


def test_hostile_images_are_refused_when_the_task_is_created(platform, miners):
    from tests.commons.test_media import HTML, SVG, jpeg, png_bomb

    whole = jpeg(400, 300, quality=95)
    good = {"kind": "image", "mediaType": "image/jpeg", "data": b64encode(whole), "width": 400, "height": 300}
    hostile = {
        "an image bomb": {**good, "mediaType": "image/png", "data": b64encode(png_bomb())},
        "a truncated image": {**good, "data": b64encode(whole[: len(whole) // 2])},
        "SVG dressed as a PNG": {**good, "mediaType": "image/png", "data": b64encode(SVG)},
        "HTML dressed as a JPEG": {**good, "data": b64encode(HTML)},
        "a size that lies": {**good, "width": 4000},
        "an extra field": {**good, "url": "http://example.org/x.png"},
    }
    reasons = {
        "an image bomb": "too many pixels",
        "a truncated image": "does not decode",
        "SVG dressed as a PNG": "SVG",
        "HTML dressed as a JPEG": "HTML",
        "a size that lies": "declared as 4000",
        "an extra field": "no field 'url'",
    }
    before = sql(platform.settings.database_url, "SELECT count(*) FROM tasks")
    for name, image in hostile.items():
        payload = {
            "title": "t",
            "expireAt": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
            "taskData": [
                {
                    "prompt": "p",
                    "task": "IMAGE",
                    "criteria": RANKING,
                    "responses": [{"cid": "a", "completion": good}, {"cid": "b", "completion": image}],
                }
            ],
        }
        got = platform.client.post(
            "/api/v1/tasks/create-tasks", json=payload, headers={"x-api-key": miners["beta"].api_key}
        )
        assert got.status_code == 422, (name, got.text)
        assert reasons[name] in got.text, (name, got.text)
    assert sql(platform.settings.database_url, "SELECT count(*) FROM tasks") == before  # nothing was kept
