"""Ruby and Python share one Redis: Sidekiq 6.4 (Debian's ruby-sidekiq) and workerkit, for real.

Sidekiq's client pushes and workerkit runs; workerkit pushes and a real ``sidekiq`` process runs; after
workerkit ran a mix of successes, failures and retries, Sidekiq's API reports exactly what workerkit's API
reports; entries written by Sidekiq are shown and acted on by workerkit's API and dashboard.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import sk_jobs
from polling import wait_for
from process_support import ChildProcess
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import workerkit
from workerkit.api import Api
from workerkit.payload import new_jid
from workerkit.sets import JobSet
from workerkit.views import JobView
from workerkit.web import dashboard

View = Callable[..., Any]


def records(conn: redis.Redis, key: str) -> list[Any]:
    return sorted((json.loads(raw) for raw in conn.lrange(key, 0, -1)), key=json.dumps)


def test_jobs_pushed_by_sidekiq_client_run_in_a_workerkit_worker(
    wk: redis.Redis, sidekiq_view: View, start_worker: Callable[..., ChildProcess]
) -> None:
    at = time.time() + 1
    hard, email, later = sidekiq_view(
        "push",
        json.dumps({"class": "HardWorker", "args": [1, "two", {"three": [3.5, None, True]}], "queue": "py"}),
        json.dumps({"class": "EmailWorker", "args": ["ada@example.com", "hello"], "queue": "py"}),
        json.dumps({"class": "HardWorker", "args": ["later"], "queue": "py", "at": at}),
    )
    assert wk.zcard("schedule") == 1 and wk.llen("queue:py") == 2
    # A Sidekiq 8 client writes integer epoch milliseconds; workerkit runs that generation too.
    now_ms = int(time.time() * 1000)
    sidekiq8 = {"class": "HardWorker", "args": ["v8"], "jid": new_jid(), "queue": "py", "retry": True,
                "created_at": now_ms, "enqueued_at": now_ms}
    wk.lpush("queue:py", json.dumps(sidekiq8))

    worker = start_worker("-q", "py")
    wait_for(lambda: wk.llen("py:ran") == 4, "the four jobs to run")

    assert records(wk, "py:ran") == sorted([
        {"class": "HardWorker", "jid": hard, "args": [1, "two", {"three": [3.5, None, True]}]},
        {"class": "EmailWorker", "args": ["ada@example.com", "hello"]},
        {"class": "HardWorker", "jid": later, "args": ["later"]},
        {"class": "HardWorker", "jid": sidekiq8["jid"], "args": ["v8"]},
    ], key=json.dumps)
    assert email and worker.stop() == 0
    assert int(wk.get("stat:processed") or 0) == 4
    assert wk.llen("queue:py") == 0 and wk.zcard("schedule") == 0 and wk.zcard("dead") == 0


@pytest.mark.slow  # 7 to 15 s: CI runs it on CPython 3.11 only (see .ci/run)
def test_jobs_pushed_by_workerkit_run_in_a_sidekiq_process(
    wk: redis.Redis, start_sidekiq: Callable[..., ChildProcess]
) -> None:
    first = workerkit.push("RubyWorker", args=[7, "seven", {"nested": [1.5, None, False]}], queue="rb")
    later = workerkit.push("RubyWorker", args=["scheduled"], queue="rb", at=time.time() + 1)
    bulk = workerkit.push_bulk("RubyWorker", [["bulk", index] for index in range(3)], queue="rb")

    sidekiq = start_sidekiq("rb")
    wait_for(lambda: wk.llen("ruby:ran") == 5, "Sidekiq to run the five jobs")

    assert records(wk, "ruby:ran") == sorted([
        {"jid": first, "args": [7, "seven", {"nested": [1.5, None, False]}]},
        {"jid": later, "args": ["scheduled"]},
        *({"jid": jid, "args": ["bulk", index]} for index, jid in enumerate(bulk)),
    ], key=json.dumps)
    assert sidekiq.stop() == 0, sidekiq.output()
    assert int(wk.get("stat:processed") or 0) == 5  # Sidekiq flushes its counters on exit
    assert wk.llen("queue:rb") == 0 and wk.zcard("schedule") == 0 and wk.zcard("retry") == 0


def python_view(api: Api) -> dict[str, Any]:
    """What workerkit's API reports, shaped like ``sidekiq_view.rb report``."""
    stats = api.stats()

    def entry(job: JobView) -> dict[str, Any]:
        return {
            "jid": job.jid, "class": job.class_name, "args": job.args, "queue": job.queue,
            "retry_count": job.retry_count, "error_class": job.payload.get("error_class"),
            "error_message": job.payload.get("error_message"), "created_at": job.time("created_at"),
            "enqueued_at": job.time("enqueued_at"), "failed_at": job.payload.get("failed_at"), "at": job.score,
            "backtrace": job.backtrace or None,
        }

    def jobs(job_set: JobSet) -> list[dict[str, Any]]:
        return [entry(job) for job in api.sorted_set(job_set).page(per_page=500).jobs]

    processes = api.processes()
    now = time.time()
    return {
        "stats": {
            "processed": stats.processed, "failed": stats.failed, "enqueued": stats.enqueued,
            "retry_size": stats.retries, "dead_size": stats.dead, "scheduled_size": stats.scheduled,
            "processes_size": stats.processes, "workers_size": stats.busy,
        },
        "retries": jobs(JobSet.RETRIES),
        "dead": jobs(JobSet.DEAD),
        "scheduled": jobs(JobSet.SCHEDULED),
        "processes": [
            {"identity": p.identity, "hostname": p.hostname, "pid": p.info.get("pid"), "tag": p.tag,
             "concurrency": p.concurrency, "queues": p.queues, "busy": p.busy, "quiet": p.quiet,
             "started_at": p.started_at, "beat": p.beat}
            for p in processes
        ],
        "workers": [
            {"process": p.identity, "thread": w.thread, "queue": w.queue, "run_at": w.run_at, "jid": w.job.jid,
             "class": w.job.class_name, "args": w.job.args}
            for p in processes for w in p.work
        ],
        "now": now,
        "queues": [
            {"name": q.name, "size": q.size, "latency": q.latency,
             "jids": [job.jid for job in api.queue_jobs(q.name, per_page=500).jobs]}
            for q in api.queues()
        ],
    }


