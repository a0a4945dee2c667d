"""Actions on all matching jobs of a set answer within their time budget and go on in the background
(``workerkit.web.bulk``): checked over HTTP against a real server, counting every job."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from dashboard_helpers import KEYS, LOCAL, PREFIX, add_to, failed, post, queued
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from workerkit import sets
from workerkit.api import Api
from workerkit.server import running_server
from workerkit.sets import BULK_STEP, JobSet, Step
from workerkit.web import dashboard
from workerkit.web.bulk import BulkActions, Progress

MATCHING = 3 * BULK_STEP + 500
"""Jobs the filter matches: four steps, so that three are left to the background."""


@pytest.fixture
def no_budget(api: Api) -> Iterator[TestClient]:
    """The dashboard with no time budget: every action on all matches does one step in its request."""
    app = Starlette(routes=[Mount(PREFIX, dashboard(api, secret="test-secret", bulk_budget=0))])
    with TestClient(app, base_url=LOCAL, follow_redirects=False) as test_client:
        yield test_client


def fill_retries(conn: redis.Redis) -> tuple[set[str], set[str]]:
    """``MATCHING`` retries of ``app.jobs.Mailer`` and 10 of ``app.jobs.Billing``: their jids."""
    now, mailers, others = time.time(), set(), set()
    pipe = conn.pipeline(transaction=False)
    for number in range(MATCHING + 10):
        job = failed("app.jobs.Mailer" if number < MATCHING else "app.jobs.Billing", [number])
        (mailers if number < MATCHING else others).add(job["jid"])
        add_to(pipe, KEYS.retry, job, now + number)  # type: ignore[arg-type]
    pipe.execute()
    return mailers, others


def ended(api: Api, which: JobSet, timeout: float = 30.0) -> Progress:
    """The progress of the background action on ``which`` once it has ended (bounded by ``timeout``)."""
    bulk = BulkActions(api.conn, api.keys)
    deadline = time.monotonic() + timeout
    while (progress := bulk.progress(which)) is not None and progress.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert progress is not None, "no progress recorded"
    assert not progress.running, f"still running after {timeout} s: {progress}"
    return progress


def jids(raws: list[bytes]) -> list[str]:
    return [json.loads(raw)["jid"] for raw in raws]


def test_an_action_on_all_matches_answers_and_goes_on_in_the_background(
    no_budget: TestClient, api: Api, redis_client: redis.Redis
) -> None:
    mailers, others = fill_retries(redis_client)

    answer = post(no_budget, f"{PREFIX}/retries", {"action": "run", "scope": "all", "q": "mailer"})

    assert answer.status_code == 303
    assert answer.headers["location"] == f"{PREFIX}/retries?done=bulk_running"
    progress = ended(api, JobSet.RETRIES)
    assert (progress.state, progress.action, progress.text) == ("finished", "run", "mailer")
    assert (progress.looked_at, progress.total, progress.acted) == (MATCHING + 10, MATCHING + 10, MATCHING)
    moved = [job["jid"] for job in queued(redis_client)]
    assert len(moved) == MATCHING and set(moved) == mailers  # each once, none lost
    assert set(jids(redis_client.zrange(KEYS.retry, 0, -1))) == others
    page = no_budget.get(f"{PREFIX}/retries").text
    assert 'data-state="finished"' in page and "3,500 job(s) moved to their queues, finished" in page
    assert 'http-equiv="refresh"' not in page
    assert redis_client.exists(KEYS.bulk_lock("retries")) == 0


def test_the_set_page_follows_a_running_action(no_budget: TestClient, api: Api, redis_client: redis.Redis) -> None:
    bulk = BulkActions(redis_client, KEYS)
    started = time.time() - 5
    running = Progress("kill", "mailer", "running", 2_000, 3_510, 1_990, started, started + 1)
    bulk.record(JobSet.RETRIES, running)

    page = no_budget.get(f"{PREFIX}/retries").text

    assert 'data-state="running"' in page
    assert ("Kill all matching “mailer”:\n2,000 of 3,510 entries looked at, 1,990 job(s) moved to the dead set "
            "so far") in page
    assert '<meta http-equiv="refresh" content="2">' in page
    assert 0 < redis_client.ttl(KEYS.bulk_action("retries")) <= 60


def test_a_second_action_on_the_set_is_refused_while_one_runs(
    no_budget: TestClient, api: Api, redis_client: redis.Redis
) -> None:
    mailers, _ = fill_retries(redis_client)
    other_process = redis_client.lock(KEYS.bulk_lock("retries"), timeout=60, thread_local=False)
    assert other_process.acquire(blocking=False)

    refused = post(no_budget, f"{PREFIX}/retries", {"action": "delete", "scope": "all", "q": ""})

    assert refused.headers["location"] == f"{PREFIX}/retries?done=bulk_busy"
    assert redis_client.zcard(KEYS.retry) == MATCHING + 10  # nothing done
    assert "Not started: an action on all matching jobs of this set is still running" in no_budget.get(
        refused.headers["location"]).text
    other_process.release()
    done = post(no_budget, f"{PREFIX}/retries", {"action": "kill", "scope": "all", "q": "mailer"})
    assert done.headers["location"] == f"{PREFIX}/retries?done=bulk_running"
    assert ended(api, JobSet.RETRIES).acted == MATCHING
    assert set(jids(redis_client.zrange(KEYS.dead, 0, -1))) == mailers


def test_an_action_within_its_budget_ends_in_its_request(client: TestClient, api: Api,
                                                         redis_client: redis.Redis) -> None:
    fill_retries(redis_client)

    answer = post(client, f"{PREFIX}/retries", {"action": "delete", "scope": "all", "q": "billing"})

    assert answer.headers["location"] == f"{PREFIX}/retries?done=deleted&n=10"
    assert redis_client.zcard(KEYS.retry) == MATCHING
    assert BulkActions(redis_client, KEYS).progress(JobSet.RETRIES) is None  # nothing to follow
    assert redis_client.exists(KEYS.bulk_lock("retries")) == 0


def test_an_action_left_midway_loses_nothing_and_can_start_again(api: Api, redis_client: redis.Redis) -> None:
    mailers, others = fill_retries(redis_client)
    steps = api.sorted_set(JobSet.RETRIES).act_on_matching("run", "mailer")
    next(steps), next(steps)
    del steps  # the web process died here: two steps done, the others never started

    assert len(queued(redis_client)) == 2 * BULK_STEP
    assert redis_client.zcard(KEYS.retry) == MATCHING + 10 - 2 * BULK_STEP
    assert api.sorted_set(JobSet.RETRIES).retry_all("mailer") == MATCHING - 2 * BULK_STEP
    moved = [job["jid"] for job in queued(redis_client)]
    assert len(moved) == MATCHING and set(moved) == mailers
    assert set(jids(redis_client.zrange(KEYS.retry, 0, -1))) == others


def test_a_progress_record_this_version_did_not_write_is_ignored(client: TestClient, redis_client: redis.Redis) -> None:
    redis_client.set(KEYS.bulk_action("dead"), b'{"action": "run", "unknown": 1}')
    redis_client.set(KEYS.bulk_action("scheduled"), b"\xff not json")

    assert BulkActions(redis_client, KEYS).progress(JobSet.DEAD) is None
    assert BulkActions(redis_client, KEYS).progress(JobSet.SCHEDULED) is None
    assert client.get(f"{PREFIX}/dead").status_code == 200


def test_an_unknown_bulk_action_is_refused_by_name(api: Api) -> None:
    with pytest.raises(ValueError, match="unknown bulk action 'retry': one of run, kill, delete"):
        next(api.sorted_set(JobSet.DEAD).act_on_matching("retry", ""))


def test_entries_that_are_not_utf8_move_with_their_exact_bytes(client: TestClient, redis_client: redis.Redis) -> None:
    broken, other = b'\xff\xfe{"class": "app.jobs.Mailer"}', b"\xc3 not json either"
    redis_client.zadd(KEYS.retry, {broken: 1.0})

    ran = post(client, f"{PREFIX}/retries", {"action": "run", "scope": "all", "q": ""})
    redis_client.zadd(KEYS.retry, {other: 2.0})
    killed = post(client, f"{PREFIX}/retries", {"action": "kill", "scope": "all", "q": ""})

    assert ran.headers["location"] == f"{PREFIX}/retries?done=run&n=1"
    assert killed.headers["location"] == f"{PREFIX}/retries?done=killed&n=1"
    assert redis_client.zcard(KEYS.retry) == 0
    assert redis_client.lrange(KEYS.queue("default"), 0, -1) == [broken]  # as it was, for the worker to quarantine
    assert redis_client.zrange(KEYS.dead, 0, -1) == [other]


def test_a_step_counts_only_what_it_moved(api: Api, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sets, "BULK_STEP", 2)
    now = time.time()
    for number in range(5):
        add_to(redis_client, KEYS.retry, failed("app.jobs.Mailer", [number]), now + number)
    entries = api.sorted_set(JobSet.RETRIES)
    steps = entries.act_on_matching("run", "mailer")

    assert next(steps) == Step(2, 5, 2)
    third = entries.page(1, 25).jobs[0]
    assert entries.delete([third]) == 1  # a click takes one of the next step's entries meanwhile
    assert next(steps) == Step(4, 5, 3)
    assert next(steps) == Step(5, 5, 4)
    assert next(steps, None) is None
    assert len(queued(redis_client)) == 4 and redis_client.zcard(KEYS.retry) == 0


def test_redis_killed_midway_stops_the_action_and_loses_nothing(tmp_path: Path) -> None:
    with running_server(tmp_path / "redis", kind="embedded") as server:
        conn = redis.Redis.from_url(server.url)
        mailers, others = set(), set()
        for _ in range(3):  # about ten steps
            more_mailers, more_others = fill_retries(conn)
            mailers, others = mailers | more_mailers, others | more_others
        api = Api(redis.Redis.from_url(server.url, socket_timeout=5), KEYS)
        app = Starlette(routes=[Mount(PREFIX, dashboard(api, secret="s", bulk_budget=0))])
        with TestClient(app, base_url=LOCAL, follow_redirects=False) as client:
            answer = post(client, f"{PREFIX}/retries", {"action": "run", "scope": "all", "q": "mailer"})
            assert answer.headers["location"] == f"{PREFIX}/retries?done=bulk_running"
            bulk = BulkActions(conn, KEYS)
            deadline = time.monotonic() + 30
            while ((progress := bulk.progress(JobSet.RETRIES)) is None or progress.acted < BULK_STEP) and \
                    time.monotonic() < deadline:
                time.sleep(0.001)
            assert progress is not None and progress.running, progress  # a step done, others to go
            server.stop(kill=True)  # kill -9, with the action's thread between steps or in one
            server.start()
            threads = [thread for thread in threading.enumerate() if thread.name == "workerkit-bulk-retries"]
            for thread in threads:
                thread.join(30)
            assert not any(thread.is_alive() for thread in threads)

        moved = [job["jid"] for job in queued(conn)]
        left = jids(conn.zrange(KEYS.retry, 0, -1))
        assert len(moved) == len(set(moved)) and len(left) == len(set(left))
        assert set(moved).isdisjoint(left) and set(moved) | set(left) == mailers | others  # each in one place
        assert others <= set(left)
        assert BULK_STEP <= len(moved) <= len(mailers)  # the thread stops, or goes on once Redis is back
        assert conn.exists(KEYS.bulk_lock("retries")) == 0  # freed once Redis was back, not RUNNING_TTL later
        ended = BulkActions(conn, KEYS).progress(JobSet.RETRIES)
        assert ended is not None and ended.state in ("stopped", "finished"), ended  # the page does not say running
        assert Api(conn, KEYS).sorted_set(JobSet.RETRIES).retry_all("mailer") == len(mailers - set(moved))
        assert {job["jid"] for job in queued(conn)} == mailers
