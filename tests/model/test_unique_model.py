"""A model-based test of unique jobs' locks against a real server (hypothesis ``RuleBasedStateMachine``).

Rules push a unique job with one of two arguments (``unique_until`` success or start, held or released while
retrying), fetch and run one through the real ``ReliableFetch`` and ``Runner`` to success or failure,
prefetch one and lose the process (its in-flight job goes back to its queue, as recovery does), promote the
retries, and let a lock expire. A pure model says who holds each lock and how many copies of each job are
alive; after every step the invariants compare it with Redis:

- each lock is held by the jid the model says, or by none;
- the live copies of each job (queued, in flight, waiting for a retry) are the model's: a push is accepted
  exactly when no lock is held, recovery never adds a copy, and the dead set gets each job that ran out of
  retries once.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from workerkit import Job, config, unique
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.runner import Runner

KEYS = Keys()
RETRIES = 1
SUCCEED: dict[str, bool] = {}


class UniqueModelJob(Job):
    """Unique for a minute; succeeds or fails as the model tells it."""

    unique_for = 60
    retry = RETRIES

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return 0.0

    def perform(self, arg: int) -> None:
        if not SUCCEED[self.jid]:
            raise RuntimeError("model failure")


@dataclass
class Pushed:
    """One accepted push, as the model knows it."""

    arg: int
    until: str
    while_retrying: bool
    failures: int = 0


@dataclass
class Model:
    holder: dict[int, str | None] = field(default_factory=lambda: {0: None, 1: None})
    alive: Counter[int] = field(default_factory=Counter)
    dead: Counter[int] = field(default_factory=Counter)
    jobs: dict[str, Pushed] = field(default_factory=dict)


def lock_key(arg: int) -> str:
    digest = unique.fields(UniqueModelJob.job_name(), "default", [arg], 60, "success", None, True)["unique_digest"]
    return KEYS.unique(str(digest))


class UniqueMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        config.reset()
        config.configure(redis_url=self.url)
        self.conn = redis.Redis.from_url(self.url)
        self.conn.flushall()
        self.fetch = ReliableFetch(self.conn, KEYS, "host:1:abcdef", [QueueSpec("default")])
        self.runner = Runner(threading.Event())
        self.model = Model()

    def teardown(self) -> None:
        self.conn.close()
        config.reset()

    @rule(arg=st.sampled_from([0, 1]), until=st.sampled_from(["success", "start"]), while_retrying=st.booleans())
    def push(self, arg: int, until: str, while_retrying: bool) -> None:
        jid = UniqueModelJob.set(unique_until=until, unique_while_retrying=while_retrying).perform_async(arg)
        expected = self.model.holder[arg] is None
        assert (jid is not None) == expected, (arg, self.model.holder)
        if jid is not None:
            self.model.holder[arg] = jid
            self.model.alive[arg] += 1
            self.model.jobs[jid] = Pushed(arg, until, while_retrying)

    def _release(self, jid: str) -> None:
        job = self.model.jobs[jid]
        if self.model.holder[job.arg] == jid:
            self.model.holder[job.arg] = None

    @precondition(lambda self: sum(self.model.alive.values()) > 0)
    @rule(succeed=st.booleans())
    def run_one(self, succeed: bool) -> None:
        units = self.fetch.fetch(1)
        if not units:
            return  # the live copies wait in the retry set
        [unit] = units
        jid = str(unit.payload()["jid"])
        job = self.model.jobs[jid]
        SUCCEED[jid] = succeed
        self.runner.process(unit)
        self.fetch.fetch(0)  # flush the acknowledgement (a worker sends it with its next fetch)
        if job.until == "start":
            self._release(jid)
        if succeed:
            self.model.alive[job.arg] -= 1
            self._release(jid)
            return
        job.failures += 1
        if job.failures > RETRIES:
            self.model.alive[job.arg] -= 1
            self.model.dead[job.arg] += 1
            self._release(jid)
        elif not job.while_retrying:
            self._release(jid)

    @rule()
    def lose_a_process_holding_a_job(self) -> None:
        self.fetch.fetch(1)
        self.fetch.requeue_all()  # what the sweep does for a dead process: back to the queue, same payload

    @rule()
    def promote_retries(self) -> None:
        self.fetch.lifecycle.promote(KEYS.retry, 10**10)

    @rule(arg=st.sampled_from([0, 1]))
    def lock_expires(self, arg: int) -> None:
        self.conn.delete(lock_key(arg))
        self.model.holder[arg] = None

    @invariant()
    def locks_are_held_by_the_model_s_jids(self) -> None:
        for arg, holder in self.model.holder.items():
            found = self.conn.get(lock_key(arg))
            assert (found.decode() if found else None) == holder, (arg, found, holder)

    @invariant()
    def live_copies_are_the_model_s(self) -> None:
        raw = [*self.conn.lrange(KEYS.queue("default"), 0, -1), *self.conn.lrange(self.fetch.inflight_keys[0], 0, -1),
               *self.conn.zrange(KEYS.retry, 0, -1)]
        alive = Counter(json.loads(entry)["args"][0] for entry in raw)
        dead = Counter(json.loads(entry)["args"][0] for entry in self.conn.zrange(KEYS.dead, 0, -1))
        assert +alive == +self.model.alive and +dead == +self.model.dead, (alive, self.model.alive, dead)


def test_unique_locks_follow_their_jobs(redis_url: str) -> None:
    UniqueMachine.url = redis_url
    run_state_machine_as_test(UniqueMachine, settings=settings(
        max_examples=int(os.environ.get("WORKERKIT_MODEL_EXAMPLES", 40)),
        stateful_step_count=int(os.environ.get("WORKERKIT_MODEL_STEPS", 30)),
        deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=bool(os.environ.get("CI")),
    ))
