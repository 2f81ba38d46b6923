"""Benchmark: an image task's page in a real browser, four 1024×1024 responses: bytes on the
wire and time until every picture is shown.

    .venv/bin/python benchmarks/task_page_images.py [--runs 5] [--width 1280]

Sets up a local chain, the worker platform (``dojo platform serve`` in its own process, SQLite),
a miner, one image task made by the synthetic pipeline (four pictures of 1024×1024, obfuscated
as miners get them) and a worker; then opens the task page in Debian's chromium (Playwright)
``--runs`` times, each in a fresh browser context (nothing cached), and measures from the
navigation's start until every response image has decoded (``img.complete`` and a natural
width of 1024): the time, and the bytes transferred (the page, its stylesheets and scripts, the
four images; from the browser's resource timing, compressed sizes as sent). Targets: under
1.5 MB and under 1 s on loopback. The last printed line is one JSON object.
"""

# ruff: noqa: E402
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from datetime import datetime, timedelta, timezone

from benchmarks._platform_server import prepare_platform, serve_platform, worker_token
from dojo.localnet.net import free_port

TARGET_BYTES = 1_500_000
TARGET_SECONDS = 1.0
CHROMIUM = "/usr/bin/chromium"


def _prepare(database_url: str, chain_dir: Path) -> tuple[str, str]:
    """A chain, a miner, one image task from the synthetic pipeline and a worker; returns the
    task id and the worker's session token."""
    from commons.dojo_wire import CreateTasksIn
    from dojo.miner.backends.dojo_platform import platform_completion
    from dojo.platform.services import auth
    from dojo.platform.services import tasks as task_service
    from dojo.synthetic.pipeline import SyntheticPipeline
    from dojo.synthetic.procedural import ProceduralBackend

    async def one_task():
        pipeline = SyntheticPipeline(ProceduralBackend(), seed="page")
        try:
            return await pipeline.generate_task("image")
        finally:
            await pipeline.aclose()

    task = asyncio.run(one_task())
    settings, database, hotkey = prepare_platform(database_url, chain_dir)
    payload = CreateTasksIn.model_validate(
        {
            "title": "Which image shows what the prompt asks for best?",
            "expireAt": (datetime.now(timezone.utc) + timedelta(hours=4)).isoformat(),
            "maxResults": 3,
            "taskData": [
                {
                    "prompt": task.prompt,
                    "task": "IMAGE",
                    "criteria": [{"type": "ranking"}],
                    "responses": [
                        {"cid": f"c{i}", "model": "m", "completion": platform_completion(r.completion.sent())}
                        for i, r in enumerate(task.responses)
                    ],
                }
            ],
        }
    )
    with database.session() as db:
        miner = auth.get_or_create_miner(db, hotkey)
        (task_id,) = task_service.create_tasks(db, miner, payload)
        token = worker_token(db, settings, miner)
    database.dispose()
    sizes = [r.completion.sent().byte_size for r in task.responses]  # type: ignore[union-attr]
    print(f"image task {task_id}: four pictures of {sizes} bytes", flush=True)
    return task_id, token


_READY = """() => {
  const imgs = Array.from(document.querySelectorAll('.completion .image-zoom img'));
  return imgs.length === 4 && imgs.every(i => i.complete && i.naturalWidth === 1024);
}"""
_MEASURE = """() => {
  const entries = performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'));
  const bytes = entries.reduce((sum, e) => sum + (e.transferSize || 0), 0);
  const images = performance.getEntriesByType('resource').filter(e => e.name.includes('/images/'));
  const nav = performance.getEntriesByType('navigation')[0];
  return {bytes, ms: performance.now(), images: images.length,
          image_bytes: images.reduce((s, e) => s + e.transferSize, 0),
          page_ms: nav.responseEnd, images_ms: Math.max(...images.map(e => e.responseEnd))};
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        database_url = f"sqlite:///{root / 'platform.sqlite'}"
        task_id, token = _prepare(database_url, root / "chain")
        port = free_port()
        server = serve_platform(database_url, root / "chain", port)
        url = f"http://127.0.0.1:{port}"
        runs = []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM,
                    headless=True,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--no-first-run",
                        "--disable-background-networking",
                    ],
                )
                for _ in range(args.runs):
                    context = browser.new_context(viewport={"width": args.width, "height": 900})
                    context.add_cookies([{"name": "dojo_worker_session", "value": token, "url": url}])
                    page = context.new_page()
                    page.goto(f"{url}/tasks/{task_id}", wait_until="commit")
                    page.wait_for_function(_READY, timeout=30_000, polling=10)
                    runs.append(page.evaluate(_MEASURE))
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    seconds = [r["ms"] / 1000 for r in runs]
    bytes_ = [r["bytes"] for r in runs]
    for r in runs:
        print(
            f"  {r['bytes']:>9,} bytes ({r['image_bytes']:,} in {r['images']} images), {r['ms']:.0f} ms",
            flush=True,
        )
    result = {
        "benchmark": "task_page_images",
        "runs": len(runs),
        "viewport_width": args.width,
        "median_bytes": int(statistics.median(bytes_)),
        "median_seconds": round(statistics.median(seconds), 3),
        "max_seconds": round(max(seconds), 3),
        "median_page_received_ms": round(statistics.median(r["page_ms"] for r in runs)),
        "median_images_received_ms": round(statistics.median(r["images_ms"] for r in runs)),
        "target_bytes": TARGET_BYTES,
        "target_seconds": TARGET_SECONDS,
        "meets_target": statistics.median(bytes_) < TARGET_BYTES
        and statistics.median(seconds) < TARGET_SECONDS,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
