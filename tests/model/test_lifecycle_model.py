"""A model-based test of the job lifecycle against a real server (hypothesis ``RuleBasedStateMachine``).

Rules push and schedule jobs (some already expired), fetch them into simulated worker processes (the real
``ReliableFetch``, the real ``Runner``, the real ``Heartbeat`` and ``Sweeper``), run them to success,
failure, a rate limiter's refusal (deferred to the schedule, twice, then a failure) or a cancellation,
cancel waiting jobs (``workerkit.cancel``), kill a process
(its heartbeat vanishes), let a heartbeat lapse and come back, sweep, lose a reply in the middle of a call
(the call landed, the caller never heard), and make the dashboard's moves. A pure model says where each
job must be; after every step the invariants compare it with Redis:

- each pushed jid is in exactly one place (a queue, the schedule, retry or dead set, the in-flight list of
  a listed process), or done (acknowledged, discarded or deleted) and nowhere;
- nothing sits in an in-flight list that the registry does not list;
- ``retry_count`` grew by exactly one per recorded failure; error handlers ran once per failure and death
  handlers once per burial;
- ``stat:processed`` and ``stat:failed`` count each settled job once; deferrals count in neither;
  ``stat:expired`` and ``stat:cancelled`` count each dropped job once.

``WORKERKIT_MODEL_EXAMPLES`` and ``WORKERKIT_MODEL_STEPS`` make the run longer (``bench/lifecycle_model.py``).
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

from workerkit import Cancelled, Job, cancel, config, failure
from workerkit.api import Api
from workerkit.fetch import QueueSpec, ReliableFetch, UnitOfWork
from workerkit.heartbeat import Heartbeat, ProcessInfo
from workerkit.keys import Keys
from workerkit.lifecycle import Outcome
from workerkit.limiter import OverLimit
from workerkit.recovery import POISON_PILL_RECOVERIES, Sweeper
from workerkit.runner import Runner
from workerkit.scheduler import Scheduler
from workerkit.sets import JobSet

KEYS = Keys()
RETRIES = 2
"""ModelJob's retry limit: its third failure buries it."""
FAR_FUTURE = 10**9
SUCCEED: dict[str, str] = {}
"""What ModelJob does when it runs, by jid (set by the rule that runs it): succeed, fail, over_limit, cancel."""
DEFERRALS = 2
"""ModelJob's limiter defers it this many times, then the next refusal fails it."""
ERRORS: Counter[str] = Counter()
DEATHS: Counter[str] = Counter()


class ModelJob(Job):
    """Succeeds or fails as the model tells it."""

    retry = RETRIES

    def perform(self, n: int) -> None:
        behaviour = SUCCEED[self.jid]
        if behaviour == "fail":
            raise RuntimeError(f"model failure of job {n}")
        if behaviour == "over_limit":
            raise OverLimit("model", "concurrent", 0.0, DEFERRALS)
        if behaviour == "cancel":
            raise Cancelled()


@dataclass
class Where:
    """Where the model says a job is."""

    place: str
    """queue, schedule, retry, dead, inflight, acked (in flight, acknowledgement not flushed), gone."""
    worker: int | None = None


@dataclass
class ModelWorker:
    """One simulated worker process: the real fetch, runner and heartbeat, driven step by step."""

    number: int
    fetch: ReliableFetch
    runner: Runner
    heartbeat: Heartbeat
    units: list[UnitOfWork] = field(default_factory=list)
    lapsed: bool = False

    @property
    def identity(self) -> str:
        return self.fetch.identity


class LifecycleMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = redis.Redis.from_url(self.url)
        self.conn.flushdb()
        config.reset()
        config.configure(redis_url=self.url, error_handlers=[lambda exc, payload: ERRORS.update([payload["jid"]])],
                         death_handlers=[lambda payload, exc: DEATHS.update([payload["jid"]])])
        SUCCEED.clear()
        ERRORS.clear()
        DEATHS.clear()
        self.where: dict[str, Where] = {}
        self.errors: Counter[str] = Counter()
        """Failures of each job's runs, held or not (each runs the error handlers once)."""
        self.recorded: Counter[str] = Counter()
        """Failures recorded in each job's stored payload (retry_count is this minus one, less dashboard retries)."""
        self.retried_now: Counter[str] = Counter()
        self.recovered: Counter[str] = Counter()
        self.buried: Counter[str] = Counter()
        self.deferred: Counter[str] = Counter()
        self.expired: set[str] = set()
        """Jobs pushed with their expiry already past: a worker drops them unrun."""
        self.processed = 0
        self.failed = 0
        self.dropped = {"expired": 0, "cancelled": 0}
        self.workers: dict[int, ModelWorker] = {}
        self.next_worker = 0
        self.next_job = 0
        self.api = Api(self.conn, KEYS)
        self.scheduler = Scheduler(self.conn, KEYS)
        self.sweeper = Sweeper(self.conn, KEYS, interval=0.001)

    def teardown(self) -> None:
        self.conn.close()
        config.reset()

    # Helpers ------------------------------------------------------------------------------------
    def _jids(self, place: str) -> list[str]:
        return [jid for jid, where in self.where.items() if where.place == place]  # push order: jids are random

    def _held_by(self, worker: ModelWorker) -> list[str]:
        return [jid for jid, where in self.where.items()
                if where.place in ("inflight", "acked") and where.worker == worker.number]

    def _valid(self, worker: ModelWorker, unit: UnitOfWork) -> bool:
        """Whether the unit's copy is still in the worker's in-flight list (nobody recovered it)."""
        where = self.where[unit.payload()["jid"]]
        return where.place == "inflight" and where.worker == worker.number and getattr(unit, "copy", 0) == \
            self.recovered[unit.payload()["jid"]]

    def _take(self, worker: ModelWorker, units: list[UnitOfWork]) -> None:
        for unit in units:
            jid = unit.payload()["jid"]
            assert self.where[jid].place == "queue", f"{jid} fetched from {self.where[jid]}"
            self.where[jid] = Where("inflight", worker.number)
            unit.copy = self.recovered[jid]  # type: ignore[attr-defined]
            worker.units.append(unit)

    def _flush_acks(self, worker: ModelWorker) -> None:
        for jid in self._held_by(worker):
            if self.where[jid].place == "acked":
                self.where[jid] = Where("gone")
                self.processed += 1

    # Rules: clients -----------------------------------------------------------------------------
    @rule(count=st.integers(1, 3))
    def push(self, count: int) -> None:
        for _ in range(count):
            jid = ModelJob.perform_async(self.next_job)
            self.next_job += 1
            self.where[jid] = Where("queue")

    @rule()
    def push_expired(self) -> None:
        jid = ModelJob.set(expires_at=time.time() - 1).perform_async(self.next_job)
        assert jid is not None
        self.next_job += 1
        self.where[jid] = Where("queue")
        self.expired.add(jid)

    @rule(pick=st.integers(0, 10))
    def cancel_waiting(self, pick: int) -> None:
        waiting = self._jids("queue") + self._jids("schedule") + self._jids("retry")
        if not waiting:
            return
        jid = waiting[pick % len(waiting)]
        place = self.where[jid].place
        assert cancel(jid) == {"queue": "queued", "schedule": "scheduled", "retry": "retrying"}[place]
        self.where[jid] = Where("gone")

    @rule()
    def schedule(self) -> None:
        jid = ModelJob.perform_in(3600, self.next_job)
        self.next_job += 1
        self.where[jid] = Where("schedule")

    @rule()
    def promote_everything(self) -> None:
        """The poller, at a time when every scheduled job and retry is due."""
        moved = self.scheduler.promote_due(time.time() + FAR_FUTURE)
        due = self._jids("schedule") + self._jids("retry")
        assert moved == len(due)
        for jid in due:
            self.where[jid] = Where("queue")

    # Rules: workers -----------------------------------------------------------------------------
    @precondition(lambda self: len(self.workers) < 3)
    @rule()
    def start_worker(self) -> None:
        number = self.next_worker
        self.next_worker += 1
        identity = f"model:{number}:000000"
        fetch = ReliableFetch(self.conn, KEYS, identity, [QueueSpec("default")])
        heartbeat = Heartbeat(self.conn, KEYS, ProcessInfo(identity, ["default"], 1), running=dict,
                              inflight_lists=fetch.registry_entries(), quiet=lambda: False, on_signal=print,
                              interval=3600)
        heartbeat.beat()
        self.workers[number] = ModelWorker(number, fetch, Runner(threading.Event()), heartbeat)

    workers_st = st.integers(0, 2)

    def _worker(self, index: int) -> ModelWorker | None:
        live = sorted(self.workers)
        return self.workers[live[index % len(live)]] if live else None

    @precondition(lambda self: self.workers)
    @rule(index=workers_st, count=st.integers(0, 3))
    def fetch(self, index: int, count: int) -> None:
        worker = self._worker(index)
        assert worker is not None
        units = worker.fetch.fetch(count)
        self._flush_acks(worker)
        assert len(units) == min(count, len(self._jids("queue")))
        self._take(worker, units)

    @precondition(lambda self: self.workers)
    @rule(index=workers_st)
    def catch(self, index: int) -> None:
        """An idle thread's BLMOVE, registering again as the worker does when its heartbeat may have lapsed."""
        worker = self._worker(index)
        assert worker is not None
        unit = worker.fetch.wait_for_job(0, 0.01, register=worker.lapsed)
        assert (unit is None) == (not self._jids("queue"))
        if unit is not None:
            self._take(worker, [unit])

    @precondition(lambda self: any(worker.units for worker in self.workers.values()))
    @rule(index=workers_st, pick=st.integers(0, 10),
          behaviour=st.sampled_from(["succeed", "fail", "over_limit", "cancel"]))
    def run(self, index: int, pick: int, behaviour: str) -> None:
        worker = self._worker(index)
        assert worker is not None
        if not worker.units:
            return
        unit = worker.units.pop(pick % len(worker.units))
        jid = unit.payload()["jid"]
        valid = self._valid(worker, unit)
        SUCCEED[jid] = behaviour
        outcome = worker.runner.process(unit)
        if jid in self.expired:  # dropped unrun, whatever it would have done
            assert outcome is (Outcome.EXPIRED if valid else None)
            self._dropped(jid, valid, "expired")
            return
        if behaviour == "succeed":
            assert outcome is Outcome.DONE
            if valid:
                self.where[jid] = Where("acked", worker.number)
            return
        if behaviour == "cancel":
            assert outcome is (Outcome.CANCELLED if valid else None)
            self._dropped(jid, valid, "cancelled")
            return
        if behaviour == "over_limit" and self.deferred[jid] < DEFERRALS:
            assert outcome is (Outcome.DEFERRED if valid else None)
            if valid:
                self.deferred[jid] += 1
                self.where[jid] = Where("schedule")
            return
        self.errors[jid] += 1  # the handlers run, held or not
        if not valid:
            assert outcome is None  # not held any more: nothing is written
            return
        self.recorded[jid] += 1
        self.failed += 1
        self.processed += 1
        count = self.recorded[jid] - 1 - self.retried_now[jid]
        if count < RETRIES:
            assert outcome is Outcome.RETRY
            self.where[jid] = Where("retry")
        else:
            assert outcome is Outcome.DEAD
            self.where[jid] = Where("dead")
            self.buried[jid] += 1

    def _dropped(self, jid: str, valid: bool, counter: str) -> None:
        if valid:
            self.where[jid] = Where("gone")
            self.dropped[counter] += 1

    @precondition(lambda self: self.workers)
    @rule(index=workers_st)
    def kill(self, index: int) -> None:
        """kill -9: the process and its heartbeat vanish; what it held stays in its in-flight list."""
        worker = self._worker(index)
        assert worker is not None
        self.conn.delete(KEYS.process(worker.identity))
        del self.workers[worker.number]

    @precondition(lambda self: self.workers)
    @rule(index=workers_st)
    def lapse(self, index: int) -> None:
        """A SIGSTOP or a partition longer than the heartbeat's expiry: the process lives on, unlisted."""
        worker = self._worker(index)
        assert worker is not None
        self.conn.delete(KEYS.process(worker.identity))
        worker.lapsed = True

    @precondition(lambda self: any(worker.lapsed for worker in self.workers.values()))
    @rule(index=workers_st)
    def beat(self, index: int) -> None:
        worker = self._worker(index)
        assert worker is not None
        worker.heartbeat.beat()
        worker.lapsed = False

    @rule()
    def sweep(self) -> None:
        self.conn.delete(KEYS.process_cleanup_lock)
        moved = self.sweeper.sweep()
        alive = {worker.number for worker in self.workers.values() if not worker.lapsed}
        expected = 0
        for jid, where in list(self.where.items()):
            if where.place in ("inflight", "acked") and where.worker not in alive:
                expected += 1
                self.recovered[jid] += 1
                if self.recovered[jid] >= POISON_PILL_RECOVERIES:
                    self.where[jid] = Where("dead")
                    self.recorded[jid] += 1
                    self.buried[jid] += 1
                    self.failed += 1
                    self.processed += 1
                else:
                    self.where[jid] = Where("queue")
        assert moved == expected

    @precondition(lambda self: self.workers)
    @rule(index=workers_st)
    def fetch_reply_lost(self, index: int) -> None:
        """A fetch that moved a job whose reply never came; the worker reconciles, as after a broken link."""
        worker = self._worker(index)
        assert worker is not None
        fetch = worker.fetch
        fetch.lifecycle.fetch(fetch.queue_keys, fetch.inflight_keys, list(fetch.registry_entries().values()), [0],
                              1, [], time.time())
        assert fetch.reconcile() == (1 if self._jids("queue") else 0)

    @precondition(lambda self: any(worker.units for worker in self.workers.values()))
    @rule(index=workers_st)
    def settle_reply_lost(self, index: int) -> None:
        """A failure whose settlement landed but whose reply was lost, written again: it lands once."""
        worker = self._worker(index)
        assert worker is not None
        if not worker.units:
            return
        unit = worker.units[0]
        jid = unit.payload()["jid"]
        if jid in self.expired:
            return  # an expired job is dropped before it runs: it has no failure to settle
        SUCCEED[jid] = "fail"
        self.run(index, 0, "fail")
        again = failure.decide(unit.raw, unit.payload(), RuntimeError("written twice"), ModelJob, time.time())
        assert not unit.fetcher.lifecycle.settle(unit.inflight, unit.raw, again, time.time())
        ERRORS[jid] -= 1  # that decision was the test's, not a failure

    # Rules: the dashboard -----------------------------------------------------------------------
    @rule(which=st.sampled_from([JobSet.RETRIES, JobSet.DEAD, JobSet.SCHEDULED]),
          action=st.sampled_from(["run", "delete", "kill"]))
    def dashboard(self, which: JobSet, action: str) -> None:
        jobs = self.api.sorted_set(which).page(per_page=1).jobs
        if not jobs or (action == "kill" and which is JobSet.DEAD):
            return
        jid = jobs[0].jid
        entries = self.api.sorted_set(which)
        moved = {"run": entries.retry, "delete": entries.delete, "kill": entries.kill}[action](jobs)
        assert moved == 1
        if action == "run":
            if which is not JobSet.SCHEDULED and self.recorded[jid] > self.retried_now[jid]:
                self.retried_now[jid] += 1  # a retry_count is there: it is lowered by one
            self.where[jid] = Where("queue")
        elif action == "delete":
            self.where[jid] = Where("gone")
        else:
            self.where[jid] = Where("dead")

    # Invariants ---------------------------------------------------------------------------------
    @invariant()
    def every_job_is_in_exactly_one_place(self) -> None:
        found: Counter[str] = Counter()
        places: dict[str, str] = {}
        for name in self.conn.smembers(KEYS.queues):
            for raw in self.conn.lrange(KEYS.queue(name.decode()), 0, -1):
                found[json.loads(raw)["jid"]] += 1
                places[json.loads(raw)["jid"]] = "queue"
        for place, key in (("schedule", KEYS.schedule), ("retry", KEYS.retry), ("dead", KEYS.dead)):
            for raw in self.conn.zrange(key, 0, -1):
                found[json.loads(raw)["jid"]] += 1
                places[json.loads(raw)["jid"]] = place
        listed = {key.decode() for key in self.conn.hkeys(KEYS.inflight_lists)}
        for key in self.conn.keys("inflight:*"):
            assert key.decode() in listed, f"{key!r} holds jobs but is not listed for recovery"
            for raw in self.conn.lrange(key, 0, -1):
                found[json.loads(raw)["jid"]] += 1
                places[json.loads(raw)["jid"]] = "inflight"
        for jid, where in self.where.items():
            expected = 0 if where.place == "gone" else 1
            assert found[jid] == expected, f"{jid}: model says {where}, Redis has {found[jid]} ({places.get(jid)})"
            if expected:
                assert places[jid] == ("inflight" if where.place == "acked" else where.place)
        assert set(found) <= set(self.where)

    @invariant()
    def counts_and_handlers_match(self) -> None:
        for jid, where in self.where.items():
            if where.place in ("retry", "dead"):
                [raw] = [raw for key in (KEYS.retry, KEYS.dead) for raw in self.conn.zrange(key, 0, -1)
                         if json.loads(raw)["jid"] == jid]
                stored = json.loads(raw)
                if self.recorded[jid]:
                    expected = self.recorded[jid] - self.retried_now[jid] - 1
                    assert stored["retry_count"] == expected, f"{jid}: {stored}"
        assert +self.errors == +ERRORS  # once per failed run; a poison pill's burial runs no handler
        assert +self.buried == +DEATHS
        assert int(self.conn.get(KEYS.stat("processed")) or 0) == self.processed
        assert int(self.conn.get(KEYS.stat("failed")) or 0) == self.failed
        for counter, count in self.dropped.items():
            assert int(self.conn.get(KEYS.stat(counter)) or 0) == count, counter


def test_the_lifecycle_keeps_every_job_in_exactly_one_place(redis_url: str) -> None:
    LifecycleMachine.url = redis_url
    run_state_machine_as_test(LifecycleMachine, settings=settings(
        max_examples=int(os.environ.get("WORKERKIT_MODEL_EXAMPLES", 60)),
        stateful_step_count=int(os.environ.get("WORKERKIT_MODEL_STEPS", 40)),
        deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=bool(os.environ.get("CI")),
    ))
