"""A subcommand parser that adds its settings' flags only when it parses."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any


class DeferredParser(argparse.ArgumentParser):
    """A subcommand's parser that adds some flags only when it parses (:meth:`defer`): as
    ``parser_class`` of a command group's subparsers, building the whole command line (for
    ``dojo --help``) imports no settings model (nor pydantic)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deferred: list[Callable[[argparse.ArgumentParser], None]] = []

    def defer(self, add: Callable[[argparse.ArgumentParser], None]) -> None:
        self._deferred.append(add)

    def parse_known_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> Any:
        while self._deferred:
            self._deferred.pop(0)(self)
        return super().parse_known_args(args, namespace)
