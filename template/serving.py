"""``serve_processes``: one ASGI app served by several processes, each accepting from a
listening socket of its own (``SO_REUSEPORT``), so that the kernel spreads new connections
among them evenly.

uvicorn's ``--workers`` binds one socket from which every process accepts: whichever
process wakes first takes every connection waiting, so a burst of keep-alive connections
(a team's workers starting at once, a load balancer opening its pool, clients reconnecting
after a restart) can land wholly on one process while the others idle for as long as those
connections live. Measured with ``benchmarks/platform.py`` (200 workers opening their
connections at once, two server processes): in two of six runs every connection went to
one process. Here each process has its own queue; the kernel picks the queue of each new
connection by a hash of its addresses when it arrives, so which process happens to be
awake does not matter.

The parent binds the sockets and keeps them open, so a connection arriving while a process
restarts waits in its queue for the new process rather than being refused. A process that
dies is started again on the same socket by a :class:`RestartPolicy` (after 1 s, then
doubling while it keeps dying within 30 s of its start, up to 30 s), so a crash loop does
not spend the machine on start-ups; after ten such deaths in a row, or if it failed to
start at all (the app or its settings are wrong: it would fail again), the server stops
with exit code 1, for its own supervisor to see. SIGINT or SIGTERM stops every process (each
finishes the requests in flight, as uvicorn does) and then the parent. Linux only: elsewhere
``SO_REUSEPORT`` does not balance, and :func:`balanced` is false.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from loguru import logger
from uvicorn.config import STARTUP_FAILURE

from template.restart import RestartPolicy

# How often the parent looks for a process that died, besides when one does.
_POLL_SECONDS = 0.5


def balanced() -> bool:
    """Whether this system spreads connections among sockets bound with ``SO_REUSEPORT``."""
    return sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, count: int, backlog: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port``, each with ``SO_REUSEPORT`` (a port of 0:
    the one the system picks for the first)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _run(config: uvicorn.Config, sock: socket.socket) -> None:
    """One process: uvicorn serving ``config``'s app from ``sock``."""
    config.configure_logging()
    uvicorn.Server(config).run(sockets=[sock])


def serve_processes(config: uvicorn.Config, count: int, policy: RestartPolicy | None = None) -> int:
    """Serve ``config``'s app (an import string, as uvicorn's ``workers`` needs) from ``count``
    processes until SIGINT or SIGTERM; the exit code (1 when the address cannot be bound, a
    process fails to start, or one keeps dying: ``policy``)."""
    policy = policy or RestartPolicy()
    try:
        sockets = bind(config.host, config.port, count, config.backlog)
    except OSError as exc:
        logger.error("cannot listen on {}:{}: {}", config.host, config.port, exc)
        return 1
    multiprocessing.allow_connection_pickling()  # the sockets go to the processes
    spawn = multiprocessing.get_context("spawn")
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start(sock: socket.socket) -> BaseProcess:
        process = spawn.Process(target=_run, args=(config, sock), name="dojo-serve")
        process.start()
        return process

    host, port = sockets[0].getsockname()[:2]
    logger.info("serving http://{}:{} from {} processes, each with its own socket", host, port, count)
    processes = [start(sock) for sock in sockets]
    started = [time.monotonic()] * count
    quick = [0] * count  # quick deaths in a row, by socket
    due: dict[int, float] = {}  # socket -> when its next process starts
    code = 0
    try:
        while not stopping:
            now = time.monotonic()
            wait = min([_POLL_SECONDS, *(max(0.0, at - now) for at in due.values())])
            multiprocessing.connection.wait(
                [p.sentinel for i, p in enumerate(processes) if i not in due], wait
            )
            now = time.monotonic()
            for index, at in list(due.items()):
                if at <= now and not stopping:
                    del due[index]
                    processes[index] = start(sockets[index])
                    started[index] = now
            for index, process in enumerate(processes):
                if index in due or process.is_alive() or stopping:
                    continue
                process.join()
                if process.exitcode == STARTUP_FAILURE:
                    logger.error("server process {} failed to start; stopping", process.pid)
                    stopping.append(0)
                    code = 1
                    break
                quick[index] = policy.quick_exits(now - started[index], quick[index])
                delay = policy.delay(quick[index])
                if delay is None:
                    logger.error(
                        "server process {} ended ({}): {} ends in a row soon after a start; stopping",
                        process.pid,
                        process.exitcode,
                        quick[index],
                    )
                    stopping.append(0)
                    code = 1
                    break
                logger.warning(
                    "server process {} ended ({}); starting another in {:g}s",
                    process.pid,
                    process.exitcode,
                    delay,
                )
                due[index] = now + delay
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        for sock in sockets:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
