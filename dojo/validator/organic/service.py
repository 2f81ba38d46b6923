"""The organic API as a part of the validator's process: its own thread, its own event loop.

The API (uvicorn), the webhook deliveries and the reading of the callers' subnets run on a
loop of their own, so a flood of requests costs the validator's loops CPU at most, never a
late step; they share the validator's database (SQLite WAL or PostgreSQL), which is where
accepted tasks wait for the validator's fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace

import uvicorn
import uvloop
from loguru import logger
from sqlalchemy import Engine

from dojo.validator.config import ValidatorConfig
from dojo.validator.organic.api import BatchWriter, OrganicContext, create_app
from dojo.validator.organic.callbacks import CallbackGuard
from dojo.validator.organic.callers import HotkeyCallers
from dojo.validator.organic.store import OrganicStore
from dojo.validator.organic.webhooks import DELIVERY_RETRY, WebhookSender
from template.chain import Chain


class OrganicService:
    """Start with :meth:`start` (returns once the API listens), stop with :meth:`stop`."""

    def __init__(
        self,
        config: ValidatorConfig,
        engine: Engine,
        *,
        validator_hotkey: str,
        subnet_size: Callable[[], int],
        caller_chains: Mapping[int, Chain] | None = None,
        sender_options: Mapping[str, object] | None = None,
    ) -> None:
        settings = config.organic
        self.settings = settings
        self.store = OrganicStore(engine)
        self.guard = CallbackGuard(
            allow_private=settings.allow_private_callbacks, own_ports={config.axon.port, settings.port}
        )
        callers = None
        if caller_chains:
            callers = HotkeyCallers(
                caller_chains, min_stake=settings.min_stake, epoch_length=config.neuron.epoch_length
            )
        self.callers = callers
        self.context = OrganicContext(
            store=self.store,
            validator_hotkey=validator_hotkey,
            task_deadline=config.neuron.task_deadline,
            sample_size=config.neuron.sample_size,
            subnet_size=subnet_size,
            guard=self.guard,
            callers=callers,
            hotkey_rate=settings.hotkey_rate,
            hotkey_daily_quota=settings.hotkey_daily_quota,
        )
        self._sender_options: dict[str, object] = {
            "policy": replace(DELIVERY_RETRY, base_delay=settings.webhook_retry_base),
            **(sender_options or {}),
        }
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._server: uvicorn.Server | None = None
        self.sender: WebhookSender | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.settings.port}"

    def start(self, timeout: float = 30.0) -> None:
        self._thread = threading.Thread(target=self._run, name="organic-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise OSError(f"the organic API did not start on {self.url} within {timeout:g}s")
        if self._error is not None:
            raise OSError(f"the organic API could not start on {self.url}: {self._error}")
        logger.info(
            "organic API on {} (hotkey callers from subnets {})",
            self.url,
            sorted(self.callers.chains) if self.callers else "none",
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            uvloop.run(self._main())
        except BaseException as exc:  # reported to start(); the validator goes on without the API
            self._error = exc
            logger.error("organic API stopped: {}: {}", type(exc).__name__, exc)
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.context.writer = writer = BatchWriter(self.store)
        app = create_app(self.context, max_body_bytes=self.settings.max_body_bytes)
        config = uvicorn.Config(
            app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        # In this thread uvicorn installs no signal handlers: SIGINT/SIGTERM stay the validator's.
        self._server = server = uvicorn.Server(config)
        if self.callers is not None:
            await self.callers.refresh(force=True)
        self.sender = WebhookSender(self.store, self.guard, **self._sender_options)  # type: ignore[arg-type]
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.01)
        if serving.done():
            with contextlib.suppress(SystemExit):
                serving.result()
            raise OSError("address in use or not available")
        self._ready.set()
        poll = 12.0
        background = [asyncio.create_task(self.sender.run(self._stop))]
        if self.callers is not None:
            background.append(asyncio.create_task(self.callers.run(self._stop, poll)))
        await self._stop.wait()
        server.should_exit = True
        await asyncio.gather(serving, *background, return_exceptions=True)
        await self.sender.aclose()
        await asyncio.to_thread(writer.close)
