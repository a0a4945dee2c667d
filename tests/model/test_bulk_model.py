"""A model-based test of the dashboard's bulk actions against a real server (hypothesis
``RuleBasedStateMachine``).

Rules add entries to the retry and dead sets (jobs with hostile arguments, entries that are not jobs,
quarantined bytes), start actions on all matches of a filter (run, kill, delete), advance any running one
by a step, abandon one midway (its web process died), and act on one entry as a click on its page does,
all interleaved. After every step the invariants count every entry:

- no entry is in two places (the retry set, the dead set, any queue) nor twice in one;
- every entry added is in one place or was deleted, and the deletions are exactly what the delete steps and
  clicks reported: a bulk action never loses an entry, never copies one, and counts what it did;
- the queues, the retry set and the dead set hold exactly what was added and what the moves reported;
- each step acts only on entries its filter matched in its snapshot (by a full decode), moves them where
  its action says, reports how many; once its steps end, none of those entries is left in the set.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from workerkit import sets
from workerkit.api import Api
from workerkit.keys import Keys
from workerkit.payload import encode, new_payload
from workerkit.sets import JobSet, Step
from workerkit.views import JobView

KEYS = Keys()
ACTIONS = {JobSet.RETRIES: ("run", "kill", "delete"), JobSet.DEAD: ("run", "delete")}
FILTERS = st.sampled_from(["", "mailer", "boom", "1", "İ", "\udc80", "null", "{", "app.jobs.mailer"])
HOSTILE_ARGS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=20) | st.sampled_from(["mailer", "İ", "boom", "a\\u0062"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


def identity(raw: bytes) -> str:
    """Who an entry is, wherever it lies: a job by its jid, bytes that are not a job by those bytes (a
    quarantined entry by the bytes it holds, which a run puts back in a queue)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return "raw:" + raw.hex()
    if isinstance(value, dict) and value.get("class") == "workerkit.InvalidPayload":
        return "raw:" + base64.b64decode(value["raw_base64"]).hex()
    if isinstance(value, dict) and isinstance(value.get("jid"), str):
        return "jid:" + value["jid"]
    return "raw:" + raw.hex()


@dataclass
class Running:
    """An action started on all matches of ``text`` in ``which``: its steps, what they reported acting on so
    far, and the entries its snapshot matched."""

    which: JobSet
    action: str
    text: str
    steps: Iterator[Step]
    acted: int = 0
    matched: set[str] = field(default_factory=set)
    """Entries whose view matches the filter (an entry that is not a job matches only when its bytes hold
    the filter's text as well, see ``sets._Matcher``: those may be left)."""
    jobs_matched: set[str] = field(default_factory=set)
    """The jobs among them: each must be acted on."""


class BulkMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.conn = redis.Redis.from_url(self.url)
        self.conn.flushall()
        self.api = Api(self.conn, KEYS)
        self.added = 0
        self.deleted = 0
        self.to_queues = 0
        self.sizes = {JobSet.RETRIES: 0, JobSet.DEAD: 0}
        self.running: list[Running] = []

    def teardown(self) -> None:
        self.conn.close()

    def _add(self, which: JobSet, raw: bytes | str) -> None:
        # The same bytes and order in every run of an example (hypothesis replays them): fixed jids, and
        # scores apart by more than a run lasts (a kill scores its entry with the time it happens).
        self.conn.zadd(which.key(KEYS), {raw: time.time() + 1000 * self.added})
        self.added += 1
        self.sizes[which] += 1

    @rule(which=st.sampled_from(list(ACTIONS)), class_name=st.sampled_from(["app.jobs.Mailer", "app.jobs.Billing"]),
          args=st.lists(st.lists(HOSTILE_ARGS, max_size=3), min_size=1, max_size=6),
          queue=st.sampled_from(["default", "critical"]))
    def add_jobs(self, which: JobSet, class_name: str, args: list[list[object]], queue: str) -> None:
        for job_args in args:
            job = new_payload(class_name, job_args, queue, True, created_at=1.0e9)
            job.update(jid=f"{self.added:024x}", error_class="RuntimeError", error_message="boom", retry_count=1)
            self._add(which, encode(job))

    @rule(which=st.sampled_from(list(ACTIONS)), body=st.sampled_from([b"\xff\xfe not json", b"{}", b"[1]", b"null",
                                                                       b'{"class": 5, "jid": 7}']))
    def add_not_a_job(self, which: JobSet, body: bytes) -> None:
        self._add(which, body + b" " * self.added if body.startswith(b"\xff") else
                  body[:-1] + b" " * self.added + body[-1:])  # unique bytes: a set holds each once

    @rule(body=st.binary(min_size=1, max_size=30))
    def add_quarantined(self, body: bytes) -> None:
        wrapper = {"class": "workerkit.InvalidPayload", "args": [], "queue": "default", "jid": f"q{self.added}",
                   "raw_base64": base64.b64encode(body + b"#%d" % self.added).decode(), "error_class": "PayloadError"}
        self._add(JobSet.DEAD, json.dumps(wrapper))

    @precondition(lambda self: len(self.running) < 3)
    @rule(which=st.sampled_from(list(ACTIONS)), data=st.data(), text=FILTERS)
    def start_action(self, which: JobSet, data: st.DataObject, text: str) -> None:
        """Start an action and take its first step, which reads its snapshot: the set as it is now."""
        action = data.draw(st.sampled_from(ACTIONS[which]))
        views = [(identity(raw), JobView.parse(raw)) for raw in self.conn.zrange(which.key(KEYS), 0, -1)]
        matching = [(who, view) for who, view in views if view.matches(text.lower())]
        running = Running(which, action, text, self.api.sorted_set(which).act_on_matching(action, text),
                          matched={who for who, _ in matching},
                          jobs_matched={who for who, view in matching if view.readable})
        self.running.append(running)
        self._step(len(self.running) - 1)

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data())
    def step_an_action(self, data: st.DataObject) -> None:
        self._step(data.draw(st.integers(0, len(self.running) - 1)))

    def _step(self, index: int) -> None:
        running = self.running[index]
        before = self._in(running.which)
        step = next(running.steps, None)
        if step is None:  # every job it matched has been acted on, by it or by others
            left = running.jobs_matched & self._in(running.which)
            assert not left, ("matching jobs left in the set", left)
            del self.running[index]
            return
        gone = before - self._in(running.which)
        assert gone <= running.matched, ("acted on entries its filter does not match", gone - running.matched)
        assert len(gone) == step.acted - running.acted, (gone, step, running.acted)
        assert 0 <= step.looked_at <= step.total
        if running.action != "delete":
            there = self._in(JobSet.DEAD) if running.action == "kill" else set(self._queued())
            assert gone <= there, ("moved somewhere else", gone - there)
        self._count(running.which, running.action, step.acted - running.acted)
        running.acted = step.acted

    def _in(self, which: JobSet) -> set[str]:
        return {identity(raw) for raw in self.conn.zrange(which.key(KEYS), 0, -1)}

    def _queued(self) -> list[str]:
        return [identity(raw) for name in self.conn.smembers(KEYS.queues)
                for raw in self.conn.lrange(KEYS.queue(name.decode()), 0, -1)]

    @precondition(lambda self: bool(self.running))
    @rule(data=st.data())
    def abandon_an_action(self, data: st.DataObject) -> None:
        del self.running[data.draw(st.integers(0, len(self.running) - 1))]

    @rule(which=st.sampled_from(list(ACTIONS)), data=st.data())
    def click_one(self, which: JobSet, data: st.DataObject) -> None:
        entries = self.api.sorted_set(which)
        shown = entries.page(1, 25).jobs
        if not shown:
            return
        job = data.draw(st.sampled_from(shown))
        action = data.draw(st.sampled_from(ACTIONS[which]))
        found = entries.find_all([job.key])
        done = {"run": entries.retry, "kill": entries.kill, "delete": entries.delete}[action](found)
        self._count(which, action, done)

    def _count(self, which: JobSet, action: str, done: int) -> None:
        """What ``done`` entries acted on out of ``which`` change in the model."""
        self.sizes[which] -= done
        if action == "delete":
            self.deleted += done
        elif action == "kill":
            self.sizes[JobSet.DEAD] += done
        else:
            self.to_queues += done

    @invariant()
    def nothing_is_lost_or_copied_and_every_count_is_true(self) -> None:
        queued = self._queued()
        places = Counter([*queued, *(identity(raw) for which in self.sizes
                                     for raw in self.conn.zrange(which.key(KEYS), 0, -1))])
        assert max(places.values(), default=1) == 1, [who for who, count in places.items() if count > 1]
        assert sum(places.values()) + self.deleted == self.added, (sum(places.values()), self.deleted, self.added)
        assert len(queued) == self.to_queues, (len(queued), self.to_queues)

    @invariant()
    def each_set_holds_what_was_added_and_moved_in_minus_what_was_acted_on(self) -> None:
        found = {which: self.conn.zcard(which.key(KEYS)) for which in self.sizes}
        assert found == self.sizes, (found, self.sizes)


def test_bulk_actions_lose_nothing_whatever_runs_beside_them(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sets, "BULK_STEP", 2)  # sets of a few dozen entries, in several steps each
    BulkMachine.url = redis_url
    run_state_machine_as_test(BulkMachine, settings=settings(
        max_examples=int(os.environ.get("WORKERKIT_MODEL_EXAMPLES", 40)),
        stateful_step_count=int(os.environ.get("WORKERKIT_MODEL_STEPS", 50)),
        deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=bool(os.environ.get("CI")),
    ))