def comparable(view: dict[str, Any]) -> dict[str, Any]:
    """The view with time-varying readings taken out (the heartbeat's beat; a latency becomes whether it
    is zero, see :func:`enqueued_moments`); lists in a stable order."""
    result = dict(view)
    for name in ("retries", "dead", "scheduled"):
        result[name] = sorted(view[name], key=lambda job: job["jid"])
    result["processes"] = [{k: v for k, v in p.items() if k != "beat"} for p in view["processes"]]
    result["queues"] = [{**q, "latency": q["latency"] > 0} for q in view["queues"]]
    del result["now"]
    return result


def enqueued_moments(view: dict[str, Any]) -> dict[str, float]:
    """When the oldest job of each non-empty queue was enqueued, by the view's latency and clock."""
    return {q["name"]: view["now"] - q["latency"] for q in view["queues"] if q["latency"]}


def test_sidekiq_api_reports_exactly_what_workerkit_reports(
    wk: redis.Redis, sidekiq_view: View, start_worker: Callable[..., ChildProcess]
) -> None:
    api = Api()
    assert sk_jobs.DoomedWorker.retry == 1  # imported, so pushes by name take the registered class's options
    hard = [workerkit.push("HardWorker", args=[n], queue="py") for n in range(3)]
    flaky = [workerkit.push("FlakyWorker", args=[n], queue="py") for n in range(2)]
    doomed = workerkit.push("DoomedWorker", args=["x"], queue="py")
    scheduled = [workerkit.push("HardWorker", args=["tomorrow", n], queue="py", at=time.time() + 86400)
                 for n in range(2)]
    parked = workerkit.push_bulk("HardWorker", [["parked", n] for n in range(4)], queue="parked")
    slow = workerkit.push("SlowWorker", args=["release:slow"], queue="py")

    worker = start_worker("-q", "py", "-c", "4", "--tag", "compat")
    wait_for(lambda: wk.llen("py:ran") == 3 and wk.zcard("retry") == 2 and wk.zcard("dead") == 1,
             "the successes, retries and the death")
    wait_for(lambda: api.stats().busy == 1 and api.stats().processed == 7, "the heartbeat to show the slow job")

    ruby = sidekiq_view("report")
    python = python_view(api)
    assert comparable(ruby) == comparable(python)
    ruby_moments, python_moments = enqueued_moments(ruby), enqueued_moments(python)
    assert ruby_moments.keys() == python_moments.keys() == {"parked"}
    assert ruby_moments["parked"] == pytest.approx(python_moments["parked"], abs=0.05)  # two clock readings apart
    assert abs(ruby["processes"][0]["beat"] - python["processes"][0]["beat"]) < 30

    # And both are right, not merely equal.
    assert ruby["stats"] == {"processed": 7, "failed": 4, "enqueued": 4, "retry_size": 2, "dead_size": 1,
                             "scheduled_size": 2, "processes_size": 1, "workers_size": 1}
    assert sorted(job["jid"] for job in ruby["retries"]) == sorted(flaky)
    assert {(job["class"], job["error_class"], job["retry_count"]) for job in ruby["retries"]} == {
        ("FlakyWorker", "ValueError", 0)}
    assert all(job["backtrace"][-1].startswith("ValueError: python says no to") for job in ruby["retries"])
    [dead] = ruby["dead"]
    assert (dead["jid"], dead["error_class"], dead["error_message"], dead["retry_count"]) == (
        doomed, "RuntimeError", "doomed ('x',)", 1)
    assert sorted(job["jid"] for job in ruby["scheduled"]) == sorted(scheduled)
    [process] = ruby["processes"]
    assert (process["tag"], process["concurrency"], process["queues"], process["busy"]) == ("compat", 4, ["py"], 1)
    [busy] = ruby["workers"]
    assert (busy["jid"], busy["class"], busy["queue"], busy["args"]) == (slow, "SlowWorker", "py", ["release:slow"])
    # The slow job sits in workerkit's in-flight list, which Sidekiq never sees as a queue.
    assert [(q["name"], q["size"], q["jids"]) for q in ruby["queues"]] == [
        ("parked", 4, parked[::-1]), ("py", 0, [])]
    assert {name.decode() for name in wk.smembers("queues")} == {"parked", "py"}
    assert [key.decode() for key in wk.scan_iter("inflight:*")] == [f"inflight:{process['identity']}:py"]
    assert hard and wk.llen(f"inflight:{process['identity']}:py") == 1

    # Sidekiq's Web UI renders all of it: every page and every job's own page, with workerkit's backtraces.
    pages = sidekiq_view("web")
    assert {path: status for path, (status, _) in pages.items() if status != 200} == {}
    assert len([path for path in pages if path.startswith(("/retries/", "/morgue/", "/scheduled/"))]) == 5
    assert "SlowWorker" in pages["/busy"][1] and process["identity"] in pages["/busy"][1]
    assert all(jid in pages["/retries"][1] for jid in flaky) and doomed in pages["/morgue"][1]
    [flaky_page] = [html for path, (_, html) in pages.items() if path.startswith("/retries/") and flaky[0] in path]
    assert "ValueError: python says no to (0,)" in flaky_page and "sk_jobs.py" in flaky_page  # the backtrace
    assert all(jid in pages["/queues/parked"][1] for jid in parked)

    # Sidekiq's Quiet and Stop (its Web UI's buttons) work on a workerkit worker.
    assert sidekiq_view("quiet") == [process["identity"]]
    wait_for(lambda: sidekiq_view("report")["processes"][0]["quiet"], "Sidekiq to see the worker quiet")
    wk.rpush("release:slow", "go")
    wait_for(lambda: api.stats().processed == 8, "the slow job to finish")
    assert sidekiq_view("stop") == [process["identity"]]
    assert worker.popen.wait(30) == 0, worker.output()
    after = sidekiq_view("report")
    assert after["stats"]["processes_size"] == 0 and after["processes"] == [] and after["workers"] == []
    assert after["stats"]["processed"] == 8


