"""The validator neuron: carries each task from synthetic generation to weights on chain.

Loops, each independent (a slow or failing one never stalls the others):

- **heartbeat** (every ``--neuron.heartbeat_interval`` s): the miners that answer with our
  protocol version form the active set.
- **tasks** (every ``--neuron.task_interval`` s): take one synthetic task (of a content kind
  drawn from ``--synthetic.mix`` when it is set), pick up to ``--neuron.sample_size`` active
  miners at random (``secrets.SystemRandom``), give each its own completion order and ids,
  write the task and every assignment to the database, then send ``FeedbackRequest`` and
  record each outcome. Images are decoded and written anew first, so no metadata reaches a
  miner. On start, assignments written but never answered are sent again with the same
  request id.
- **collection**: after the deadline (``--neuron.task_deadline``), ask every miner that
  accepted for its results (``TaskResultRequest``), retrying with backoff within
  ``--neuron.collection_grace``; check them (:mod:`dojo.validator.results`) and store them.
  With ``--neuron.collect_at_results N``, also ask before the deadline, every few seconds,
  and take a miner's results as soon as N workers' rankings are in: when N is the
  places a miner's task has, no result can follow, and a task every miner has filled is
  scored without waiting out its deadline.
- **scoring** (every ``--neuron.scoring_interval`` s): score the collected tasks in a round
  (in a thread), fold it into the moving scores, tell each miner its own score.
- **weights**: once per epoch (``--neuron.epoch_length`` blocks, and never faster than the
  subnet's weights rate limit), set weights from the moving scores, in a thread.
- **dataset export** (every ``--export.interval`` s, when set): the scored tasks exported to a
  new dated folder under ``--export.dir``, ``latest`` pointed at it, logged to wandb as an
  artifact; in a thread (``docs/dataset.md``). The export reads this database and is handed
  in (:class:`DatasetExport`, ``main_validator.py`` gives :class:`dojo.export.ScheduledExport`):
  the validator does not import it.
- **organic** (``--organic.enabled``): the organic API in its own thread and event loop
  (:mod:`dojo.validator.organic`); its accepted tasks join the task rounds above, up to
  ``--organic.max_share`` of what is sent, through the same planning and fan-out as synthetic
  tasks (``docs/organic.md``).

Everything is in the task database (:mod:`dojo.validator.store`), written before it is
acted on; ``docs/lifecycle.md`` walks through what a crash at each step leaves behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from loguru import logger

from commons.media import ImageRefused, b64encode, reencode
from commons.protocol import (
    PROTOCOL_VERSION,
    TASK_TYPE_OF_KIND,
    Ack,
    Completion,
    Content,
    FeedbackReply,
    FeedbackRequest,
    Heartbeat,
    HeartbeatReply,
    ImageContent,
    ScoringResult,
    TaskResultReply,
    TaskResultRequest,
)
from commons.retry import RetryPolicy, is_transient
from commons.synthetic_api import SyntheticTask, SyntheticTaskSource, parse_mix
from dojo.validator.config import ValidatorConfig
from dojo.validator.models import CollectStatus, SendStatus
from dojo.validator.organic.store import AlreadyClaimed, OrganicStore, QueuedOrganic
from dojo.validator.results import ResultsRefused, check_results
from dojo.validator.rounds import score_inputs
from dojo.validator.store import (
    ORGANIC_SOURCE,
    AcceptedResult,
    CollectionOutcome,
    DueCollection,
    NewAssignment,
    NewCompletion,
    NewTask,
    Outgoing,
    RoundScores,
    RoundTask,
    SendOutcome,
    TaskStore,
)
from dojo.validator.wandb_log import RoundLogger
from template import spec_version
from template.chain import Chain, ChainError, Metagraph, NeuronInfo, WeightsRejected, open_chain
from template.chain.weights import check_weights
from template.clock import Clock
from template.failpoints import failpoint
from template.heap import freeze_heap
from template.log import quoted
from template.neuron import BaseNeuron
from template.transport import CallerInfo, Outcome, SignedClient, Status, Target

# A task found unsent after a restart is sent only with this share of its deadline left
# (and never with less than MIN_LEAD_SECONDS): workers need the time, and a miner must not
# score 0 for a task the validator's downtime left it no time for.
MIN_LEAD_SHARE = 0.25
MIN_LEAD_SECONDS = 10.0
MAX_ROUND_TASKS = 1000
FEEDBACK_TIMEOUT_FACTOR = 3.0
# Between collection tries of one assignment: 5 s, doubling, at most 5 minutes, jittered.
COLLECT_BACKOFF = RetryPolicy(base_delay=5.0, max_delay=300.0)
# set_weights: three tries, 2 s then 4 s apart (a node restarting, a nonce race in the pool).
WEIGHTS_RETRY = RetryPolicy(attempts=3, base_delay=2.0, max_delay=8.0, jitter=0.0)
EXPORT_FIRST_DELAY = 60.0  # seconds from start to the first dataset export, when there is none yet
# The share of organic tasks is kept over this many of the last tasks sent.
MIX_WINDOW = 256
# Between looks at an assignment before its deadline (--neuron.collect_at_results).
EARLY_LOOK_INTERVAL = 5.0


class _ToMiner(Protocol):
    """An assignment on its way to or from a miner: whose it is, at which uid."""

    @property
    def miner_hotkey(self) -> str: ...

    @property
    def miner_uid(self) -> int: ...


_A = TypeVar("_A", bound=_ToMiner)


class ExportedDataset(Protocol):
    """What one dataset export made, as the validator logs it (:class:`dojo.export.ExportSummary`)."""

    out: Path
    tasks: int
    preferences: int
    seconds: float
    format: str
    min_agreement: float

    @property
    def exported_at_iso(self) -> str: ...


class DatasetExport(Protocol):
    """The dataset export the validator runs every ``--export.interval`` seconds. It reads the
    validator's database, so it imports the validator and not the other way round:
    ``main_validator.py`` hands in :class:`dojo.export.ScheduledExport`."""

    def latest(self, root: Path) -> datetime | None:
        """When the export ``root/latest`` names was made; None when there is none."""
        ...

    def export(self, database_url: str, root: Path, keep: int) -> ExportedDataset:
        """Export the database to a new dated folder under ``root``, point ``root/latest`` at
        it and keep the ``keep`` newest."""
        ...


_SEND_STATUS = {
    Status.OK: SendStatus.ACCEPTED,
    Status.TIMEOUT: SendStatus.TIMEOUT,
    Status.REFUSED: SendStatus.UNREACHABLE,
}


class ValidatorNeuron(BaseNeuron[ValidatorConfig]):
    neuron_type = "validator"

    def __init__(
        self,
        config: ValidatorConfig,
        chain: Chain | None = None,
        *,
        block_poll_interval: float = 1.0,
        clock: Clock | None = None,
        export: DatasetExport | None = None,
    ):
        if config.export.interval > 0 and export is None:
            raise ValueError("--export.interval needs the dataset export (main_validator.py hands it in)")
        self.dataset_export = export
        super().__init__(config, chain, block_poll_interval=block_poll_interval, clock=clock)

    def setup(self) -> None:
        self.server.protocol_version = PROTOCOL_VERSION
        self.server.route(Heartbeat, self.heartbeat)
        self.client = SignedClient(self.keypair, timeout=self.config.neuron.timeout)
        self.active_uids: set[int] | None = None  # None until the first round, which always logs
        self.store = TaskStore.for_config(self.config.neuron.database_url, self.config.data_dir)
        self._rng = secrets.SystemRandom()
        self._source: SyntheticTaskSource | None = None
        self._last_weights_attempt: int | None = None
        self._no_scores_logged_at: int | None = None  # the block "no scores yet" was last logged at
        self.organic_store = OrganicStore(self.store.engine)
        self.organic: Any = None  # the OrganicService once it runs
        self._organic_cursor: str | None = None  # the caller served last, for the round robin
        self._sent_kinds: deque[bool] | None = None  # organic or not, for the last tasks sent
        self._shapes: deque[tuple[float, list[Any], int]] | None = None  # the last organic tasks' forms
        self.wandb = RoundLogger(
            enabled=not self.config.wandb.off,
            project=self.config.wandb.project,
            entity=self.config.wandb.entity,
            api_key=self.config.wandb_api_key.get_secret_value() if self.config.wandb_api_key else None,
            directory=self.config.data_dir,  # wandb adds its own wandb/ folder
            run_name=f"validator-{self.hotkey[:8]}",
            config={
                "netuid": self.config.netuid,
                "hotkey": self.hotkey,
                "sample_size": self.config.neuron.sample_size,
                "task_deadline": self.config.neuron.task_deadline,
            },
        )

    # --- endpoint -----------------------------------------------------------------------

    async def heartbeat(self, request: Heartbeat, caller: CallerInfo) -> HeartbeatReply:
        return HeartbeatReply(hotkey=self.hotkey)

    def loops(self) -> list[Callable[[], Coroutine[Any, Any, None]]]:
        loops = [
            self._heartbeat_loop,
            self._task_loop,
            self._collection_loop,
            self._scoring_loop,
            self._score_delivery_loop,
            self._weights_loop,
        ]
        if self.config.export.interval > 0:
            loops.append(self._export_loop)
        if self.config.organic.enabled:
            loops.append(self._organic_loop)
        return loops

    async def _every(
        self, seconds: float, what: str, step: Callable[[], Awaitable[Any]], first: float = 0.0
    ) -> None:
        """Run ``step`` every ``seconds`` until stopped; a failing step is logged, the next runs."""
        await self._sleep(first)
        while not self.stop_event.is_set():
            try:
                await step()
            except Exception:  # a bug in one step is logged with its traceback; the loop goes on
                logger.exception("{} failed", what)
            await self._sleep(seconds)

    async def _sleep(self, seconds: float) -> None:
        await self.clock.wait(seconds, self.stop_event)

    # --- heartbeat ----------------------------------------------------------------------

    def miner_targets(self) -> list[Target]:
        """The serving neurons but this one and the other validators (a permit and more
        stake than ``--neuron.vpermit_tao_limit``): a validator's endpoint answers a
        heartbeat as a miner's does, and a task sent to it would only fail."""
        limit = self.config.neuron.vpermit_tao_limit
        return [
            Target(hotkey=n.hotkey, url=n.axon.url, uid=n.uid)
            for n in self.metagraph.serving()
            if n.axon is not None  # serving: it has one
            and n.hotkey != self.hotkey
            and not (n.validator_permit and n.stake > limit)
        ]

    async def heartbeat_round(self) -> set[int]:
        """One heartbeat to every serving miner; returns and records the active uids."""
        targets = self.miner_targets()
        outcomes = await self.client.fanout(targets, Heartbeat(), HeartbeatReply)
        active: set[int] = set()
        for outcome in outcomes:
            uid = outcome.target.uid
            assert uid is not None  # miner_targets gives every target its uid
            if outcome.status is Status.OK and outcome.reply is not None:
                if (
                    outcome.reply.protocol_version == PROTOCOL_VERSION
                    and outcome.reply.hotkey == outcome.target.hotkey
                ):
                    active.add(uid)
                else:
                    logger.debug(
                        "uid {} answered with protocol {} as {}",
                        uid,
                        outcome.reply.protocol_version,
                        quoted(outcome.reply.hotkey),
                    )
            elif outcome.status is Status.TOO_LARGE:
                # A reply over its cap is an attack on this process's memory, not a fault of the network.
                logger.warning("uid {} heartbeat refused: {}", uid, quoted(_describe(outcome)))
            else:
                logger.debug("uid {} heartbeat: {} {}", uid, outcome.status.value, quoted(outcome.detail))
        if active != self.active_uids:
            logger.info(
                "active set: {} of {} serving miners: uids {}", len(active), len(targets), sorted(active)
            )
        self.active_uids = active
        return active

    async def _heartbeat_loop(self) -> None:
        await self._every(self.config.neuron.heartbeat_interval, "heartbeat round", self.heartbeat_round)

    # --- tasks and fan-out --------------------------------------------------------------------

    def task_source(self) -> SyntheticTaskSource:
        if self._source is None:
            from dojo.synthetic import default_task_source

            self._source = default_task_source(
                url=self.config.synthetic_api_url or "",
                token=self.config.synthetic_api_token.get_secret_value()
                if self.config.synthetic_api_token
                else None,
                store_path=self.config.data_dir / "synthetic.sqlite",
                mix=self.config.synthetic.mix,
            )
        return self._source

    def next_kind(self) -> str | None:
        """The content kind of the next task, drawn from ``--synthetic.mix``; None (the source's
        own choice) when no mix is set."""
        if self.config.synthetic.mix is None:
            return None
        mix = parse_mix(self.config.synthetic.mix)
        kinds = [k for k, share in mix.items() if share > 0]
        return self._rng.choices(kinds, weights=[mix[k] for k in kinds])[0]

    async def _task_loop(self) -> None:
        try:
            await self.resend_pending()
        except Exception:  # logged; what is still pending is sent again at the next start
            logger.exception("sending again what a restart left unanswered failed")
        interval = self.config.neuron.task_interval
        # The first task waits for the first heartbeat round, which finds the miners.
        await self._every(interval, "task round", self.task_round, first=min(interval, 2.0))

    async def resend_pending(self) -> None:
        """Send again what was written but never answered before a restart."""
        lead = timedelta(seconds=max(MIN_LEAD_SECONDS, MIN_LEAD_SHARE * self.config.neuron.task_deadline))
        outgoing = await asyncio.to_thread(self.store.pending_sends, self.clock.now(), lead)
        if outgoing:
            logger.info("sending {} assignments again that a restart left unanswered", len(outgoing))
            await self.send(outgoing)

    async def task_round(self) -> str | None:
        """One round of ``--organic.tasks_per_round`` tasks: organic ones from the queue where
        the share allows and eligible miners exist, synthetic ones for the rest; each planned,
        written, then all sent in one fan-out. Returns the first task's id."""
        if not self.active_uids:
            logger.info("no active miners; no task this round")
            return None
        slots = self.config.organic.tasks_per_round
        planned: list[tuple[NewTask, list[NewAssignment]]] = []
        if self.config.organic.enabled:
            planned += await self._organic_tasks(slots)
        for _ in range(slots - len(planned)):
            synthetic = await self._next_synthetic()
            if synthetic is None:
                break
            miners = self.sample_miners()
            if not miners:
                break
            try:
                planned.append(await asyncio.to_thread(self.plan_task, synthetic, miners))
            except ImageRefused as exc:
                logger.warning("synthetic task refused: one of its images is not fit to send ({})", exc)
                break
        if not planned:
            return None
        self._rng.shuffle(planned)  # organic and synthetic tasks leave in no telling order
        # Every task of the round is stamped at one moment, so a deadline says nothing of
        # how long its planning took (a synthetic task's generation, an organic one's none).
        now = self.clock.now()
        planned = [
            (replace(t, created_at=now, expire_at=now + (t.expire_at - t.created_at)), a) for t, a in planned
        ]
        outgoing: list[Outgoing] = []
        written: list[NewTask] = []
        for task, assignments in planned:
            try:
                outgoing += await asyncio.to_thread(self.store.add_task, task, assignments)
            except AlreadyClaimed as exc:  # sent already (cannot happen with one fan-out loop); never twice
                logger.warning("{}", exc)
                continue
            written.append(task)
            self._remember_sent(task)
            logger.info(
                "task {} written for {} miners (uids {}), due {}",
                task.task_id,
                len(assignments),
                sorted(a.miner_uid for a in assignments),
                task.expire_at.isoformat(),
            )
        failpoint("validator.fanout.after_write")
        await self.send(outgoing)
        return written[0].task_id if written else None

    async def _synthetic_source(self) -> SyntheticTaskSource:
        """The synthetic source, made in a thread the first time: importing the in-process
        generator (numpy, scipy) takes seconds, over ten under load, which on
        the loop's thread stalled every loop of the validator. What it imported is then
        taken out of the collector's view (:func:`freeze_heap`)."""
        if self._source is None:
            await asyncio.to_thread(self.task_source)
            freeze_heap(collect=False)
        return self.task_source()

    async def _next_synthetic(self) -> SyntheticTask | None:
        source = await self._synthetic_source()
        timeout = max(5.0, min(self.config.neuron.task_interval, 120.0))
        kind = self.next_kind()
        try:
            return await asyncio.wait_for(
                source.next_task() if kind is None else source.next_task(kind), timeout
            )
        except asyncio.TimeoutError:
            logger.warning(
                "the synthetic task source gave no task within {:g}s; trying again next round", timeout
            )
        except Exception as exc:  # a source that is down is retried on the next tick
            logger.warning("no synthetic task this round: {}: {}", type(exc).__name__, exc)
        return None

    def sample_miners(
        self, n: int | None = None, among: Sequence[NeuronInfo] | None = None
    ) -> list[tuple[int, str]]:
        """Up to ``n`` (``--neuron.sample_size``) of the active miners (or of ``among``), at
        random, one per coldkey first: a miner operator's hotkeys see the same task only
        when there are not enough operators."""
        by_uid = {n.uid: n for n in self.metagraph.neurons}
        if among is None:
            among = [by_uid[uid] for uid in sorted(self.active_uids or set()) if uid in by_uid]
        pool = list(among)
        self._rng.shuffle(pool)
        seen: set[str] = set()
        first: list[NeuronInfo] = []
        rest: list[NeuronInfo] = []
        for neuron in pool:
            (rest if neuron.coldkey in seen else first).append(neuron)
            seen.add(neuron.coldkey)
        chosen = (first + rest)[: self.config.neuron.sample_size if n is None else n]
        return sorted((m.uid, m.hotkey) for m in chosen)

    def plan_task(
        self, synthetic: SyntheticTask, miners: list[tuple[int, str]]
    ) -> tuple[NewTask, list[NewAssignment]]:
        """The task and each miner's assignment, as they will be written; raises
        :class:`~commons.media.ImageRefused` for an image that does not decode."""
        now = self.clock.now()
        responses = list(synthetic.responses)
        deadline, criteria = self.config.neuron.task_deadline, [{"type": "ranking"}]
        shape = self._synthetic_shape()
        if shape is not None:
            # Synthetic tasks take the forms organic ones come in, so neither the deadline nor
            # the criteria nor the number of completions tells a miner which kind it holds.
            deadline, criteria, n = shape
            if 2 <= n < len(responses):
                responses = self._rng.sample(responses, n)
        truth = _re_ranked({r.cid: synthetic.ground_truth[r.cid] for r in responses})
        completions = []
        for r in responses:
            kept = r.completion.kept()
            completions.append(
                NewCompletion(
                    completion_id=r.cid,
                    model=r.model,
                    content=sendable(r.completion.sent()).model_dump(mode="json"),
                    ground_truth_rank=truth.get(r.cid),
                    original_content=None if kept is None else sendable(kept).model_dump(mode="json"),
                )
            )
        task = NewTask(
            task_id=uuid.uuid4().hex,
            created_at=now,
            task_type=TASK_TYPE_OF_KIND[synthetic.kind],
            prompt=synthetic.prompt,
            criteria=criteria,
            expire_at=now + timedelta(seconds=deadline),
            source=self.config.synthetic_api_url or "in-process",
            completions=tuple(completions),
        )
        return task, self._assign(completions, miners)

    def _assign(
        self, completions: Sequence[NewCompletion], miners: list[tuple[int, str]]
    ) -> list[NewAssignment]:
        """Each miner's request id, and its own order of the completions under its own ids."""
        assignments = []
        for uid, hotkey in miners:
            order = [c.completion_id for c in completions]
            self._rng.shuffle(order)
            assignments.append(
                NewAssignment(
                    miner_hotkey=hotkey,
                    miner_uid=uid,
                    request_id=uuid.uuid4().hex,
                    completions=tuple((secrets.token_hex(8), cid) for cid in order),
                )
            )
        return assignments

    # --- organic tasks ------------------------------------------------------------------------

    async def _organic_tasks(self, slots: int) -> list[tuple[NewTask, list[NewAssignment]]]:
        """The organic tasks this round may send, planned: as many as ``--organic.max_share``
        of the last tasks sent allows, to miners above ``--organic.min_miner_score``."""
        allowed = await self._organic_slots(slots)
        if allowed == 0:
            return []
        eligible = await self.organic_miners()
        if not eligible:
            logger.debug(
                "organic tasks wait: no active miner has a moving score above {:g}",
                self.config.organic.min_miner_score,
            )
            return []
        queued = await asyncio.to_thread(self.organic_store.next_queued, allowed, self._organic_cursor)
        planned = []
        for q in queued:
            miners = self.sample_miners(q.miners_wanted, eligible)
            planned.append(await asyncio.to_thread(self.plan_organic, q, miners))
        if queued:
            self._organic_cursor = queued[-1].owner_id
        return planned

    async def organic_miners(self) -> list[NeuronInfo]:
        """Active miners whose moving score is above ``--organic.min_miner_score``."""
        moving = await asyncio.to_thread(self.store.moving_scores, self.config.neuron.moving_average_alpha)
        scores = moving.scores()
        floor = self.config.organic.min_miner_score
        return [
            n
            for n in self.metagraph.neurons
            if n.uid in (self.active_uids or set()) and scores.get(n.hotkey, 0.0) > floor
        ]

    async def _organic_slots(self, slots: int) -> int:
        if self._sent_kinds is None:
            recent = await asyncio.to_thread(self.store.recent_sources, MIX_WINDOW)
            self._sent_kinds = deque((s == ORGANIC_SOURCE for s in reversed(recent)), maxlen=MIX_WINDOW)
            shapes = await asyncio.to_thread(self.organic_store.recent_shapes, MIX_WINDOW)
            self._shapes = deque(reversed(shapes), maxlen=MIX_WINDOW)
        organic, total = sum(self._sent_kinds), len(self._sent_kinds)
        allowed = 0
        for _ in range(slots):
            if (organic + 1) / (total + 1) <= self.config.organic.max_share:
                organic += 1
                allowed += 1
            total += 1
        return allowed

    def _remember_sent(self, task: NewTask) -> None:
        if self._sent_kinds is not None:
            self._sent_kinds.append(task.source == ORGANIC_SOURCE)
        if task.source == ORGANIC_SOURCE and self._shapes is not None:
            deadline = (task.expire_at - task.created_at).total_seconds()
            self._shapes.append((deadline, task.criteria, len(task.completions)))

    def _synthetic_shape(self) -> tuple[float, list[Any], int] | None:
        if not self.config.organic.enabled or not self._shapes:
            return None
        return self._rng.choice(list(self._shapes))

    def plan_organic(
        self, q: QueuedOrganic, miners: list[tuple[int, str]]
    ) -> tuple[NewTask, list[NewAssignment]]:
        """An organic task planned exactly as a synthetic one: fresh completion ids, each
        miner's own order and ids, code obfuscated, the deadline from now."""
        now = self.clock.now()
        rng = random.Random(self._rng.getrandbits(64))
        completions = []
        for c in q.request["completions"]:
            content = c["content"]
            sent = _obfuscated(content, rng)
            completions.append(
                NewCompletion(
                    completion_id=str(uuid.uuid4()),
                    model=c.get("model") or "unknown",
                    content=sent,
                    ground_truth_rank=None,
                    original_content=content if sent != content else None,
                    label=c["label"],
                )
            )
        task = NewTask(
            task_id=q.task_id,
            created_at=now,
            task_type=q.request["task_type"],
            prompt=q.request["prompt"],
            criteria=list(q.request["criteria"]),
            expire_at=now + timedelta(seconds=q.deadline_seconds),
            source=ORGANIC_SOURCE,
            completions=tuple(completions),
        )
        return task, self._assign(completions, miners)

    async def _organic_loop(self) -> None:
        from dojo.validator.organic.service import OrganicService

        settings = self.config.organic
        chains = {}
        try:
            for netuid in settings.caller_netuids:
                chains[netuid] = await asyncio.to_thread(
                    open_chain, self.config.subtensor.network, netuid, self.config.subtensor.chain_endpoint
                )
            self.organic = OrganicService(
                self.config,
                self.store.engine,
                validator_hotkey=self.hotkey,
                subnet_size=lambda: self.metagraph.n,
                caller_chains=chains,
            )
            await asyncio.to_thread(self.organic.start)
        except (OSError, ChainError) as exc:
            logger.error("the organic API could not start: {}; stopping", exc)
            self.request_stop()
            return
        freeze_heap(collect=True)
        await self._every(
            max(1.0, min(60.0, self.config.neuron.task_interval)), "organic queue", self.settle_organic
        )

    async def settle_organic(self) -> int:
        """Expire what waited too long for miners, fail what could not be sent in time."""
        return await asyncio.to_thread(
            self.organic_store.settle, self.clock.now(), self.config.organic.queue_timeout
        )

    @staticmethod
    def feedback_request(o: Outgoing) -> FeedbackRequest:
        """The message a miner gets, alike for every task: the model behind a completion is
        never named, only a label as opaque as the completion's id."""
        return FeedbackRequest(
            request_id=o.request_id,
            prompt=o.prompt,
            task_type=o.task_type,  # type: ignore[arg-type]
            criteria=o.criteria,  # type: ignore[arg-type]
            completions=[
                Completion(completion_id=cid, model=model_label(cid), content=content)  # type: ignore[arg-type]
                for cid, _, content in o.completions
            ],
            expire_at=o.expire_at,
        )

    def _target(self, hotkey: str, uid: int) -> Target | None:
        neuron = self.metagraph.get(hotkey)
        if neuron is None or neuron.uid != uid or neuron.axon is None or not neuron.axon.is_serving:
            return None
        return Target(hotkey=hotkey, url=neuron.axon.url, uid=uid)

    def _reachable(self, items: Sequence[_A]) -> tuple[list[tuple[_A, Target]], list[_A]]:
        """Each item whose miner serves an endpoint at its uid, with that endpoint; and the
        items whose miner does not (it left the subnet or stopped serving)."""
        calls: list[tuple[_A, Target]] = []
        gone: list[_A] = []
        for item in items:
            target = self._target(item.miner_hotkey, item.miner_uid)
            if target is None:
                gone.append(item)
            else:
                calls.append((item, target))
        return calls, gone

    async def send(self, outgoing: list[Outgoing]) -> list[SendOutcome]:
        """Send each assignment its ``FeedbackRequest`` and record every outcome."""
        calls, gone = self._reachable(outgoing)
        unreachable = "the miner no longer serves an endpoint at this uid"
        results = [SendOutcome(o.assignment_id, SendStatus.UNREACHABLE, unreachable) for o in gone]
        requests = [self.feedback_request(o) for o, _ in calls]
        # A miner may retry its worker platform before it answers; a timeout here would
        # leave it a task the validator never collects, so this call is given more time.
        outcomes = await self.client.fanout(
            [t for _, t in calls],
            requests,
            FeedbackReply,
            timeout=FEEDBACK_TIMEOUT_FACTOR * self.config.neuron.timeout,
        )
        failpoint("validator.fanout.after_send")
        for (o, _), outcome in zip(calls, outcomes, strict=True):
            results.append(self._send_outcome(o, outcome))
        await asyncio.to_thread(self.store.record_sends, results, self.clock.now())
        accepted = sum(r.status == SendStatus.ACCEPTED for r in results)
        logger.info("fan-out: {} of {} miners accepted", accepted, len(results))
        return results

    @staticmethod
    def _send_outcome(o: Outgoing, outcome: Outcome[FeedbackReply]) -> SendOutcome:
        if outcome.status is Status.OK and outcome.reply is not None:
            if outcome.reply.request_id != o.request_id:
                return SendOutcome(
                    o.assignment_id,
                    SendStatus.REFUSED,
                    f"reply names request {outcome.reply.request_id}",
                    outcome.http_status,
                )
            return SendOutcome(
                o.assignment_id, SendStatus.ACCEPTED, None, outcome.http_status, outcome.reply.dojo_task_id
            )
        status = _SEND_STATUS.get(outcome.status, SendStatus.REFUSED)
        logger.debug(
            "uid {} refused task {}: {} {}",
            o.miner_uid,
            o.task_id,
            outcome.status.value,
            quoted(outcome.detail),
        )
        return SendOutcome(o.assignment_id, status, _describe(outcome), outcome.http_status)

    # --- collection ---------------------------------------------------------------------

    async def _collection_loop(self) -> None:
        await self._every(self._collection_interval(), "collection", self.collect_due)

    async def collect_due(self) -> int:
        """Ask for the results of every assignment due; returns how many were asked.

        Every outcome of the pass is written in one transaction: nothing is acknowledged to
        the miners here, so a crash before the commit only means asking again.
        """
        now = self.clock.now()
        early = self.config.neuron.collect_at_results > 0
        due = await asyncio.to_thread(self.store.due_collections, now, early=early)
        calls, gone = self._reachable(due)
        # A miner that is gone before the deadline is judged at the deadline.
        left = "the miner left the subnet or stopped serving"
        outcomes = [
            CollectionOutcome(d.assignment_id, CollectStatus.NO_RESULT, left)
            for d in gone
            if now >= d.expire_at
        ]
        if calls:
            requests = [TaskResultRequest(request_id=d.request_id) for d, _ in calls]
            replies = await self.client.fanout([t for _, t in calls], requests, TaskResultReply)
            now = self.clock.now()
            outcomes += [
                self._collection_outcome(d, reply, now) for (d, _), reply in zip(calls, replies, strict=True)
            ]
        await asyncio.to_thread(self.store.record_collections, outcomes, now)
        if outcomes:
            failpoint("validator.collect.after_store")
        await asyncio.to_thread(self.store.settle_due_tasks, self.clock.now())
        return len(due)

    def _collection_outcome(
        self, d: DueCollection, outcome: Outcome[TaskResultReply], now: datetime
    ) -> CollectionOutcome:
        """Checked results, a refusal with its reason, or the next try within the grace."""
        if now < d.expire_at:
            return self._early_outcome(d, outcome, now)
        if outcome.status is Status.OK and outcome.reply is not None:
            try:
                if outcome.reply.request_id != d.request_id:
                    raise ResultsRefused(
                        f"reply names request {outcome.reply.request_id}, not {d.request_id}"
                    )
                accepted = _checked(d, outcome.reply, now)
            except ResultsRefused as exc:
                logger.warning("uid {} task {}: results refused: {}", d.miner_uid, d.task_id, quoted(exc))
                return CollectionOutcome(d.assignment_id, CollectStatus.INVALID, str(exc))
            logger.info("uid {} task {}: {} results", d.miner_uid, d.task_id, len(accepted))
            if not accepted:
                return CollectionOutcome(
                    d.assignment_id, CollectStatus.NO_RESULT, "the miner returned no results"
                )
            return CollectionOutcome(d.assignment_id, CollectStatus.COLLECTED, None, tuple(accepted))
        detail = _describe(outcome)
        transient = _transient(outcome)
        delay = COLLECT_BACKOFF.delay(d.attempts, self._rng)
        give_up_at = d.expire_at + timedelta(seconds=self.config.neuron.collection_grace)
        if transient and now < give_up_at:
            # The last try comes at the end of the grace, however far the backoff has grown.
            next_at = min(now + timedelta(seconds=delay), give_up_at)
            logger.debug(
                "uid {} task {}: collection failed ({}); again at {}",
                d.miner_uid,
                d.task_id,
                quoted(detail),
                next_at.isoformat(),
            )
            return CollectionOutcome(d.assignment_id, CollectStatus.PENDING, detail, retry_at=next_at)
        if transient:
            detail = f"no answer within the collection grace; last: {detail}"
        if outcome.status is Status.TOO_LARGE:
            # Not retried: a reply over its cap (or in a coding not asked for) is the miner's doing.
            logger.warning("uid {} task {}: reply refused ({})", d.miner_uid, d.task_id, quoted(detail))
        else:
            logger.info("uid {} task {}: no result ({})", d.miner_uid, d.task_id, quoted(detail))
        return CollectionOutcome(d.assignment_id, CollectStatus.NO_RESULT, detail)

    def _early_outcome(
        self, d: DueCollection, outcome: Outcome[TaskResultReply], now: datetime
    ) -> CollectionOutcome:
        """Before the deadline: the results, if they are sound and from as many workers as
        ``--neuron.collect_at_results``; otherwise another look in EARLY_LOOK_INTERVAL
        seconds (whatever went wrong is judged at the deadline, not now)."""
        wanted = self.config.neuron.collect_at_results
        if (
            outcome.status is Status.OK
            and outcome.reply is not None
            and outcome.reply.request_id == d.request_id
        ):
            try:
                accepted = _checked(d, outcome.reply, now)
            except ResultsRefused:
                accepted = []
            if len({r.worker_id for r in accepted}) >= wanted:
                logger.info(
                    "uid {} task {}: {} results, every place filled; collected before the deadline",
                    d.miner_uid,
                    d.task_id,
                    len(accepted),
                )
                return CollectionOutcome(d.assignment_id, CollectStatus.COLLECTED, None, tuple(accepted))
        next_at = min(now + timedelta(seconds=EARLY_LOOK_INTERVAL), d.expire_at)
        return CollectionOutcome(d.assignment_id, CollectStatus.PENDING, None, retry_at=next_at, early=True)

    def _collection_interval(self) -> float:
        return max(0.5, min(5.0, self.config.neuron.task_deadline / 10))

    # --- scoring ------------------------------------------------------------------------

    async def _scoring_loop(self) -> None:
        interval = self.config.neuron.scoring_interval
        await self._every(interval, "scoring round", self.scoring_round, first=min(interval, 1.0))

    async def scoring_round(self) -> int | None:
        """Score one round (a round left unfinished by a crash first); returns its id."""
        round_id = await asyncio.to_thread(self.store.unfinished_round)
        if round_id is None:
            round_id = await asyncio.to_thread(self.store.open_round, MAX_ROUND_TASKS, self.clock.now())
        if round_id is not None:
            inputs = await asyncio.to_thread(self.store.round_inputs, round_id)
            scores = await asyncio.to_thread(score_inputs, inputs)
            failpoint("validator.scoring.before_commit")
            uid_to_hotkey = {n.uid: n.hotkey for n in self.metagraph.neurons}
            committed = await asyncio.to_thread(
                self.store.commit_round,
                scores,
                self.config.neuron.moving_average_alpha,
                uid_to_hotkey,
                self.clock.now(),
            )
            failpoint("validator.scoring.after_commit")
            if committed:
                logger.info(
                    "round {} scored: {} tasks, {} miners: {}",
                    round_id,
                    len(inputs.tasks),
                    len(scores.miner_round_scores),
                    {h[:8]: round(s, 3) for h, (_, s) in scores.miner_round_scores.items()},
                )
                if not self.config.wandb.off:
                    await self._log_round(round_id, inputs.tasks, scores)
        return round_id

    async def _log_round(self, round_id: int, tasks: list[RoundTask], scores: RoundScores) -> None:
        status = await asyncio.to_thread(self.store.status)
        agreements = [a for a, _ in scores.task_agreement.values()]
        self.wandb.log_round(
            round_id,
            {
                "tasks_in_round": len(tasks),
                "mean_task_agreement": sum(agreements) / len(agreements) if agreements else 0.0,
                # Running totals of the task database at this round, not counts of the round.
                "total_tasks_created": status["tasks"]["total"],
                "total_tasks_collected": status["tasks"]["collected"] + status["tasks"]["scored"],
                "total_tasks_scored": status["tasks"]["scored"],
            },
            [s for _, s in scores.miner_round_scores.values()],
        )

    async def _score_delivery_loop(self) -> None:
        await self._every(
            max(1.0, self.config.neuron.scoring_interval / 2), "score delivery", self.send_scores
        )

    async def send_scores(self) -> None:
        """Tell each miner its own score for each request, once it is scored."""
        since = self.clock.now() - timedelta(seconds=max(self.config.neuron.collection_grace, 600.0))
        pending = await asyncio.to_thread(self.store.scores_to_send, since)
        calls = [(p, t) for p in pending if (t := self._target(p.miner_hotkey, p.miner_uid)) is not None]
        if not calls:
            return
        requests = [
            ScoringResult(request_id=p.request_id, hotkey=p.miner_hotkey, score=p.score) for p, _ in calls
        ]
        outcomes = await self.client.fanout([t for _, t in calls], requests, Ack)
        delivered = [p.assignment_id for (p, _), o in zip(calls, outcomes, strict=True) if o.ok]
        await asyncio.to_thread(self.store.mark_scores_sent, delivered, self.clock.now())
        logger.debug("scores delivered: {} of {}", len(delivered), len(calls))

    # --- weights ------------------------------------------------------------------------

    async def on_resync(self, metagraph: Metagraph) -> None:
        uid_to_hotkey = {n.uid: n.hotkey for n in metagraph.neurons}
        dropped = await asyncio.to_thread(
            self.store.sync_miners, uid_to_hotkey, self.config.neuron.moving_average_alpha, self.clock.now()
        )
        if dropped:
            logger.info("moving scores reset for {} hotkeys no longer at their uid", len(dropped))

    async def _weights_loop(self) -> None:
        await self._every(max(1.0, self.block_poll_interval), "weights", self.maybe_set_weights, first=1.0)

    async def maybe_set_weights(self) -> bool:
        """Set weights when an epoch has passed since the last weights the chain took."""
        block = await asyncio.to_thread(self.chain.block)
        hyper = await asyncio.to_thread(self.chain.hyperparameters)
        last = await asyncio.to_thread(self.store.last_weights_block)
        every = max(self.config.neuron.epoch_length, hyper.weights.weights_rate_limit)
        if last is not None and block - last < every:
            return False
        # A refused or failed attempt is not repeated every poll: wait a tenth of an epoch.
        if self._last_weights_attempt is not None and block - self._last_weights_attempt < max(
            1, every // 10
        ):
            return False
        moving = await asyncio.to_thread(self.store.moving_scores, self.config.neuron.moving_average_alpha)
        metagraph = await asyncio.to_thread(self.chain.metagraph)
        moving.sync({n.uid: n.hotkey for n in metagraph.neurons})
        uids, weights = moving.weights(metagraph.n, hyper.weights)
        if not uids:
            # Polled every block: said when it becomes true, then once an epoch.
            since = self._no_scores_logged_at
            if since is None or block - since >= self.config.neuron.epoch_length:
                logger.debug("no scores yet; no weights to set")
                self._no_scores_logged_at = block
            return False
        self._no_scores_logged_at = None
        by_uid = {n.uid: n.hotkey for n in metagraph.neurons}
        hotkeys = [by_uid.get(u, "") for u in uids]
        version_key = spec_version()
        attempted_at = self.clock.now()
        self._last_weights_attempt = block
        outcome, detail, attempts = "failed", None, 0
        try:
            check_weights(
                uids,
                weights,
                n_neurons=metagraph.n,
                own_uid=self.uid,
                rules=hyper.weights,
                version_key=version_key,
            )
        except WeightsRejected as exc:
            outcome, detail = "rejected", str(exc)
        else:
            for attempts in range(1, WEIGHTS_RETRY.attempts + 1):
                try:
                    await asyncio.to_thread(self.chain.set_weights, self.wallet, uids, weights, version_key)
                except WeightsRejected as exc:
                    outcome, detail = "rejected", str(exc)
                    break
                except Exception as exc:  # the chain's fault (node down, timeout): again while transient
                    outcome, detail = "failed", f"{type(exc).__name__}: {exc}"
                    logger.warning("set_weights attempt {} failed: {}", attempts, detail)
                    if not is_transient(exc) or attempts == WEIGHTS_RETRY.attempts:
                        break
                    await self._sleep(WEIGHTS_RETRY.delay(attempts - 1, self._rng))
                    if self.stop_event.is_set():
                        break
                else:
                    outcome, detail = "set", None
                    break
        await asyncio.to_thread(
            self.store.record_weights,
            attempted_at=attempted_at,
            block=block,
            uids=uids,
            weights=weights,
            hotkeys=hotkeys,
            version_key=version_key,
            outcome=outcome,
            detail=detail,
            attempts=max(attempts, 1),
        )
        self.wandb.log_weights(block, uids, weights, outcome)
        if outcome == "set":
            logger.info("weights set at block {}: {}", block, dict(zip(uids, weights, strict=True)))
        else:
            logger.warning("weights not set at block {}: {}", block, detail)
        return outcome == "set"

    # --- dataset export -------------------------------------------------------------------

    @property
    def export_dir(self) -> Path:
        setting = self.config.export.dir
        return Path(setting).expanduser() if setting else self.config.data_dir / "export"

    async def _export_loop(self) -> None:
        interval = self.config.export.interval
        # Due an interval after the export `latest` names, so that restarts do not export
        # every time; the first ever waits a little, past the start-up.
        assert self.dataset_export is not None  # __init__ refuses an interval without it
        last = await asyncio.to_thread(self.dataset_export.latest, self.export_dir)
        first = (
            min(interval, EXPORT_FIRST_DELAY)
            if last is None
            else max(0.0, interval - (self.clock.now() - last).total_seconds())
        )
        await self._every(interval, "dataset export", self.export_dataset, first=first)

    async def export_dataset(self) -> Path:
        """Export the task database to a new dated folder, point ``latest`` at it (in a
        thread: it reads the whole database), and log it to wandb; returns the folder."""
        if self.dataset_export is None:
            raise RuntimeError("no dataset export was handed to this validator")
        summary = await asyncio.to_thread(
            self.dataset_export.export, self.store.url, self.export_dir, self.config.export.keep
        )
        logger.info(
            "dataset exported to {}: {} tasks, {} preference pairs, in {:.1f}s",
            summary.out,
            summary.tasks,
            summary.preferences,
            summary.seconds,
        )
        self.wandb.log_artifact(
            summary.out,
            "dojo-dataset",
            {
                "tasks": summary.tasks,
                "preferences": summary.preferences,
                "exported_at": summary.exported_at_iso,
                "format": summary.format,
                "min_agreement": summary.min_agreement,
            },
        )
        return summary.out

    async def shutdown(self) -> None:
        if self.organic is not None:
            await asyncio.to_thread(self.organic.stop)
        await self.client.close()
        if self._source is not None:
            await self._source.aclose()
        await asyncio.to_thread(self.wandb.close, 10.0)
        self.store.close()


