"""A model-based test of batches against a real server (hypothesis ``RuleBasedStateMachine``).

Rules create batches (some inside another's open block: children), open and close more blocks (the
creating one may raise), push jobs into open blocks, fetch them into two simulated workers (the real
``ReliableFetch`` and ``Runner``), run them to success, a failure (retried later) or a death, kill a worker
and recover its jobs (the old process may still finish its copy), send an acknowledgement twice (a lost
reply), promote retries and retry dead jobs from the dashboard. A pure model says what each batch holds;
after every step the invariants compare it with Redis:

- each callback (complete, success, death) was pushed at most once, and exactly when the model says the
  batch reached its event;
- each batch's pending, failed and dead counts, and its open blocks, are the model's;
- success never comes before complete, and never to a batch whose creating block raised.

``WORKERKIT_MODEL_EXAMPLES`` and ``WORKERKIT_MODEL_STEPS`` make the run longer.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from workerkit import Batch, Job, config
from workerkit.api import Api
from workerkit.batch_scope import fill
from workerkit.fetch import QueueSpec, ReliableFetch, UnitOfWork
from workerkit.keys import Keys
from workerkit.lifecycle import Outcome
from workerkit.runner import Runner
from workerkit.scheduler import Scheduler
from workerkit.sets import JobSet

KEYS = Keys()
FAILS: set[str] = set()
"""Jids whose next run fails (the rule that runs a job decides)."""


class Step(Job):
    retry = 1000

    def perform(self, n: int) -> None:
        if self.jid in FAILS:
            raise RuntimeError(f"model failure of step {n}")


class Mortal(Job):
    retry = 0  # a failure buries it

    def perform(self, n: int) -> None:
        if self.jid in FAILS:
            raise RuntimeError(f"model death of step {n}")


class Signal(Job):
    """A batch callback: pushed to its own queue, which no model worker takes from."""

    queue = "callbacks"

    def perform(self) -> None:
        """Never run here: the invariants count the pushes."""


@dataclass
class ModelBatch:
    batch: Batch
    parent: str | None
    members: list[str] = field(default_factory=list)
    """Jids and b:<bid> of children, as they joined."""
    blocks: int = 1
    broken: bool = False
    fired: set[str] = field(default_factory=set)
    """Events the model says were reached (each only once)."""


@dataclass
class ModelJob:
    jid: str
    bid: str
    mortal: bool
    place: str = "queue"
    """queue, inflight, acked (run, its acknowledgement not flushed), retry, dead, done."""
    worker: int | None = None
    failed_once: bool = False
    died_once: bool = False


class BatchMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = redis.Redis.from_url(self.url)
        self.conn.flushdb()
        config.reset()
        config.configure(redis_url=self.url)
        FAILS.clear()
        self.batches: dict[str, ModelBatch] = {}
        self.jobs: dict[str, ModelJob] = {}
        self.workers = [self._worker(n) for n in range(2)]
        self.held: list[list[UnitOfWork]] = [[], []]
        self.zombies: list[UnitOfWork] = []
        """Units of killed workers whose process runs on (their acknowledgement finds nothing)."""
        self.last_acks: list[tuple[int, bytes, str, str]] = []
        self.next_job = 0
        self.scheduler = Scheduler(self.conn, KEYS)

    def _worker(self, number: int) -> tuple[ReliableFetch, Runner]:
        return ReliableFetch(self.conn, KEYS, f"model:{number}:{time.monotonic_ns()}", [QueueSpec("default")]), \
            Runner(threading.Event())

    def teardown(self) -> None:
        self.conn.close()
        config.reset()

    # The model's view ----------------------------------------------------------------------------
    def _succeeded(self, member: str) -> bool:
        if member.startswith("b:"):
            return "success" in self.batches[member[2:]].fired
        return self.jobs[member].place == "done"

    def _ran(self, member: str) -> bool:
        """A pending member that counts as run for its batch's completion (failed at least once)."""
        if member.startswith("b:"):
            child = self.batches[member[2:]]
            return "complete" in child.fired and ("success" not in child.fired)
        return self.jobs[member].failed_once

    def _settle_events(self) -> None:
        """Mark what each batch reached, children first (a child's events feed its parent's)."""
        changed = True
        while changed:
            changed = False
            for model in self.batches.values():
                before = set(model.fired)
                if any(self.jobs[m].died_once for m in model.members if not m.startswith("b:")) or any(
                        "death" in self.batches[m[2:]].fired for m in model.members if m.startswith("b:")):
                    model.fired.add("death")
                pending = [m for m in model.members if not self._succeeded(m)]
                if model.blocks == 0 and all(self._ran(m) for m in pending):
                    model.fired.add("complete")
                    if not pending and not model.broken:
                        model.fired.add("success")
                changed |= model.fired != before

    def _open(self) -> list[str]:
        return [bid for bid, model in self.batches.items() if model.blocks > 0]  # in creation order: bids are random

    # Rules: batches ------------------------------------------------------------------------------
    @precondition(lambda self: len(self.batches) < 6)
    @rule(nested=st.booleans(), pick=st.integers(0, 10))
    def create(self, nested: bool, pick: int) -> None:
        open_ = self._open()
        parent = open_[pick % len(open_)] if nested and open_ else None
        batch = Batch("model", on_complete=Signal, on_success=Signal, on_death=Signal)
        with fill(parent):
            assert batch._open()
        self.batches[batch.bid] = ModelBatch(batch, parent)
        if parent is not None:
            self.batches[parent].members.append(f"b:{batch.bid}")

    @precondition(lambda self: self.batches)
    @rule(pick=st.integers(0, 10))
    def reopen(self, pick: int) -> None:
        bid = list(self.batches)[pick % len(self.batches)]
        model = self.batches[bid]
        try:
            Batch.find(bid)._open()
        except Exception as exc:
            assert "success" in model.fired, f"{bid} refused a block: {exc}"
            return
        assert "success" not in model.fired, f"{bid} succeeded, yet took a block"
        model.blocks += 1

    @precondition(lambda self: self._open())
    @rule(pick=st.integers(0, 10), raised=st.booleans())
    def close(self, pick: int, raised: bool) -> None:
        open_ = self._open()
        bid = open_[pick % len(open_)]
        model = self.batches[bid]
        error = "RuntimeError: model" if raised else ""
        model.batch._close(error)
        model.blocks -= 1
        model.broken |= raised

    @precondition(lambda self: self._open())
    @rule(pick=st.integers(0, 10), count=st.integers(1, 3), mortal=st.booleans())
    def push(self, pick: int, count: int, mortal: bool) -> None:
        open_ = self._open()
        bid = open_[pick % len(open_)]
        with fill(bid):
            for _ in range(count):
                jid = (Mortal if mortal else Step).perform_async(self.next_job)
                assert jid is not None
                self.next_job += 1
                self.jobs[jid] = ModelJob(jid, bid, mortal)
                self.batches[bid].members.append(jid)

    # Rules: workers ------------------------------------------------------------------------------
    def _flushed(self, worker: int) -> None:
        """The worker's acknowledgements reached Redis."""
        for model in self.jobs.values():
            if model.place == "acked" and model.worker == worker:
                model.place = "done"

    @rule(worker=st.integers(0, 1), count=st.integers(1, 3))
    def fetch(self, worker: int, count: int) -> None:
        fetch, _ = self.workers[worker]
        self.last_acks = list(fetch._batch_acks)
        units = fetch.fetch(count)
        self._flushed(worker)
        for unit in units:
            model = self.jobs[unit.payload()["jid"]]
            model.place, model.worker = "inflight", worker
            self.held[worker].append(unit)

    @precondition(lambda self: any(self.held))
    @rule(worker=st.integers(0, 1), outcome=st.sampled_from(["ok", "fail"]))
    def run(self, worker: int, outcome: str) -> None:
        if not self.held[worker]:
            return
        unit = self.held[worker].pop(0)
        _, runner = self.workers[worker]
        model = self.jobs[unit.payload()["jid"]]
        if outcome == "fail":
            FAILS.add(model.jid)
        else:
            FAILS.discard(model.jid)
        result = runner.process(unit)
        if outcome == "ok":
            assert result is Outcome.DONE
            model.place = "acked"  # acknowledged with this worker's next fetch
        else:
            assert result is (Outcome.DEAD if model.mortal else Outcome.RETRY)
            model.failed_once = True
            model.died_once |= model.mortal
            model.place = "dead" if model.mortal else "retry"

    @precondition(lambda self: any(self.held))
    @rule(worker=st.integers(0, 1))
    def flush(self, worker: int) -> None:
        fetch, _ = self.workers[worker]
        self.last_acks = list(fetch._batch_acks)
        fetch.fetch(0)
        self._flushed(worker)

    @rule()
    def lost_reply(self) -> None:
        """The last acknowledgements again, as a fetch retried after its reply was lost."""
        fetch, _ = self.workers[0]
        fetch.lifecycle.fetch(fetch.queue_keys, fetch.inflight_keys, ["{}"], [0], 0, [], time.time(), None,
                              self.last_acks)

    @precondition(lambda self: any(self.held))
    @rule(worker=st.integers(0, 1))
    def kill_and_recover(self, worker: int) -> None:
        fetch, _ = self.workers[worker]
        fetch.fetch(0)  # what it acknowledged had reached Redis; the rest is recovered
        self._flushed(worker)
        for inflight in fetch.inflight_keys:
            fetch.lifecycle.requeue_all(inflight, "default")
        for unit in self.held[worker]:
            self.jobs[unit.payload()["jid"]].place = "queue"
        self.zombies += self.held[worker]
        self.held[worker] = []
        self.workers[worker] = self._worker(worker)

    @precondition(lambda self: self.zombies)
    @rule()
    def zombie_finishes(self) -> None:
        """A killed worker's copy ends anyway: its acknowledgement finds nothing to remove."""
        unit = self.zombies.pop(0)
        unit.fetcher.ack(unit)
        unit.fetcher.fetch(0)

    @rule()
    def promote_retries(self) -> None:
        self.scheduler.promote_due(time.time() + 10**9)
        for model in self.jobs.values():
            if model.place == "retry":
                model.place = "queue"

    @rule(pick=st.integers(0, 10))
    def retry_dead_from_dashboard(self, pick: int) -> None:
        dead = [jid for jid, model in self.jobs.items() if model.place == "dead"]
        if not dead:
            return
        jid = dead[pick % len(dead)]
        dead_set = Api(self.conn, KEYS).sorted_set(JobSet.DEAD)
        [entry] = [entry for entry in dead_set.matching() if entry.jid == jid]
        assert dead_set.retry([entry]) == 1
        self.jobs[jid].place = "queue"

    # Invariants ----------------------------------------------------------------------------------
    @invariant()
    def callbacks_are_pushed_exactly_when_reached(self) -> None:
        self._settle_events()
        pushed: Counter[tuple[str, str]] = Counter()
        for raw in self.conn.lrange("queue:callbacks", 0, -1):
            entry = json.loads(raw)["batch_callback"]
            pushed[(entry["bid"], entry["event"])] += 1
        assert max(pushed.values(), default=0) <= 1, pushed
        expected = {(bid, event) for bid, model in self.batches.items() for event in model.fired}
        assert set(pushed) == expected

    @invariant()
    def counts_match(self) -> None:
        for bid, model in self.batches.items():
            status = model.batch.status()
            pending = [m for m in model.members if not self._succeeded(m)]
            assert status.pending == len(pending), (bid, status, pending)
            assert status.failed == sum(self._ran(m) for m in pending), (bid, status)
            assert status.dead == sum(1 for m in pending if not m.startswith("b:") and self.jobs[m].died_once)
            assert status.open_blocks == model.blocks and status.total == len(model.members)
            assert status.succeeded == ("success" in model.fired) and status.complete == ("complete" in model.fired)


def test_batches_push_each_callback_once_when_reached(redis_url: str) -> None:
    BatchMachine.url = redis_url
    run_state_machine_as_test(BatchMachine, settings=settings(
        max_examples=int(os.environ.get("WORKERKIT_MODEL_EXAMPLES", 60)),
        stateful_step_count=int(os.environ.get("WORKERKIT_MODEL_STEPS", 40)),
        deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=bool(os.environ.get("CI")),
    ))
