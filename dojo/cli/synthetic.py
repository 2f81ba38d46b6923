"""``dojo synthetic``: run the synthetic API, sample tasks, preview one (see :mod:`dojo.synthetic`).

``serve``'s flags are :class:`dojo.synthetic.settings.ServiceSettings`' fields, each with its
environment variable, resolved as the neurons' settings are (:mod:`template.config`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from dojo.cli._deferred import DeferredParser

    group = subparsers.add_parser("synthetic", help="synthetic tasks: serve the API, sample, preview")
    commands = group.add_subparsers(dest="command", metavar="COMMAND", parser_class=DeferredParser)

    serve = commands.add_parser("serve", help="run the synthetic API (GET /api/synthetic-gen, /health)")
    serve.defer(_add_service_flags)
    serve.set_defaults(handler=_serve)

    sample = commands.add_parser("sample", help="generate tasks in-process and write them as JSONL")
    sample.add_argument("--n", type=int, default=10, help="number of tasks (default 10)")
    sample.add_argument("--out", required=True, help="output file, one task per line")
    sample.add_argument("--seed", default=None, help="seed, for reproducible tasks")
    sample.defer(_add_sample_flags)
    sample.set_defaults(handler=_sample)

    preview = commands.add_parser("preview", help="write a page showing one task's completions side by side")
    preview.add_argument("--out", required=True, help="output directory")
    preview.add_argument("--seed", default=None, help="seed of the generated task")
    preview.add_argument(
        "--from", dest="source", default=None, help="JSONL from `sample`: preview its first task"
    )
    preview.add_argument(
        "--kind",
        default="code",
        choices=("code", "text", "dialogue", "image"),
        help="kind of the generated task",
    )
    preview.set_defaults(handler=_preview)


def _add_service_flags(parser: argparse.ArgumentParser) -> None:
    from dojo.synthetic.settings import ServiceSettings
    from template.config import add_options

    add_options(parser, ServiceSettings)


def _add_sample_flags(parser: argparse.ArgumentParser) -> None:
    from dojo.synthetic.settings import SampleSettings
    from template.config import add_options

    add_options(parser, SampleSettings)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from loguru import logger

    from dojo.synthetic.service import serve
    from dojo.synthetic.settings import SettingsError, settings_from_args
    from template.config import print_config_error

    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        return print_config_error("dojo synthetic serve", exc)
    logger.info("dojo synthetic serve: {}", settings.masked())
    try:
        serve(settings)
    except ValueError as exc:  # an llm backend without its key, say
        return _fail(str(exc))
    return 0


def _sample(args: argparse.Namespace) -> int:
    import asyncio

    from commons.synthetic_api import parse_mix
    from dojo.synthetic.pipeline import PipelineOptions
    from dojo.synthetic.preview import write_samples
    from dojo.synthetic.settings import SampleSettings, SettingsError
    from template.config import print_config_error, resolve_args

    if args.n < 1:
        return _fail("--n must be at least 1")
    try:
        settings = resolve_args(SampleSettings, args)
        options = PipelineOptions(n_completions=settings.completions, mix=parse_mix(settings.mix))
    except SettingsError as exc:
        return print_config_error("dojo synthetic sample", exc)
    except ValueError as exc:
        return _fail(str(exc))
    out = Path(args.out)
    count = asyncio.run(write_samples(args.n, out, seed=args.seed, options=options))
    print(f"wrote {count} tasks ({settings.mix}) to {out}")
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
        task = asyncio.run(generate_tasks(1, seed=args.seed, kind=args.kind))[0]
    index = write_preview(task, Path(args.out))
    print(f"preview written to {index}")
    return 0
