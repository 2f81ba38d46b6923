"""The web UI in a real browser against the real platform on loopback.

Debian's chromium through Playwright (the ``browser`` fixture skips where it is missing);
the platform runs under uvicorn in a thread with a SQLite file and a local chain on which
the miners are registered. Everything the miners do goes through the HTTP API, and
everything the worker does goes through the pages, by keyboard where the test says so.
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from dojo.platform import PlatformSettings, create_app
from dojo.platform.services.auth import create_invite
from template.chain.local import LocalChain
from tests.dojo.platform._support import LiveServer, bound_socket

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api", reason="playwright is not installed").expect
if TYPE_CHECKING:
    from playwright.sync_api import Page

NETUID = 7
DOCS = Path(__file__).resolve().parents[3] / "docs"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class _Canary:
    """A loopback HTTP server that counts every request: where a completion would exfiltrate to."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class MinerOnPlatform:
    wallet: object
    hotkey: str
    token: str
    api_key: str
    subscription_key: str


@dataclass
class Platform:
    url: str
    app: object
    settings: PlatformSettings
    client: httpx.Client
    canary: _Canary

    def login_miner(self, wallet) -> MinerOnPlatform:
        hotkey = wallet.hotkey.ss58_address
        challenge = self.client.post("/api/v1/miner/challenge", json={"hotkey": hotkey})
        challenge.raise_for_status()
        body = challenge.json()
        signature = "0x" + wallet.hotkey.sign(body["message"].encode()).hex()
        session = self.client.post(
            "/api/v1/miner/session", json={"hotkey": hotkey, "nonce": body["nonce"], "signature": signature}
        )
        session.raise_for_status()
        token = session.json()["token"]
        self.client.cookies.clear()  # keep the client on bearer tokens and API keys only
        auth = {"Authorization": f"Bearer {token}"}
        api_key = self.client.post("/api/v1/miner/api-keys", headers=auth).json()["key"]
        sub_key = self.client.post("/api/v1/miner/subscription-keys", headers=auth).json()["key"]
        return MinerOnPlatform(wallet, hotkey, token, api_key, sub_key)

    def create_task(
        self,
        miner: MinerOnPlatform,
        title: str,
        prompt: str,
        responses: list[dict],
        criteria: list[dict],
        max_results: int = 3,
    ) -> str:
        expire_at = (datetime.now(timezone.utc) + timedelta(hours=4)).isoformat()
        payload = {
            "title": title,
            "body": prompt,
            "expireAt": expire_at,
            "taskData": [
                {"prompt": prompt, "responses": responses, "task": "CODE_GENERATION", "criteria": criteria}
            ],
            "maxResults": max_results,
        }
        response = self.client.post(
            "/api/v1/tasks/create-tasks", json=payload, headers={"x-api-key": miner.api_key}
        )
        assert response.status_code == 200, response.text
        return response.json()["body"][0]

    def invite(self, miner: MinerOnPlatform) -> str:
        with self.app.state.db.session() as db:
            return create_invite(db, self.settings, miner.hotkey)


def _code(*files: tuple[str, str, str]) -> dict:
    return {"files": [{"filename": n, "language": lang, "content": c} for n, lang, c in files]}


BALL_HTML = """<!DOCTYPE html>
<html><head><link rel="stylesheet" href="style.css"></head>
<body><h1>Bouncing ball</h1><canvas id="c" width="240" height="120"></canvas>
<script src="app.js"></script></body></html>"""
BALL_JS = """const ctx = document.getElementById("c").getContext("2d");
let x = 20, dx = 3;
function frame() {
  ctx.clearRect(0, 0, 240, 120);
  ctx.beginPath(); ctx.arc(x, 60, 12, 0, 2 * Math.PI); ctx.fillStyle = "#3949ab"; ctx.fill();
  x += dx; if (x > 228 || x < 12) dx = -dx;
  requestAnimationFrame(frame);
}
frame();"""
BALL_CSS = "body { font-family: sans-serif; margin: 12px; } h1 { font-size: 20px; color: #333; }"


