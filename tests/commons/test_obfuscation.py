"""The obfuscator keeps behaviour (node runs both versions; chromium renders both) and
changes the text: names, comments, formatting, order, file names."""

from __future__ import annotations

import io
import random
import re
import shutil
import subprocess

import pytest

from commons.obfuscation import (
    JavaScriptSource,
    obfuscate_css,
    obfuscate_files,
    obfuscate_javascript,
    obfuscate_python,
)
from commons.protocol import CodeFile

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

# A program exercising what a tokenizer-level renamer can get wrong: scopes and shadowing,
# closures, classes (fields, getters, static, private), destructuring, shorthand properties,
# template literals with nested templates, regex literals next to division, labels,
# switch with blocks, ASI-dependent line breaks, getters/setters, spread, default params.
PROGRAM = r"""
'use strict';
// a comment that must go
const total = 10 / 2 / 1; /* block
comment */ const ratio = total / 5
const pattern = /a\/b[/]c/g
let counter = 0
function bump(step = 1, ...rest) {
  counter += step + rest.length
  return counter
}
const point = { x: 1, y: 2, 'quoted-key': 3, bump, get sum() { return this.x + this.y }, scale(k) { return this.x * k } };
const { x, y: why } = point;
const [first, , third = 7] = [1, 2];
class Shape {
  #secret = 41;
  static count = 0;
  constructor(name) { this.name = name; Shape.count += 1 }
  get label() { return `${this.name}:${this.#secret + 1}` }
  area(size) { return size * size }
}
function outer(value) {
  const inner = (v) => v * 2;
  const twice = value => inner(inner(value));
  return twice(value) + inner(x)
}
const items = [3, 1, 2].map((item, index) => ({ item, index })).sort((a, b) => a.item - b.item);
const nested = `a${`b${total}c`}d${point.x > 0 ? 'pos' : `neg${why}`}`;
let out = []
outer: for (let i = 0; i < 3; i += 1) {
  for (let j = 0; j < 3; j += 1) {
    if (j > i) continue outer
    out.push(i * 10 + j)
  }
}
switch (counter) {
  case 0: { out.push('zero'); break }
  default: out.push('other')
}
const shape = new Shape('sq')
const result = {
  total, ratio, matched: 'xa/b/cx'.replace(pattern, '#'), bumped: bump(2, 9, 9), sum: point.sum,
  scaled: point.scale(3), x, why, first, third, label: shape.label, area: shape.area(4),
  count: Shape.count, outer: outer(5), items, nested, out, neg: -counter - -1, typeofX: typeof x,
}
let a = 1
let b = a
++b
console.log(JSON.stringify(result), a, b)
"""


