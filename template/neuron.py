"""The neuron lifecycle shared by miners and validators.

Start: load the wallet, open the chain, check that the hotkey is registered (if not, say
which command registers it), serve the signed endpoint on the address given, publish it on
chain. Run: resync the metagraph every epoch (``--neuron.epoch_length`` blocks) alongside
the subclass's own loops. Stop: on SIGINT or SIGTERM, finish in-flight requests, stop the
loops and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

import uvloop
from loguru import logger

from template import __version__, spec_version
from template.chain import Chain, Metagraph, NotRegistered, is_local_chain_dir, open_chain
from template.clock import Clock
from template.config import NeuronConfig, describe
from template.log import setup_logging
from template.transport import BlacklistPolicy, SignedServer
from template.wallets import load_wallet

UNSPECIFIED_ADDRESSES = ("0.0.0.0", "::", "[::]", "")

# The settings of a kind of neuron: a subclass reads its own fields from ``self.config``.
ConfigT = TypeVar("ConfigT", bound=NeuronConfig)


class StartupError(RuntimeError):
    """The neuron cannot start; the message says what to do."""


class BaseNeuron(Generic[ConfigT]):
    """Subclasses add routes in :meth:`setup` and long-running loops in :meth:`loops`; each
    names the settings it is built from (``BaseNeuron[MinerConfig]``)."""

    neuron_type = "neuron"
    # Seconds the loops get to finish their step in flight after SIGINT/SIGTERM.
    stop_grace = 10.0

    def __init__(
        self,
        config: ConfigT,
        chain: Chain | None = None,
        *,
        block_poll_interval: float = 1.0,
        clock: Clock | None = None,
    ):
        # Every deadline and wait of the neuron's loops is kept by this clock; a test hands an
        # AdjustableClock to pass a deadline without sleeping through it.
        self.clock = clock or Clock()
        self.config = config
        setup_logging(config.logging.debug, config.logging.trace, self.neuron_type, split=True)
        # First, so that the log of every start (and after an update, every restart) says
        # which release runs.
        logger.info("dojo {} {} starting (spec version {})", __version__, self.neuron_type, spec_version())
        logger.info("settings:\n{}", describe(config))
        self.wallet = load_wallet(config.wallet.name, config.wallet.hotkey, config.wallet.path)
        self.keypair = self.wallet.hotkey
        self.hotkey = self.keypair.ss58_address
        self.chain = chain or open_chain(
            config.subtensor.network, config.netuid, config.subtensor.chain_endpoint
        )
        self.block_poll_interval = block_poll_interval
        self._metagraph = self.chain.metagraph()
        self.uid = self._require_registration(self._metagraph)
        self.last_sync_block = self._metagraph.block
        self.stop_event = asyncio.Event()
        self.server = SignedServer(
            self.keypair,
            lambda: self._metagraph,
            policy=BlacklistPolicy(
                force_validator_permit=config.blacklist.force_validator_permit,
                minimum_stake=config.blacklist.minimum_stake,
            ),
            max_body_bytes=config.axon.max_body_bytes,
            nonce_path=config.data_dir / f"{self.neuron_type}-nonces.sqlite",
        )
        self.setup()

    # --- hooks --------------------------------------------------------------------------

    def setup(self) -> None:
        """Register routes on ``self.server``."""

    def loops(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        """Long-running coroutines to run beside the endpoint; each should end when ``stop_event`` is set."""
        return []

    async def on_resync(self, metagraph: Metagraph) -> None:
        """Called after every metagraph resync."""

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def metagraph(self) -> Metagraph:
        return self._metagraph

    def _require_registration(self, metagraph: Metagraph) -> int:
        uid = metagraph.uid_of(self.hotkey)
        if uid is not None:
            return uid
        cfg = self.config
        if is_local_chain_dir(cfg.subtensor.network):
            hint = (
                f"register it with `dojo chain register --dir {cfg.subtensor.network} --wallet.name "
                f"{cfg.wallet.name} --wallet.hotkey {cfg.wallet.hotkey} --wallet.path {cfg.wallet.path}`"
            )
        else:
            hint = (
                f"register it with `btcli subnet register --netuid {cfg.netuid} --wallet.name {cfg.wallet.name} "
                f"--wallet.hotkey {cfg.wallet.hotkey} --subtensor.network {cfg.subtensor.network}`"
            )
        raise NotRegistered(self.hotkey, cfg.netuid, hint)

    def published_address(self) -> tuple[str, int]:
        axon = self.config.axon
        port = axon.external_port or axon.port
        if axon.external_ip:
            return axon.external_ip, port
        if axon.ip not in UNSPECIFIED_ADDRESSES:
            return axon.ip, port
        if is_local_chain_dir(self.config.subtensor.network):
            return "127.0.0.1", port
        raise StartupError(
            f"--axon.ip {axon.ip} binds every interface; set --axon.external_ip to the address validators should call"
        )

    async def resync(self) -> None:
        metagraph = await asyncio.to_thread(self.chain.metagraph)
        if metagraph.get(self.hotkey) is None or metagraph.uid_of(self.hotkey) != self.uid:
            logger.error("hotkey {} is no longer registered as uid {}; stopping", self.hotkey, self.uid)
            self.stop_event.set()
            return
        self._metagraph = metagraph
        self.last_sync_block = metagraph.block
        logger.debug("metagraph resynced at block {}: {} neurons", metagraph.block, metagraph.n)
        await self.on_resync(metagraph)

    async def _epoch_loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                block = await asyncio.to_thread(self.chain.block)
                if block - self.last_sync_block >= self.config.neuron.epoch_length:
                    await self.resync()
            except Exception as exc:  # a chain hiccup must not kill the neuron; the next poll retries
                logger.warning("metagraph resync failed: {}: {}", type(exc).__name__, exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), self.block_poll_interval)

    def request_stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> None:
        """Serve, publish and loop until SIGINT/SIGTERM or :meth:`request_stop`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        ip, port = self.published_address()
        ready = asyncio.Event()
        server_task = asyncio.create_task(
            self.server.serve(self.config.axon.ip, self.config.axon.port, ready)
        )
        ready_wait = asyncio.create_task(ready.wait())
        await asyncio.wait({server_task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
        if server_task.done():
            ready_wait.cancel()
            server_task.result()
        await asyncio.to_thread(self.chain.serve_axon, self.wallet, ip, port)
        logger.info(
            "{} uid {} ({}) published http://{}:{}", self.neuron_type, self.uid, self.hotkey, ip, port
        )
        tasks = [asyncio.create_task(self._epoch_loop())] + [asyncio.create_task(fn()) for fn in self.loops()]
        await self.stop_event.wait()
        logger.info("stopping {} uid {}", self.neuron_type, self.uid)
        # Each loop ends at its next wait on stop_event; a step in flight (a fan-out whose
        # answers are still to be recorded) gets a moment to finish before it is cancelled.
        _, unfinished = await asyncio.wait(tasks, timeout=self.stop_grace)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.server.stop()
        await server_task
        await self.shutdown()
        logger.info("{} uid {} stopped", self.neuron_type, self.uid)

    async def shutdown(self) -> None:
        """Release what the subclass holds; called once after the endpoint has stopped."""


def run_neuron(neuron_class: type[BaseNeuron[ConfigT]], config: ConfigT, **parts: Any) -> int:
    """Build and run a neuron in its own event loop; the exit code for the process. ``parts``
    go to the neuron's constructor (what its entry point wires in, such as the validator's
    dataset export)."""
    from template.chain import ChainError
    from template.wallets import WalletMissing

    try:
        neuron = neuron_class(config, **parts)
    except (NotRegistered, WalletMissing, StartupError, ChainError) as exc:
        setup_logging(config.logging.debug, config.logging.trace, neuron_class.neuron_type, split=True)
        logger.error("{}", exc)
        return 1
    try:
        # uvloop roughly halves the per-request cost of the endpoint and the fan-out client.
        uvloop.run(neuron.run())
    except (OSError, StartupError) as exc:
        logger.error("{}", exc)
        return 1
    return 0