def _probe_html(canary: str) -> str:
    """A completion that tries to read the platform's cookies and DOM and to reach the network."""
    return f"""<!DOCTYPE html><html><body style="font-family: sans-serif">
<h2>Counter</h2><button id="b" onclick="this.textContent = Number(this.textContent) + 1">0</button>
<ul id="probe"></ul>
<script>
function report(name, fn) {{
  let got;
  try {{ got = "READ: " + String(fn()); }} catch (e) {{ got = "blocked: " + e.name; }}
  const li = document.createElement("li");
  li.id = "probe-" + name; li.textContent = name + " " + got;
  document.getElementById("probe").appendChild(li);
}}
report("cookie", () => document.cookie);
report("parent", () => parent.document.cookie);
report("top", () => top.location.href);
report("storage", () => localStorage.length);
document.body.dataset.ran = "yes";
fetch("{canary}/fetch")
  .then(() => report("fetch", () => "reached"), (e) => report("fetch", () => {{ throw e; }}));
new Image().src = "{canary}/img";
const s = document.createElement("script"); s.src = "{canary}/script.js"; document.head.appendChild(s);
</script>
<img src="{canary}/static-img" alt="">
<link rel="stylesheet" href="{canary}/style.css">
</body></html>"""


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    LocalChain.init(root / "chain", netuid=NETUID, block_time=1.0)
    sock = bound_socket()
    port = sock.getsockname()[1]
    settings = PlatformSettings(
        database_url=f"sqlite:///{root / 'platform.sqlite'}",
        host="127.0.0.1",
        port=port,
        network=str(root / "chain"),
        netuid=NETUID,
    )
    app = create_app(settings)
    server = LiveServer(app, sock).start()
    canary = _Canary()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=10) as client:
        try:
            yield Platform(url, app, settings, client, canary)
        finally:
            canary.close()
            server.stop()


@pytest.fixture(scope="module")
def miners(platform: Platform, tmp_path_factory) -> dict[str, MinerOnPlatform]:
    """Two miners registered on the local chain and logged in to the platform."""
    import bittensor as bt

    from template.wallets import create_wallet

    path = tmp_path_factory.mktemp("wallets")
    chain = LocalChain(Path(platform.settings.network), netuid=NETUID)
    wallets: dict[str, bt.Wallet] = {
        name: create_wallet(name, "default", str(path)) for name in ("alpha", "beta")
    }
    # Both first: the platform's registration snapshot is not re-read for every log-in.
    for wallet in wallets.values():
        chain.register(wallet.hotkey.ss58_address, wallet.coldkeypub.ss58_address, stake=0.0)
    return {name: platform.login_miner(wallet) for name, wallet in wallets.items()}


RANKING = [{"type": "ranking"}]
RANK_AND_SCORE = [{"type": "ranking"}, {"type": "multi-score", "min": 1, "max": 10}]


def _ball_task(platform: Platform, miner: MinerOnPlatform) -> str:
    return platform.create_task(
        miner,
        "Bouncing ball animation",
        "Write a web page with a ball bouncing inside a canvas, in plain JavaScript.",
        [
            {
                "model": "m-a",
                "cid": "cid-a",
                "completion": _code(
                    ("index.html", "html", BALL_HTML),
                    ("app.js", "javascript", BALL_JS),
                    ("style.css", "css", BALL_CSS),
                ),
            },
            {
                "model": "m-b",
                "cid": "cid-b",
                "completion": _code(("index.html", "html", _probe_html(platform.canary.url))),
            },
            {
                "model": "m-c",
                "cid": "cid-c",
                "completion": _code(
                    (
                        "ball.py",
                        "python",
                        "import turtle\n\nt = turtle.Turtle()\nfor _ in range(36):\n    t.forward(10)\n    t.left(10)\n",
                    )
                ),
            },
        ],
        RANK_AND_SCORE,
    )