def _run_node(source: str) -> str:
    assert NODE is not None
    done = subprocess.run([NODE, "-e", source], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_node
def test_renamed_javascript_behaves_the_same():
    expected = _run_node(PROGRAM)
    for seed in range(3):
        obfuscated = obfuscate_javascript(PROGRAM, random.Random(seed))
        assert _run_node(obfuscated) == expected
        assert "comment" not in obfuscated
        # Declared locals are renamed; properties, keys and strings keep their spelling.
        # (names also used as shorthand keys, like `ratio` in `{ total, ratio }`, are kept.)
        for name in ("counter", "inner", "twice", "pattern", "point", "shape", "step", "value"):
            assert not re.search(rf"\b{name}\b", obfuscated), name
        assert re.search(r"\bratio\b", obfuscated)
        for kept in (".name", ".count", "'quoted-key'", "get sum()", "#secret", "scale("):
            assert kept in obfuscated


def test_obfuscation_is_deterministic_and_differs_by_seed():
    one = obfuscate_javascript(PROGRAM, random.Random(1))
    assert one == obfuscate_javascript(PROGRAM, random.Random(1))
    assert one != obfuscate_javascript(PROGRAM, random.Random(2))


def test_names_that_must_keep_their_spelling_are_pinned():
    script = JavaScriptSource.parse(
        "const width = 1; canvas.width = width; const id = 'stage'; const stage = 2;"
        "const pos = {left}; let left = 3; function handler() {} var event = 1;"
    )
    assert {"width", "id", "stage", "left", "handler", "event", "pos"} <= script.declared
    # A property elsewhere, a word in a string, a shorthand key, a browser global.
    assert {"width", "stage", "left", "event"} <= script.pinned
    assert "handler" not in script.pinned and "id" not in script.pinned


def test_line_breaks_survive_for_automatic_semicolon_insertion():
    source = "let a = 1\nlet b = a\n++b\nconst f = () => {\n  return\n  42\n}\n"
    out = obfuscate_javascript(source, random.Random(0))
    assert out.count("\n") == source.count("\n")
    assert re.search(r"return\n", out)


def test_css_comments_go_and_only_independent_declarations_move():
    css = "/* c */ a { color: red; margin: 0; margin-top: 4px }\n@media (max-width: 600px) { b { top: 0; left: 1px } }"
    seen = set()
    for seed in range(12):
        out = obfuscate_css(css, random.Random(seed))
        assert "/*" not in out
        assert out.index("margin: 0") < out.index("margin-top: 4px")  # shorthand first, always
        assert "@media (max-width: 600px) {" in out
        seen.add(out.index("top: 0") < out.index("left: 1px"))
    assert seen == {True, False}


def test_python_loses_comments_and_still_runs():
    source = "# head\nx = 1  # trailing\n\n\ndef f(v):\n    return v + x  # why\nresult = f('#not a comment' and 2)\n"
    out = obfuscate_python(source)
    assert "head" not in out and "why" not in out and "'#not a comment'" in out
    scope: dict = {}
    exec(compile(out, "<obfuscated>", "exec"), scope)
    assert scope["result"] == 3


def test_files_are_renamed_consistently_and_html_normalised():
    files = [
        CodeFile(
            filename="index.html",
            language="html",
            content=(
                '<!DOCTYPE html>\n<html>\n<head>\n<!-- note -->\n<link rel="stylesheet" href="./style.css">\n'
                '<script src="app.js"></script>\n</head>\n<body class="x" id="main">\n'
                "<pre>  keep   this  </pre>\n<p>a&nbsp;&amp;   b</p>\n"
                '<button onclick="go()">go</button>\n</body>\n</html>\n'
            ),
        ),
        CodeFile(filename="style.css", content="p { color: red; }", language="css"),
        CodeFile(
            filename="app.js",
            content="function go() { const local = 1; return local }\n",
            language="javascript",
        ),
    ]
    out = obfuscate_files(files, random.Random(3))
    assert out[0].filename == "index.html"
    names = {f.filename for f in out}
    assert "style.css" not in names and "app.js" not in names
    page = out[0].content
    for file in out[1:]:
        assert file.filename in page
    assert "note" not in page
    assert "<pre>  keep   this  </pre>" in page
    assert "a&nbsp;&amp; b" in page
    script = next(f for f in out if f.filename.endswith(".js"))
    assert "function go()" in script.content  # called from an event attribute: kept
    assert "local" not in script.content


def test_without_renaming_names_and_files_stay():
    files = [
        CodeFile(filename="index.html", content='<script src="a.js"></script>', language="html"),
        CodeFile(filename="a.js", content="// x\nconst keep = 1\n", language="javascript"),
    ]
    out = obfuscate_files(files, random.Random(0), rename=False)
    assert {f.filename for f in out} == {"index.html", "a.js"}
    assert out[1].content.strip() == "const keep = 1"


# --- rendering: the same pixels before and after --------------------------------------------
#
# Playwright's sync API runs an event loop in the thread that starts it, and that loop stays
# up while the browser is open. Started in the test thread (the shared session `browser`
# fixture does that), it makes every later asyncio test in the session fail with "Cannot run
# the event loop while another loop is running". So the browser here lives in a thread of
# its own, with the same chromium and flags as the shared fixture, and is closed at the end
# of the module.


class _BrowserThread:
    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from tests.conftest import CHROMIUM, CHROMIUM_ARGS

        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

        def start():
            self.playwright = sync_api.sync_playwright().start()
            self.browser = self.playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )

        self.pool.submit(start).result()

    def screenshot(self, files: list[CodeFile]) -> bytes:
        return self.pool.submit(_screenshot, self.browser, files).result()

    def close(self) -> None:
        def stop():
            self.browser.close()
            self.playwright.stop()

        self.pool.submit(stop).result()
        self.pool.shutdown()


@pytest.fixture(scope="module")
def chromium():
    from tests.conftest import CHROMIUM

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    thread = _BrowserThread()
    yield thread
    thread.close()


