"""The localnet's organic caller: a small outside client of the validator's organic API.

Run by ``dojo localnet up --organic`` as its own process. At ``--rate`` tasks a second it
makes a task whose right order it knows (the procedural generator's code completions and
their ground truth), writes that order down for the simulated workers' oracle
(:class:`dojo.workers.IntendedOrders`), and submits it, private or public in turn, with a
callback to its own webhook receiver. The receiver verifies every webhook with the key's
secret and answers the first attempt of each with 503, so that every webhook is retried
once. Everything it sees goes to JSON-lines files in ``--dir``:

- ``submitted.jsonl``: ``{task_id, external_id, visibility, intended}``;
- ``webhooks.jsonl``: one line per attempt received: ``{webhook_id, task_id, type, verified,
  status, ranking}``;
- ``results.jsonl``: one line per task scored (by ``GET``): ``{task_id, ranking, spearman}``.

Its API key and the key's webhook secret come in the environment (``DOJO_ORGANIC_KEY``, as
for ``dojo organic``, and ``DOJO_ORGANIC_WEBHOOK_SECRET``), not on its command line, which
every local user can read through ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commons.organic import OrganicAPIError, OrganicClient, WebhookInvalid, verify_webhook
from commons.scoring import spearman_rho
from dojo.localnet.state import ORGANIC_KEY_ENV, ORGANIC_SECRET_ENV
from dojo.workers import IntendedOrders
from template.config import environment
from template.log import setup_logging


def _append(path: Path, entry: dict[str, Any]) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(entry) + "\n")


def receiver(secret: str, out: Path) -> Starlette:
    seen: set[str] = set()

    async def webhook(request: Request) -> Response:
        body = await request.body()
        try:
            event = verify_webhook(secret, request.headers, body)
        except WebhookInvalid as exc:
            _append(
                out, {"webhook_id": request.headers.get("webhook-id"), "verified": False, "error": str(exc)}
            )
            return Response(status_code=400)
        webhook_id = request.headers["webhook-id"]
        first = webhook_id not in seen
        seen.add(webhook_id)
        status = 503 if first else 200
        _append(
            out,
            {
                "webhook_id": webhook_id,
                "task_id": event.data.task_id,
                "type": event.type,
                "verified": True,
                "status": status,
                "ranking": event.data.result.ranking if event.data.result else None,
            },
        )
        return Response(status_code=status)

    return Starlette(routes=[Route("/webhook", webhook, methods=["POST"])])


async def _submit_loop(
    args: argparse.Namespace, client: OrganicClient, stop: asyncio.Event, folder: Path
) -> None:
    from dojo.synthetic import default_task_source

    source = default_task_source(url="", store_path=folder / "synthetic.sqlite")
    n = 0
    try:
        while not stop.is_set():
            try:
                task = await source.next_task()
                labels = {r.cid: f"c{i}" for i, r in enumerate(task.responses)}
                intended = {labels[cid]: rank for cid, rank in task.ground_truth.items()}
                external_id = f"localnet-{uuid.uuid4().hex[:12]}"
                # Written before the task exists anywhere: a worker may see it at once.
                IntendedOrders.append(folder / "intended.jsonl", external_id, intended)
                visibility = "public" if n % 2 else "private"
                accepted = await client.submit(
                    {
                        "prompt": task.prompt,
                        "external_id": external_id,
                        "visibility": visibility,
                        "callback_url": f"http://127.0.0.1:{args.port}/webhook",
                        "completions": [
                            {
                                "id": labels[r.cid],
                                "model": r.model,
                                "content": {
                                    "kind": "code",
                                    "files": [
                                        f.model_dump()
                                        for f in r.completion.original or r.completion.files or []
                                    ],
                                },
                            }
                            for r in task.responses
                        ],
                    }
                )
                _append(
                    folder / "submitted.jsonl",
                    {
                        "task_id": accepted.task_id,
                        "external_id": external_id,
                        "visibility": visibility,
                        "intended": intended,
                    },
                )
                n += 1
            except (OrganicAPIError, OSError) as exc:
                logger.warning("organic task not submitted: {}: {}", type(exc).__name__, exc)
            try:
                await asyncio.wait_for(stop.wait(), 1.0 / args.rate)
            except asyncio.TimeoutError:
                continue
    finally:
        await source.aclose()


async def _result_loop(client: OrganicClient, stop: asyncio.Event, folder: Path) -> None:
    done: set[str] = set()
    while not stop.is_set():
        submitted = await asyncio.to_thread(_read_lines, folder / "submitted.jsonl")
        for entry in submitted:
            if entry["task_id"] in done:
                continue
            try:
                view = await client.task(entry["task_id"])
            except OrganicAPIError as exc:
                logger.warning("cannot read task {}: {}", entry["task_id"], exc)
                continue
            if view.status in ("scored", "expired", "failed"):
                done.add(entry["task_id"])
                line: dict[str, Any] = {"task_id": view.task_id, "status": view.status}
                if view.result is not None:
                    intended = entry["intended"]
                    ranks = {c.id: c.consensus_rank for c in view.result.completions}
                    ids = sorted(intended)
                    line["ranking"] = view.result.ranking
                    line["spearman"] = float(
                        spearman_rho(
                            np.array([ranks[i] for i in ids]), np.array([float(intended[i]) for i in ids])
                        )
                    )
                _append(folder / "results.jsonl", line)
        try:
            await asyncio.wait_for(stop.wait(), 2.0)
        except asyncio.TimeoutError:
            continue


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def run(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = uvicorn.Server(
        uvicorn.Config(
            receiver(args.secret, folder / "webhooks.jsonl"),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    serving = asyncio.create_task(server.serve())
    async with OrganicClient(args.validator, api_key=args.key) as client:
        work = [
            asyncio.create_task(_submit_loop(args, client, stop, folder)),
            asyncio.create_task(_result_loop(client, stop, folder)),
        ]
        await stop.wait()
        await asyncio.gather(*work, return_exceptions=True)
    server.should_exit = True
    await serving
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dojo.localnet.organic", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--validator", required=True, help="the organic API's URL")
    parser.add_argument("--rate", type=float, default=0.2, help="tasks a second")
    parser.add_argument("--port", type=int, required=True, help="the webhook receiver's port")
    parser.add_argument("--dir", required=True, help="where its JSON-lines files go")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    if not args.rate > 0:
        parser.error("--rate must be more than 0")
    env = environment()
    args.key, args.secret = env.get(ORGANIC_KEY_ENV), env.get(ORGANIC_SECRET_ENV)
    if not args.key or not args.secret:
        parser.error(
            f"${ORGANIC_KEY_ENV} and ${ORGANIC_SECRET_ENV} must hold the API key and its webhook secret"
        )
    setup_logging(debug=args.debug, neuron="organic")
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