def _no_horizontal_overflow(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: content {widths[0]} px in {widths[1]} px"


def _join_by_invite(page: Page, platform: Platform, miner: MinerOnPlatform) -> None:
    """Log the page's browser in as a new worker on ``miner``'s team, by invite."""
    page.goto(platform.invite(miner))
    page.get_by_role("button", name="Join the team").click()
    _past_the_welcome(page, platform)


def _past_the_welcome(page: Page, platform: Platform) -> None:
    """A new invited worker first sees its recovery code, once; then its task list."""
    page.wait_for_url(f"{platform.url}/welcome")
    page.get_by_role("link", name="to my tasks").click()
    page.wait_for_url(f"{platform.url}/tasks")


def test_worker_joins_by_invite_adds_a_key_and_ranks_by_keyboard_alone(browser, platform, miners):
    alpha, beta = miners["alpha"], miners["beta"]
    task_id = _ball_task(platform, beta)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # An invite from alpha shows who invites; joining logs the worker in (no wallet),
        # shows its recovery code, and then the task list.
        page.goto(platform.invite(alpha))
        assert page.get_by_text(alpha.hotkey).is_visible()
        page.get_by_role("button", name="Join the team").click()
        _past_the_welcome(page, platform)
        assert page.locator("#task-list").count() == 0  # alpha has no tasks

        # The worker adds beta's subscription key, and beta's task appears.
        page.goto(f"{platform.url}/keys")
        page.get_by_label("Name").fill("Team Beta")
        page.get_by_label("Subscription key").fill(beta.subscription_key)
        page.get_by_role("button", name="Add key").click()
        page.wait_for_url(f"{platform.url}/keys?added=1")
        assert page.locator("#subscriptions").get_by_text("Team Beta").is_visible()
        page.goto(f"{platform.url}/tasks")
        assert page.locator(f'tr[data-task-id="{task_id}"]').get_by_text("0/3").is_visible()

        # On the task page, the keyboard alone: 2 then 3 ranks response 2 first, 3 second, 1 last;
        # Tab reaches the first score slider, the arrow raises it, Enter submits.
        page.goto(f"{platform.url}/tasks/{task_id}")
        page.locator("body").focus()
        page.keyboard.press("2")
        page.keyboard.press("3")
        assert page.locator("#ranking .rank-item").evaluate_all("els => els.map(e => e.dataset.cid)") == [
            "cid-b",
            "cid-c",
            "cid-a",
        ]
        assert "Press Enter to submit" in page.locator("#ranking-status").text_content()
        slider = page.get_by_label("Response 1", exact=True)
        slider.focus()
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        assert slider.input_value() == "9"  # 1..10 starts at its middle, rounded: 6, then +3
        with page.expect_navigation():
            page.keyboard.press("Enter")
        # Next comes this worker's next task; the other tests' tasks may be waiting for it.
        if page.url == f"{platform.url}/tasks?none=1":
            assert "No task is waiting" in page.locator("#flash").text_content()
        else:
            assert page.url.startswith(f"{platform.url}/tasks/") and task_id not in page.url
        assert page.locator("#done-today").text_content() == "1"
        assert errors == []
    finally:
        context.close()

    # Beta reads the result through the API with its API key; alpha cannot see it.
    got = platform.client.get(f"/api/v1/tasks/task-result/{task_id}", headers={"x-api-key": beta.api_key})
    assert got.status_code == 200, got.text
    (result,) = got.json()["body"]["taskResults"]
    values = {item["type"]: item["value"] for item in result["resultData"]}
    assert values["ranking"] == {"cid-a": 3, "cid-b": 1, "cid-c": 2}
    assert values["multi-score"] == {"cid-a": 9, "cid-b": 6, "cid-c": 6}
    other = platform.client.get(f"/api/v1/tasks/task-result/{task_id}", headers={"x-api-key": alpha.api_key})
    assert other.status_code == 404


def test_html_completion_runs_sandboxed_without_cookies_or_network(browser, platform, miners):
    beta = miners["beta"]
    task_id = _ball_task(platform, beta)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        _join_by_invite(page, platform, beta)
        page.goto(f"{platform.url}/tasks/{task_id}")
        # The page itself can read its (non-HttpOnly) CSRF cookie: there is something to steal.
        assert "dojo_csrf=" in page.evaluate("document.cookie")

        iframe = page.locator("#completion-2 iframe")
        assert iframe.get_attribute("sandbox") == "allow-scripts"
        frame = page.frame_locator("#completion-2 iframe")
        frame.locator("body[data-ran=yes]").wait_for()
        # Its own scripts run (an inline handler too) ...
        frame.locator("#b").click()
        assert frame.locator("#b").text_content() == "1"
        # ... but it reads neither the platform's cookies, nor its parent, nor storage.
        for probe in ("cookie", "parent", "top", "storage"):
            text = frame.locator(f"#probe-{probe}").text_content()
            assert "blocked" in text and "READ" not in text, text
        frame.locator("#probe-fetch").wait_for()
        assert "blocked" in frame.locator("#probe-fetch").text_content()
        # The first completion's canvas animates in its own sandbox with its inlined script and style.
        first = page.frame_locator("#completion-1 iframe")
        assert first.locator("h1").text_content() == "Bouncing ball"
        assert first.locator("h1").evaluate("e => getComputedStyle(e).color") == "rgb(51, 51, 51)"
        assert platform.canary.hits == [], f"a completion reached the network: {platform.canary.hits}"
    finally:
        context.close()


def test_pages_fit_a_laptop_and_a_phone_and_the_task_page_screenshot(browser, platform, miners, tmp_path):
    beta = miners["beta"]
    task_id = _ball_task(platform, beta)
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        _join_by_invite(page, platform, beta)
        for viewport in (DESKTOP, PHONE):
            page.set_viewport_size(viewport)
            for path in ("/tasks", "/keys", f"/tasks/{task_id}", "/login"):
                page.goto(platform.url + path)
                _no_horizontal_overflow(page)
            # Every response and the answer panel are reachable on the task page.
            assert page.goto(f"{platform.url}/tasks/{task_id}").ok
            for label in ("1", "2", "3"):
                assert page.locator(f"#completion-{label}").is_visible()
            assert page.get_by_role("button", name="Submit").is_visible()
        page.set_viewport_size(DESKTOP)
        page.goto(f"{platform.url}/tasks/{task_id}")
        # Ranked 2, 1, 3 so that the picture shows a ranking in progress.
        page.keyboard.press("2")
        page.keyboard.press("1")
        page.frame_locator("#completion-1 iframe").locator("canvas").wait_for()
        # docs/task-page.png is refreshed on request only, so a test run leaves the tree clean.
        target = (
            DOCS / "task-page.png"
            if os.environ.get("DOJO_UPDATE_SCREENSHOTS")
            else tmp_path / "task-page.png"
        )
        page.screenshot(path=str(target))
        assert target.stat().st_size > 10_000
    finally:
        context.close()


def test_ranking_by_drag_and_drop_and_the_miner_dashboard(browser, platform, miners):
    beta = miners["beta"]
    task_id = platform.create_task(
        beta,
        "Which answer explains recursion best?",
        "Explain recursion to a ten-year-old.",
        [
            {"model": "x", "cid": "r1", "completion": "A function that calls itself."},
            {"model": "y", "cid": "r2", "completion": "Like Russian dolls: each doll holds a smaller one."},
        ],
        RANKING,
        max_results=2,
    )
    answers = []
    for drag in (True, False):
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        _join_by_invite(page, platform, beta)
        page.goto(f"{platform.url}/tasks/{task_id}")
        if drag:
            page.locator('.rank-item[data-cid="r2"]').drag_to(
                page.locator('.rank-item[data-cid="r1"]'), target_position={"x": 20, "y": 2}
            )
        else:
            page.get_by_role("button", name="Move response 1 down").click()
        order = page.locator("#ranking .rank-item").evaluate_all("els => els.map(e => e.dataset.cid)")
        answers.append(order)
        with page.expect_navigation():  # to this worker's next task, or back to the list
            page.get_by_role("button", name="Submit").click()
        context.close()
    assert answers == [["r2", "r1"], ["r2", "r1"]]

    # The miner's dashboard, with the miner's session cookie, shows both results and full agreement.
    context = browser.new_context(viewport=DESKTOP)
    host = platform.url.split("//")[1].split(":")[0]
    context.add_cookies([{"name": "dojo_miner_session", "value": beta.token, "domain": host, "path": "/"}])
    page = context.new_page()
    try:
        page.goto(f"{platform.url}/miner")
        row = page.locator(f'#miner-tasks tr[data-task-id="{task_id}"]')
        assert row.locator("td.num").first.text_content() == "2/2"
        assert row.locator("[data-agreement]").text_content() == "1.00"
        _no_horizontal_overflow(page)
        page.set_viewport_size(PHONE)
        _no_horizontal_overflow(page)
    finally:
        context.close()


def test_wallet_login_signs_the_challenge_with_personal_sign(browser, platform):
    """The login page against an injected EIP-1193 provider whose key lives in the test."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    account = Account.create()
    context = browser.new_context(viewport=PHONE)
    signed: list[str] = []

    def sign(message_hex: str) -> str:
        message = bytes.fromhex(message_hex.removeprefix("0x"))
        signed.append(message.decode())
        return "0x" + Account.sign_message(encode_defunct(primitive=message), account.key).signature.hex()

    context.expose_function("walletSign", sign)
    context.add_init_script(
        f"""window.ethereum = {{ request: async ({{ method, params }}) => {{
          if (method === "eth_requestAccounts") return ["{account.address.lower()}"];
          if (method === "personal_sign") return await window.walletSign(params[0]);
          throw Object.assign(new Error("unsupported " + method), {{ code: 4200 }});
        }} }};"""
    )
    page = context.new_page()
    try:
        page.goto(f"{platform.url}/")
        page.wait_for_url(f"{platform.url}/login")
        assert page.locator("#wallet-missing").is_hidden()
        page.get_by_role("button", name="Connect wallet").click()
        page.wait_for_url(f"{platform.url}/tasks")
        assert signed and "nonce:" in signed[0]
        assert page.locator(".who .pill").get_attribute("title") == account.address
        assert page.get_by_text("You have no subscription keys yet").is_visible()
        _no_horizontal_overflow(page)
    finally:
        context.close()


def test_miner_signs_in_on_the_page_with_a_hotkey_signature(browser, platform, miners):
    beta = miners["beta"]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        page.goto(f"{platform.url}/miner")
        page.wait_for_url(f"{platform.url}/miner/login")
        assert page.locator("#miner-session").is_hidden()  # until there is a message to sign
        page.get_by_label("Hotkey (ss58 address)").fill(beta.hotkey)
        page.get_by_role("button", name="Get message to sign").click()
        message = page.get_by_label("Message (sign exactly this text)")
        message.wait_for()
        assert f"hotkey: {beta.hotkey}" in message.input_value()
        signature = beta.wallet.hotkey.sign(message.input_value().encode()).hex()
        page.get_by_label("Signature (0x…)").fill(signature)  # without 0x: the page adds it
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{platform.url}/miner")
        assert page.get_by_role("heading", name="Miner dashboard").is_visible()
        # Generating a subscription key from the dashboard shows it once, in full.
        column = page.locator('[data-key-kind="subscription-keys"]')
        column.get_by_role("button", name="Generate subscription key").click()
        expect(column.locator(".new-key")).to_contain_text("dojo_sub_")
    finally:
        context.close()