# Virtual time for the page: performance.now, Date.now, requestAnimationFrame and timers
# all run on a clock that only __advance(ms) moves, in 16 ms frames from 0. (Playwright's
# own page.clock keeps a page-dependent offset between its frames and performance.now, so
# two loads of one page can land a frame apart.)
FROZEN_TIME = """
(() => {
  let now = 0;
  let frames = [];
  let timers = [];
  let ids = 1;
  const epoch = 1700000000000;
  performance.now = () => now;
  Date.now = () => epoch + now;
  window.requestAnimationFrame = (callback) => { frames.push([ids, callback]); return ids++; };
  window.cancelAnimationFrame = (id) => { frames = frames.filter((frame) => frame[0] !== id); };
  const schedule = (callback, delay, every, args) => {
    timers.push({ id: ids, at: now + Math.max(0, delay || 0), every, callback, args });
    return ids++;
  };
  window.setTimeout = (callback, delay, ...args) => schedule(callback, delay, 0, args);
  window.setInterval = (callback, delay, ...args) => schedule(callback, delay, Math.max(1, delay || 0), args);
  window.clearTimeout = window.clearInterval = (id) => { timers = timers.filter((t) => t.id !== id); };
  const runTimers = () => {
    for (;;) {
      const due = timers.filter((t) => t.at <= now).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) return;
      timers = timers.filter((t) => t !== due);
      if (due.every) { due.at += due.every; timers.push(due); }
      due.callback(...due.args);
    }
  };
  window.__advance = (ms) => {
    const end = now + ms;
    while (now + 16 <= end) {
      now += 16;
      runTimers();
      const due = frames;
      frames = [];
      for (const frame of due) frame[1](now);
    }
    now = end;
    runTimers();
  };
})();
"""


def _screenshot(browser, files: list[CodeFile]) -> bytes:
    page = browser.new_page(viewport={"width": 480, "height": 320})
    try:
        by_name = {f.filename: f for f in files}

        def serve(route):
            name = route.request.url.split("http://completion.test/", 1)[1] or "index.html"
            file = by_name.get(name)
            if file is None:
                route.fulfill(status=404, body="")
                return
            kind = {"html": "text/html", "css": "text/css"}.get(name.rsplit(".", 1)[-1], "text/javascript")
            route.fulfill(status=200, body=file.content, content_type=kind)

        page.route("http://completion.test/**", serve)
        page.add_init_script(FROZEN_TIME)
        page.goto("http://completion.test/index.html")
        page.evaluate("__advance(1234)")
        # Exercise the interaction, whichever it is: press, drag, release, space bar.
        page.mouse.move(240, 160)
        page.mouse.down()
        page.mouse.move(250, 170)
        page.mouse.up()
        page.keyboard.press(" ")
        page.evaluate("__advance(777)")
        return page.screenshot()
    finally:
        page.close()


# A hand-written page of the kind a model writes: DOM, classes, flexbox, inline SVG,
# template literals, a class, event handlers in attributes and in script.
HANDWRITTEN = [
    CodeFile(
        filename="index.html",
        language="html",
        content="""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <!-- styles -->
  <link rel="stylesheet" href="styles.css">
</head>
<body>
  <header class="bar"><h1>Counter   board</h1> <span id="total">0</span></header>
  <main class="tiles">
    <button class="tile" onclick="bumpAll(2)">all +2</button>
    <svg width="60" height="60"><circle cx="30" cy="30" r="20" fill="teal"/><rect x="5" y="5" width="10" height="10"/></svg>
  </main>
  <pre>  spaced   out  </pre>
  <p>a&nbsp;b &amp; c</p>
  <script src="app.js"></script>
</body>
</html>
""",
    ),
    CodeFile(
        filename="styles.css",
        language="css",
        content="""/* layout */
body { margin: 0; font: 16px/1.4 sans-serif; background: #102030; color: #eee }
.bar { display: flex; justify-content: space-between; padding: 8px 12px; background: #203040 }
.tiles { display: flex; flex-wrap: wrap; gap: 6px; padding: 8px }
.tile { width: 90px; height: 40px; border: 0; border-radius: 6px; background: hsl(200, 60%, 45%); color: white }
.tile.hot { background: hsl(20, 80%, 55%); }
""",
    ),
    CodeFile(
        filename="app.js",
        language="javascript",
        content="""// Tiles that count their clicks.
class Tile {
  constructor(index, parent) {
    this.count = 0;
    this.node = document.createElement('button');
    this.node.className = 'tile';
    this.node.addEventListener('click', () => this.bump(1));
    parent.appendChild(this.node);
    this.index = index;
    this.render();
  }
  bump(step) { this.count += step; this.render(); refreshTotal(); }
  render() {
    this.node.textContent = `#${this.index + 1}: ${this.count}`;
    this.node.classList.toggle('hot', this.count % 2 === 1);
  }
}
const tiles = [];
const holder = document.querySelector('.tiles');
for (let i = 0; i < 7; i++) tiles.push(new Tile(i, holder));
function refreshTotal() {
  const sum = tiles.reduce((acc, tile) => acc + tile.count, 0);
  document.getElementById('total').textContent = String(sum);
}
function bumpAll(step) { tiles.forEach((tile) => tile.bump(step)); }
setTimeout(() => tiles[3].bump(5), 500);
""",
    ),
]