def test_sidekiq_retries_a_job_that_failed_in_workerkit(
    wk: redis.Redis, sidekiq_view: View, start_worker: Callable[..., ChildProcess]
) -> None:
    flaky = workerkit.push("FlakyWorker", args=["again"], queue="py")
    worker = start_worker("-q", "py")
    wait_for(lambda: wk.zcard("retry") == 1, "the first failure")

    assert sidekiq_view("retry") == [flaky]
    wait_for(lambda: int(wk.get("stat:failed") or 0) == 2 and wk.zcard("retry") == 1, "workerkit to run it again")

    [entry] = sidekiq_view("report")["retries"]
    assert (entry["jid"], entry["retry_count"], entry["error_message"]) == (flaky, 0, "python says no to ('again',)")
    [raw] = wk.zrange("retry", 0, -1)
    assert "retried_at" in json.loads(raw)  # a second failure: Sidekiq's retry counted the attempt back
    assert worker.stop() == 0


def csrf_post(client: TestClient, path: str, data: dict[str, str]) -> Any:
    page = client.get(path)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token, f"no CSRF token on {path}"
    return client.post(path, data={"csrf_token": token.group(1), **data})


@pytest.mark.slow  # 7 to 15 s: CI runs it on CPython 3.11 only (see .ci/run)
def test_entries_written_by_sidekiq_are_shown_and_acted_on_by_workerkit(
    wk: redis.Redis, sidekiq_view: View, start_sidekiq: Callable[..., ChildProcess]
) -> None:
    api = Api()
    app = Starlette(routes=[Mount("/wk", dashboard(api, secret="test-secret"))])
    client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
    # Sidekiq's client merges a Ruby class's sidekiq_options into the payload; from Python, pass them.
    failing = workerkit.push("RubyFailer", args=[41], queue="rb", retry=3, backtrace=5)
    blocker = workerkit.push("RubyBlocker", args=["release:ruby"], queue="rb")
    in_an_hour, also_later = sidekiq_view(
        "push",
        *(json.dumps({"class": "RubyWorker", "args": [text], "queue": "rb", "at": time.time() + 3600})
          for text in ("in an hour", "also later")),
    )
    sidekiq = start_sidekiq("rb")
    wait_for(lambda: wk.zcard("retry") == 1, "RubyFailer to fail into Sidekiq's retry set")

    # Shown: Sidekiq's retry entry, with its compressed backtrace, and the Sidekiq process with its busy thread.
    [retry] = api.sorted_set(JobSet.RETRIES).page().jobs
    assert (retry.jid, retry.class_name, retry.queue, retry.retry_count) == (failing, "RubyFailer", "rb", 0)
    assert (retry.error_class, retry.error_message) == ("ArgumentError", "ruby says no to [41]")
    assert abs((retry.time("failed_at") or 0) - time.time()) < 60
    assert 1 <= len(retry.backtrace) <= 5 and "worker.rb" in retry.backtrace[0]
    # Sidekiq publishes its busy threads every 5 s: an earlier snapshot may still show RubyFailer running, and
    # it writes the busy count and the work apart, so one snapshot may hold the new work and the old count.
    [process] = wait_for(lambda: [p for p in api.processes() if [w.job.jid for w in p.work] == [blocker]
                                  and p.busy == 1],
                         "a heartbeat of the Sidekiq process busy with RubyBlocker alone")
    assert (process.queues, process.concurrency, process.busy) == (["rb"], 2, 1)
    [work] = process.work
    assert (work.queue, work.job.jid, work.job.class_name, work.job.args) == ("rb", blocker, "RubyBlocker",
                                                                               ["release:ruby"])
    retries_page = client.get("/wk/retries").text
    assert "RubyFailer" in retries_page and "ruby says no to [41]" in retries_page
    assert "RubyBlocker" in client.get("/wk/busy").text
    assert "worker.rb" in client.get(f"/wk/retries/{retry.key}").text

    # Acted on: kill from the dashboard; Sidekiq's DeadSet has it.
    response = csrf_post(client, f"/wk/retries/{retry.key}", {"action": "kill"})
    assert response.status_code == 303
    view = sidekiq_view("report")
    assert [job["jid"] for job in view["dead"]] == [failing] and view["retries"] == []

    # Retry now from the dead set: Sidekiq runs it again, and it fails into the retry set again.
    [dead] = api.sorted_set(JobSet.DEAD).page().jobs
    assert api.sorted_set(JobSet.DEAD).retry([dead]) == 1
    wait_for(lambda: wk.llen("ruby:failed") == 2 and wk.zcard("retry") == 1, "Sidekiq to run the retried job")
    [again] = api.sorted_set(JobSet.RETRIES).page().jobs
    assert again.jid == failing and again.time("retried_at") is not None and wk.zcard("dead") == 0

    # Sidekiq's scheduled jobs: run one now (Sidekiq runs it), delete the other.
    jobs = {job.jid: job for job in api.sorted_set(JobSet.SCHEDULED).page().jobs}
    assert sorted(jobs) == sorted([in_an_hour, also_later])
    assert api.sorted_set(JobSet.SCHEDULED).retry([jobs[in_an_hour]]) == 1
    assert api.sorted_set(JobSet.SCHEDULED).delete([jobs[also_later]]) == 1
    wait_for(lambda: wk.llen("ruby:ran") == 1, "Sidekiq to run the scheduled job")
    assert records(wk, "ruby:ran") == [{"jid": in_an_hour, "args": ["in an hour"]}]
    assert wk.zcard("schedule") == 0

    # Stop the Sidekiq process from workerkit (the dashboard's Stop button sends TERM the same way).
    wk.rpush("release:ruby", "go")
    api.signal(process.identity, "TERM")
    assert sidekiq.popen.wait(30) == 0, sidekiq.output()
    wait_for(lambda: not api.processes(), "the Sidekiq process to leave the registry")


@pytest.mark.parametrize("payload_format", ["sidekiq7", "sidekiq8"])
def test_sidekiq_reads_queue_latency_of_the_default_format(
    wk: redis.Redis, sidekiq_view: View, payload_format: str
) -> None:
    workerkit.configure(payload_format=payload_format)
    jid = workerkit.push("RubyWorker", args=[1], queue="default")
    [queue] = sidekiq_view("report")["queues"]
    assert queue["jids"] == [jid]
    if payload_format == "sidekiq7":
        assert 0 <= queue["latency"] < 30  # what Sidekiq 6 and 7 read
    else:
        assert queue["latency"] < -1e9  # Sidekiq 6.4 misreads milliseconds: why sidekiq7 is the default
