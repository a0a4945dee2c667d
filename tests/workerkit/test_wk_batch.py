"""Batches (``workerkit.Batch``): each callback is pushed once, by the transition that reaches its event, in
this process's real fetch and runner against a real server; nesting, reopening from a job, every push form
inside a block, lost replies and recovered jobs; bad input refused, naming what is wrong."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import redis

import workerkit
from workerkit import Batch, BatchError, BatchNotFound, Job, config, job, testing
from workerkit.batch_scope import fill as fill_batch
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.lifecycle import Outcome
from workerkit.runner import Runner
from workerkit.scheduler import Scheduler

FAILING: set[int] = set()
"""Steps that fail when they run (the test decides)."""
SEEN: list[Any] = []
"""What callbacks and steps saw of their batch when they ran."""


class Step(Job):
    retry = 3

    def perform(self, n: int) -> None:
        if n in FAILING:
            raise RuntimeError(f"step {n} fails")


class Doomed(Job):
    retry = 0  # its first failure buries it

    def perform(self, n: int) -> None:
        raise RuntimeError(f"doomed {n}")


class Callback(Job):
    def perform(self, *args: Any) -> None:
        found = workerkit.batch.callback()
        assert found is not None
        SEEN.append((found[1], found[0].bid, list(args)))


class FanOut(Job):
    """A job of a batch that adds ``n`` more steps to it."""

    def perform(self, n: int) -> None:
        assert self.batch is not None
        with self.batch.jobs():
            for index in range(n):
                Step.perform_async(1000 + index)


@job
def fan_out_function(n: int) -> None:
    """The same through ``workerkit.batch.current()``."""
    found = workerkit.batch.current()
    assert found is not None
    with found.jobs():
        Step.perform_async(2000 + n)


@pytest.fixture(autouse=True)
def _clean() -> Any:
    FAILING.clear()
    SEEN.clear()
    yield
    FAILING.clear()


class Worker:
    """This process as a worker: the real fetch and runner, run step by step."""

    def __init__(self, conn: redis.Redis, identity: str = "test-worker") -> None:
        self.fetch = ReliableFetch(conn, Keys(), identity, [QueueSpec("default")])
        self.runner = Runner(threading.Event())

    def run(self, limit: int = 10_000) -> list[Outcome | None]:
        """Run what is queued (callbacks included) until nothing is left, then flush the acknowledgements."""
        outcomes: list[Outcome | None] = []
        while units := self.fetch.fetch(min(limit - len(outcomes), 100)):
            outcomes += [self.runner.process(unit) for unit in units]
        self.fetch.fetch(0)
        return outcomes


def callbacks(conn: redis.Redis) -> list[tuple[str, str]]:
    """The callbacks queued: (event, bid), oldest first."""
    found = [json.loads(raw) for raw in reversed(conn.lrange("queue:default", 0, -1))]
    return [(entry["batch_callback"]["event"], entry["batch_callback"]["bid"]) for entry in found
            if "batch_callback" in entry]


def retry_everything(conn: redis.Redis) -> None:
    """Make every retry due now (as time passing would)."""
    for member in conn.zrange("retry", 0, -1):
        conn.zadd("retry", {member: 0})
    Scheduler(conn, Keys()).promote_due()


def test_success_and_complete_are_pushed_once_after_the_last_job(wk: redis.Redis) -> None:
    batch = Batch("five steps", on_success=(Callback, ["done", 5]), on_complete=Callback)
    with batch.jobs():
        jids = [Step.perform_async(n) for n in range(5)]
    status = batch.status()
    assert (status.total, status.pending, status.open_blocks, status.complete) == (5, 5, 0, False)
    assert wk.smembers(f"batch:{batch.bid}:pending") == {jid.encode() for jid in jids if jid}
    worker = Worker(wk)
    worker.fetch.fetch(0)
    units = worker.fetch.fetch(5)
    for unit in units[:4]:
        worker.runner.process(unit)
    worker.fetch.fetch(0)
    assert callbacks(wk) == [] and batch.status().pending == 1
    worker.runner.process(units[4])
    worker.fetch.fetch(0)  # the last acknowledgement pushes both, in the same script
    assert callbacks(wk) == [("complete", batch.bid), ("success", batch.bid)]
    [success] = [json.loads(raw) for raw in wk.lrange("queue:default", 0, 0)]
    assert success["args"] == ["done", 5] and "bid" not in success
    assert abs(success["enqueued_at"] - time.time()) < 5  # stamped by the server when pushed
    assert worker.run() == [Outcome.DONE, Outcome.DONE]
    assert sorted(SEEN) == [("complete", batch.bid, []), ("success", batch.bid, ["done", 5])]
    status = batch.status()
    assert status.succeeded and status.complete and (status.pending, status.failed) == (0, 0)
    assert wk.ttl(f"batch:{batch.bid}") > 29 * 86_400  # kept 30 days after its last block opened


def test_complete_fires_when_all_ran_and_success_only_after_the_retry_succeeds(wk: redis.Redis) -> None:
    FAILING.add(2)
    batch = Batch(on_success=Callback, on_complete=Callback)
    with batch.jobs():
        for n in range(3):
            Step.perform_async(n)
    worker = Worker(wk)
    assert sorted(map(str, worker.run(3))) == ["Outcome.DONE", "Outcome.DONE", "Outcome.RETRY"]
    assert callbacks(wk) == [("complete", batch.bid)]
    status = batch.status()
    assert (status.pending, status.failed, status.dead, status.complete, status.succeeded) == (1, 1, 0, True, False)
    assert wk.ttl(f"batch:{batch.bid}:failed") > 29 * 86_400  # as long as the batch: never left behind
    FAILING.clear()
    retry_everything(wk)
    worker.run()
    assert [event for event, _, _ in SEEN] == ["complete", "success"]
    assert batch.status().succeeded and batch.status().failed == 0


def test_a_death_pushes_on_death_once_and_never_on_success(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback, on_complete=Callback, on_death=(Callback, ["died"]))
    with batch.jobs():
        Doomed.perform_async(1)
        Doomed.perform_async(2)
        Step.perform_async(3)
    Worker(wk).run()
    assert sorted(event for event, _, _ in SEEN) == ["complete", "death"]
    status = batch.status()
    assert (status.pending, status.failed, status.dead) == (2, 2, 2) and status.died_at is not None
    assert wk.zcard("dead") == 2 and not status.succeeded


def test_a_child_batch_must_succeed_before_its_parent(wk: redis.Redis) -> None:
    FAILING.add(11)
    parent = Batch("parent", on_success=Callback, on_complete=Callback, on_death=Callback)
    child = Batch("child", on_success=Callback, on_complete=Callback)
    with parent.jobs():
        Step.perform_async(1)
        with child.jobs():
            Step.perform_async(10)
            Step.perform_async(11)
        Step.perform_async(2)
    assert child.status().parent == parent.bid and parent.status().children == 1
    assert parent.status().total == 3  # two steps and the child
    assert set(wk.smembers(f"batch:{parent.bid}:pending")) >= {f"b:{child.bid}".encode()}
    worker = Worker(wk)
    worker.run()
    assert sorted((event, bid) for event, bid, _ in SEEN) == sorted(
        [("complete", child.bid), ("complete", parent.bid)])  # the child completed with a failure
    assert parent.status().failed == 1 and not parent.status().succeeded
    FAILING.clear()
    retry_everything(wk)
    worker.run()
    assert [(event, bid) for event, bid, _ in SEEN[2:]] == [("success", child.bid), ("success", parent.bid)]


def test_a_death_below_fires_in_every_parent(wk: redis.Redis) -> None:
    parent, child = Batch(on_death=Callback), Batch(on_death=Callback)
    with parent.jobs(), child.jobs():
        Doomed.perform_async(1)
    Worker(wk).run()
    assert sorted((event, bid) for event, bid, _ in SEEN) == sorted([("death", child.bid), ("death", parent.bid)])


def test_jobs_of_a_batch_add_jobs_to_it(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback)
    with batch.jobs():
        FanOut.perform_async(3)
        fan_out_function.delay(7)
    Worker(wk).run()
    status = batch.status()
    assert (status.total, status.succeeded) == (6, True)  # 2 + 3 + 1
    assert [event for event, _, _ in SEEN] == ["success"]


def test_every_push_form_joins_and_an_empty_batch_succeeds_at_once(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback)
    with batch.jobs():
        Step.perform_in(60, 1)
        Step.perform_at(time.time() + 60, 2)
        workerkit.push_bulk(Step, [[n] for n in range(3, 2503)])
        workerkit.push("test_wk_batch.Step", [2503], at=time.time() + 60)
        Step.set(queue="default").delay(2504)
    assert batch.status().total == 2504 and wk.zcard("schedule") == 3 and wk.llen("queue:default") == 2501
    for raw in wk.zrange("schedule", 0, -1) + wk.lrange("queue:default", 0, 5):
        assert json.loads(raw)["bid"] == batch.bid

    empty = Batch(on_success=Callback, on_complete=Callback)
    with empty.jobs():
        pass
    assert callbacks(wk) == [("complete", empty.bid), ("success", empty.bid)]


def test_awaitable_pushes_join_an_async_block(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback)

    async def fill() -> None:
        async with batch.jobs():
            await Step.aperform_async(1)
            await workerkit.apush_bulk(Step, [[2], [3]])
        await config.close_async_redis_client()

    asyncio.run(fill())
    assert batch.status().total == 3
    Worker(wk).run()
    assert [event for event, _, _ in SEEN] == ["success"]


def test_a_block_that_raises_while_creating_never_succeeds(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback, on_complete=Callback)
    with pytest.raises(ZeroDivisionError), batch.jobs():
        Step.perform_async(1)
        raise ZeroDivisionError("halfway")
    assert batch.status().error == "ZeroDivisionError: halfway" and batch.status().open_blocks == 0
    Worker(wk).run()
    assert [event for event, _, _ in SEEN] == ["complete"]
    assert not batch.status().succeeded


def test_an_acknowledgement_sent_twice_and_a_recovered_job_push_nothing_twice(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback)
    with batch.jobs():
        Step.perform_async(1)
        Step.perform_async(2)
    first, second = Worker(wk, "first"), Worker(wk, "second")
    [unit] = first.fetch.fetch(1)
    first.runner.process(unit)
    acks = list(first.fetch._batch_acks)
    first.fetch.fetch(0)
    first.fetch.lifecycle.fetch(first.fetch.queue_keys, first.fetch.inflight_keys, ["{}"], [0], 0, [], time.time(),
                                None, acks)  # the same acknowledgement again: a retried reply
    [other] = second.fetch.fetch(1)
    wk.lpush("queue:default", other.raw)  # as if recovered while still running: two copies run
    second.runner.process(other)
    second.run()
    assert callbacks(wk) == [] and [event for event, _, _ in SEEN] == ["success"]
    assert wk.get("stat:processed") == b"4"  # two steps, the rerun copy and the callback


def test_expired_and_cancelled_jobs_fail_in_their_batch(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback, on_complete=Callback)
    with batch.jobs():
        Step.set(expires_at=time.time() - 1).perform_async(1)
        jid = Step.perform_async(2)
    assert jid is not None
    worker = Worker(wk)
    [expired, held] = worker.fetch.fetch(2)
    assert worker.runner.process(expired) == Outcome.EXPIRED
    assert held.drop(Outcome.CANCELLED, jid)
    assert (batch.status().failed, batch.status().complete) == (2, True)
    worker.run()
    assert [event for event, _, _ in SEEN] == ["complete"]


def test_bad_input_is_refused_naming_it(wk: redis.Redis) -> None:
    with pytest.raises(TypeError, match=r"on_success callback is a job or a \(job, \[args\]\) pair"):
        Batch(on_success=(Callback, [1], "extra"))
    with pytest.raises(TypeError, match="cannot take the arguments"):
        Batch(on_complete=(Step, [1, 2]))
    with pytest.raises(TypeError, match="lone surrogate"):
        Batch(on_success=(Callback, ["\udcff"]))
    with pytest.raises(TypeError, match=r"on_success callback test_wk_batch\.Step has unique_for"):
        Batch(on_success=(Step.set(unique_for=60), [1]))
    with pytest.raises(TypeError, match=r"on_death callback test_wk_batch\.Step has expires_in"):
        Batch(on_death=(Step.set(expires_in=5), [1]))
    with pytest.raises(TypeError, match="cannot join batch"), Batch().jobs():
        Step.set(unique_for=60).perform_async(1)
    with pytest.raises(ValueError, match="non-empty string"):
        Batch.find("")
    with pytest.raises(TypeError, match="description is text, not int"):
        Batch(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lone surrogate at 2"):
        Batch("ab\udcffc")
    with pytest.raises(BatchNotFound, match="batch nope is unknown or expired"):
        Batch.find("nope").status()
    with pytest.raises(BatchNotFound, match="batch nope"), Batch.find("nope").jobs():
        pass
    done = Batch()
    with done.jobs():
        pass
    with pytest.raises(BatchError, match="succeeded already"), done.jobs():
        pass
    assert wk.llen("queue:default") == 0


def test_hostile_descriptions_and_callback_arguments_survive(wk: redis.Redis) -> None:
    hostile = ["", "\u2028", "é" * 10_000, {"deep": [[[[[[[[[[{}]]]]]]]]]]}, 2**63, -1.5e-300, None]
    batch = Batch("\u2028 ünïcode \x00 desc", on_success=(Callback, hostile))
    with batch.jobs():
        Step.perform_async(1)
    assert batch.status().description == "\u2028 ünïcode \x00 desc"
    Worker(wk).run()
    assert [("success", batch.bid, hostile)] == SEEN


def test_under_testing_fake_pushes_carry_the_bid_and_nothing_is_tracked(wk: redis.Redis) -> None:
    with testing.fake() as queues:
        batch = Batch(on_success=Callback)
        with batch.jobs():
            Step.perform_async(1)
        [payload] = queues.jobs_for(Step)
    assert payload["bid"] == batch.bid and wk.keys("batch*") == []


def test_redis_away_names_the_batch_and_what_could_not_be_done(wk: redis.Redis) -> None:
    config.configure(redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(workerkit.client.RedisUnreachable, match=r"cannot open a block of batch \w+: Redis at"):
        Batch().jobs().__enter__()


def test_a_bid_that_names_no_batch_runs_as_a_plain_job_and_writes_nothing(wk: redis.Redis) -> None:
    with workerkit.batch_scope.fill("SidekiqProBid1"), pytest.raises(BatchError, match="SidekiqProBid1 is unknown"):
        Step.perform_async(1)  # a workerkit push into no batch is refused
    for n, fails in ((1, False), (2, True)):
        payload = workerkit.client.build_payload(Step, [n], {"bid": "SidekiqProBid1"})
        wk.lpush("queue:default", workerkit.payload.encode(payload))
        if fails:
            FAILING.add(n)
    assert sorted(map(str, Worker(wk).run())) == ["Outcome.DONE", "Outcome.RETRY"]
    assert wk.keys("batch*") == []


def test_threads_opening_a_new_batch_at_once_create_it_once(wk: redis.Redis) -> None:
    batch = Batch(on_success=Callback)
    start, errors = threading.Barrier(8), []

    def fill() -> None:
        start.wait()
        try:
            with batch.jobs():
                Step.perform_async(1)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fill) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and (batch.status().total, batch.status().open_blocks) == (8, 0)
    Worker(wk).run()
    assert [event for event, _, _ in SEEN] == ["success"]


def test_a_child_refused_names_the_parent_that_refused_it(wk: redis.Redis) -> None:
    parent = Batch()
    with parent.jobs():
        pass  # empty: it succeeds as it closes
    with fill_batch(parent.bid), pytest.raises(BatchError, match=f"batch {parent.bid} succeeded already"):
        Batch().jobs().__enter__()
