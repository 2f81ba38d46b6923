"""Take the README's picture of ``dojo localnet up`` (docs/localnet-status.png) from a
local net that runs.

Start one with the README's defaults (``./scripts/demo.sh``, or ``.venv/bin/dojo
localnet up --dir DIR`` in another terminal), then::

    .venv/bin/python scripts/localnet_screenshot.py --dir DIR --wait

``--wait`` reads the net's status every second until the validator has set weights and
the chain has computed an epoch after its latest (the miners' weights, consensus and
incentive then agree); without it the picture is of the status as it is now. The status
is read as ``dojo localnet status`` reads it, drawn by the live view's own code
(:func:`dojo.localnet.view.render`), exported by rich as SVG in a terminal frame titled
"dojo localnet up", 100 columns wide (``--columns``), and Debian's chromium (through
Playwright, as the browser tests drive it) turns it into the PNG (``--out``, by default
docs/localnet-status.png). Stop the net afterwards with ``dojo localnet down --dir DIR``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# Root needs --no-sandbox; the rest keep chromium from calling Google's hosts on start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
TITLE = "dojo localnet up"
# The terminal's width: 100 columns fit the invite link on one line, a 1238-pixel picture.
COLUMNS = 100


def snapshot(directory: Path, wait: bool) -> dict[str, Any]:
    """The net's status; with ``wait``, the first one read once the chain has computed an
    epoch after the validator's latest weights."""
    from dojo.localnet.view import status

    while True:
        snap = status(directory)
        if not snap["running"]:
            raise SystemExit(f"no `dojo localnet up` runs in {directory}: start one first")
        last = snap["last_weights"]
        if not wait or (last and snap["epoch_block"] is not None and snap["epoch_block"] > last["block"]):
            return snap
        time.sleep(1)


def svg_of(snap: dict[str, Any], columns: int) -> str:
    """The live view of ``snap`` as rich's SVG export of a terminal ``columns`` wide."""
    import io

    from rich.console import Console

    from dojo.localnet.view import render

    console = Console(
        record=True, width=columns, file=io.StringIO(), force_terminal=True, color_system="truecolor"
    )
    console.print(render(snap))
    return console.export_svg(title=TITLE)


def png_of(svg: str, out: Path) -> None:
    """``svg`` drawn by Debian's chromium into the PNG ``out``, at the SVG's own size."""
    if not CHROMIUM.exists():
        raise SystemExit(f"Debian's chromium is not at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    size = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg)
    if size is None:
        raise SystemExit("rich's SVG has no viewBox to size the picture by")
    width, height = (round(float(n)) for n in size.groups())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_content(f'<html><body style="margin:0;background:#fff">{svg}</body></html>')
            page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": width, "height": height})
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dir", default=".localnet", help="the net's directory (default .localnet)")
    parser.add_argument("--out", default="docs/localnet-status.png", help="the PNG to write")
    parser.add_argument(
        "--columns", type=int, default=COLUMNS, help=f"the terminal's width (default {COLUMNS})"
    )
    parser.add_argument(
        "--wait", action="store_true", help="wait for the first weights and the chain's first epoch"
    )
    args = parser.parse_args()
    from loguru import logger

    logger.remove()  # reading the local chain logs its epochs at DEBUG; the picture is the output
    try:
        snap = snapshot(Path(args.dir).resolve(), args.wait)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    out = Path(args.out)
    png_of(svg_of(snap, args.columns), out)
    print(f"wrote {out} (block {snap['block']}, {snap['weights_set']} weight sets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