@pytest.mark.browser
def test_a_handwritten_page_renders_identically(chromium):
    obfuscated = obfuscate_files(HANDWRITTEN, random.Random(8))
    assert "refreshTotal" not in obfuscated[1].content + obfuscated[2].content  # renamed
    assert "bumpAll" in obfuscated[0].content  # named by an event attribute: kept
    assert _pixels(chromium.screenshot(HANDWRITTEN)) == _pixels(chromium.screenshot(obfuscated))


@pytest.mark.browser
def test_obfuscated_completions_render_identically(chromium):
    from dojo.synthetic.procedural import FileLayout, render_scene
    from dojo.synthetic.spec import deviate, sample_spec

    rng = random.Random(2024)
    for kind in ("inline", "script", "split"):
        spec = sample_spec(rng)
        files = render_scene(spec, FileLayout(kind, "app.js", "style.css"), rng)
        obfuscated = obfuscate_files(files, random.Random(rng.random()))
        assert [f.content for f in obfuscated] != [f.content for f in files]
        before = _pixels(chromium.screenshot(files))
        after = _pixels(chromium.screenshot(obfuscated))
        assert len({before[i : i + 4] for i in range(0, len(before), 4)}) > 1, "the page rendered nothing"
        assert before == after, f"{kind} {spec}"
    # The comparison sees a change of one property (here the last case's first deviation).
    changed = render_scene(deviate(spec, 1, rng)[0], FileLayout(kind, "app.js", "style.css"), rng)
    assert _pixels(chromium.screenshot(changed)) != before


def _pixels(png: bytes) -> bytes:
    # Compared decoded: chromium's PNG encoder does not always produce the same bytes for
    # the same pixels (the first screenshot of a fresh browser differs in encoding).
    # Pillow comes with matplotlib, a runtime requirement.
    image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    return image.open(io.BytesIO(png)).convert("RGBA").tobytes()


def test_the_cached_line_and_block_path_gives_the_token_by_token_result(monkeypatch):
    # The obfuscator caches its work by lines and blocks of lines (the procedural backend's
    # completions repeat most of them); with those caches bypassed, every script goes
    # token by token. Both must write the same text, cold caches and warm.
    from commons.obfuscation import _js_tokens as obfuscation
    from dojo.synthetic.procedural import FileLayout, render_scene
    from dojo.synthetic.spec import deviate, sample_spec

    rng = random.Random(11)
    completions = [
        HANDWRITTEN,
        [CodeFile(filename="index.html", content=f"<script>{PROGRAM}</script>", language="html")],
    ]
    for kind in ("inline", "script", "split") * 3:
        spec = sample_spec(rng)
        for level in (spec, *deviate(spec, 2, rng)):
            completions.append(render_scene(level, FileLayout(kind, "app.js", "style.css"), rng))
    cached = [
        [obfuscate_files(files, random.Random(n)) for n, files in enumerate(completions)] for _ in range(2)
    ]
    cached_program = obfuscate_javascript(PROGRAM, random.Random(4))
    monkeypatch.setattr(obfuscation, "_tokenize_lines", lambda source: None)
    plain = [obfuscate_files(files, random.Random(n)) for n, files in enumerate(completions)]
    assert cached[0] == plain and cached[1] == plain
    assert obfuscate_javascript(PROGRAM, random.Random(4)) == cached_program