def model_label(miner_completion_id: str) -> str:
    """The label a miner sees for a completion's model: derived from the id it sees, so it
    says nothing the id does not (and is the same when a restart sends the task again)."""
    return "model-" + hashlib.blake2b(miner_completion_id.encode(), digest_size=4).hexdigest()


def _re_ranked(truth: dict[str, int]) -> dict[str, int]:
    """Ranks 1..n of the completions kept, in their true order."""
    return {cid: i for i, cid in enumerate(sorted(truth, key=lambda c: truth[c]), start=1)}


def sendable(content: Content) -> Content:
    """``content`` fit to send: an image decoded in full and written anew in its own format,
    so that whatever metadata the file carried (EXIF, XMP, ICC, text chunks) stays here;
    other kinds as they are. Raises :class:`~commons.media.ImageRefused` for an image that
    does not decode."""
    if not isinstance(content, ImageContent):
        return content
    info, data = reencode(content.image_bytes(), content.media_type)
    return ImageContent(
        media_type=info.media_type,
        data=b64encode(data),
        width=info.width,
        height=info.height,
        alt=content.alt,
    )


def _obfuscated(content: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Code obfuscated as the synthetic pipeline obfuscates it (renaming, then without when
    the code does not survive it); an image written anew (:func:`sendable`); other kinds as
    they are."""
    if content.get("kind") == "image":
        try:
            return sendable(ImageContent.model_validate(content)).model_dump(mode="json")
        except (ImageRefused, ValueError) as exc:
            logger.warning("an organic image was sent as it came: it does not decode ({})", exc)
            return content
    if content.get("kind") != "code":
        return content
    from commons.obfuscation import ObfuscationError, obfuscate_files
    from commons.protocol import CodeFile

    files = [CodeFile.model_validate(f) for f in content["files"]]
    for rename in (True, False):
        try:
            return {**content, "files": [f.model_dump() for f in obfuscate_files(files, rng, rename=rename)]}
        except (ObfuscationError, ValueError, RecursionError) as exc:
            logger.debug("organic code not obfuscated (rename={}): {}", rename, exc)
    return content


def _checked(d: DueCollection, reply: TaskResultReply, now: datetime) -> list[AcceptedResult]:
    """The results of ``reply`` checked against what assignment ``d`` sent (raises
    :class:`ResultsRefused`)."""
    return check_results(
        reply.results, completion_ids=d.completion_ids, criteria=d.criteria, sent_at=d.sent_at, now=now
    )


def _transient(outcome: Outcome[Any]) -> bool:
    """Worth asking the miner again: no answer (timed out, refused) or a status
    :func:`commons.retry.is_transient` calls transient; a reply whose body did not parse
    too, as a miner restarting mid-reply sends one. A reply over its cap is not: it is the
    miner's doing, and asking again only invites the next one."""
    if outcome.status is Status.TOO_LARGE:
        return False
    if outcome.status in (Status.TIMEOUT, Status.REFUSED, Status.INVALID_REPLY):
        return True
    return outcome.http_status is not None and is_transient(outcome.http_status)


def _describe(outcome: Outcome[Any]) -> str:
    """``server_error 503: worker platform unavailable``: what a failed call is stored as."""
    code = f" {outcome.http_status}" if outcome.http_status else ""
    return f"{outcome.status.value}{code}: {outcome.detail}"[:2000]
