"""``dojo synthetic``: run the synthetic API, sample tasks, preview one (see :mod:`dojo.synthetic`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("synthetic", help="synthetic tasks: serve the API, sample, preview")
    commands = group.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the synthetic API (GET /api/synthetic-gen, /health)")
    serve.add_argument("--backend", choices=("procedural", "llm"), default=None, help="generator (default procedural)")
    serve.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 5003)")
    serve.add_argument("--db", default=None, help="task database file (default ~/.dojo/synthetic.sqlite)")
    serve.add_argument("--token", default=None, help="bearer token clients must send (required off loopback)")
    serve.add_argument("--queue-size", dest="queue_size", type=int, default=None, help="tasks kept ready (default 32)")
    serve.add_argument("--seed", default=None, help="seed, for reproducible tasks")
    serve.add_argument("--completions", type=int, default=None, help="completions per task (default 4)")
    serve.add_argument("--similarity", type=float, default=None, help="filter threshold, TF-IDF cosine (default 0.8)")
    serve.add_argument("--task-seconds", dest="task_seconds", type=float, default=None, help="time limit per task")
    serve.add_argument("--task-tokens", dest="task_tokens", type=int, default=None, help="token limit per task (llm)")
    serve.add_argument(
        "--llm-provider", dest="llm_provider", default=None, help="openrouter (default), together, openai, vllm, ollama"
    )
    serve.add_argument("--llm-base-url", dest="llm_base_url", default=None, help="OpenAI-compatible base URL")
    serve.add_argument(
        "--llm-model", dest="llm_models", action="append", default=None, help="model id; repeat for several"
    )
    serve.set_defaults(handler=_serve)

    sample = commands.add_parser("sample", help="generate tasks in-process and write them as JSONL")
    sample.add_argument("--n", type=int, default=10, help="number of tasks (default 10)")
    sample.add_argument("--out", required=True, help="output file, one task per line")
    sample.add_argument("--seed", default=None, help="seed, for reproducible tasks")
    sample.set_defaults(handler=_sample)

    preview = commands.add_parser("preview", help="write a page showing one task's completions side by side")
    preview.add_argument("--out", required=True, help="output directory")
    preview.add_argument("--seed", default=None, help="seed of the generated task")
    preview.add_argument("--from", dest="source", default=None, help="JSONL from `sample`: preview its first task")
    preview.set_defaults(handler=_preview)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from loguru import logger

    from dojo.synthetic.service import serve
    from dojo.synthetic.settings import SettingsError, environment, resolve_settings

    flags = {k: v for k, v in vars(args).items() if k not in ("handler", "group", "command")}
    try:
        settings = resolve_settings(flags, environment())
    except SettingsError as exc:
        return _fail(str(exc))
    logger.info("dojo synthetic serve: {}", settings.masked())
    try:
        serve(settings)
    except ValueError as exc:  # an llm backend without its key, say
        return _fail(str(exc))
    return 0


def _sample(args: argparse.Namespace) -> int:
    import asyncio

    from dojo.synthetic.preview import write_samples

    if args.n < 1:
        return _fail("--n must be at least 1")
    out = Path(args.out)
    count = asyncio.run(write_samples(args.n, out, seed=args.seed))
    print(f"wrote {count} tasks to {out}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    import asyncio

    from dojo.synthetic.preview import generate_tasks, read_samples, write_preview

    if args.source:
        path = Path(args.source)
        if not path.is_file():
            return _fail(f"{path} does not exist; write one with `dojo synthetic sample --out {path}`")
        tasks = read_samples(path)
        if not tasks:
            return _fail(f"{path} holds no tasks")
        task = tasks[0]
    else:
        task = asyncio.run(generate_tasks(1, seed=args.seed))[0]
    index = write_preview(task, Path(args.out))
    print(f"preview written to {index}")
    return 0
