"""The user's side against a real server: every push form, strict arguments, bulk push, configuration."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import wk_jobs

import workerkit
from workerkit import config, registry
from workerkit.keys import Keys


def only_job(conn: redis.Redis, queue: str) -> dict[str, Any]:
    assert conn.llen(f"queue:{queue}") == 1
    payload: dict[str, Any] = json.loads(conn.lindex(f"queue:{queue}", 0))  # type: ignore[arg-type]
    return payload


def scheduled(conn: redis.Redis) -> list[tuple[dict[str, Any], float]]:
    return [(json.loads(member), score) for member, score in conn.zrange("schedule", 0, -1, withscores=True)]


def test_perform_async_writes_a_sidekiq_payload(wk: redis.Redis) -> None:
    before = time.time()
    jid = wk_jobs.Record.perform_async("k", 42)
    payload = only_job(wk, "default")
    assert set(payload) == {"class", "args", "jid", "queue", "retry", "created_at", "enqueued_at"}
    assert payload["class"] == "wk_jobs.Record"
    assert payload["args"] == ["k", 42]
    assert payload["jid"] == jid and len(jid) == 24 and int(jid, 16) >= 0
    assert (payload["queue"], payload["retry"]) == ("default", True)
    assert before <= payload["created_at"] <= payload["enqueued_at"] <= time.time()
    assert wk.smembers("queues") == {b"default"}


def test_class_options_and_set_override(wk: redis.Redis) -> None:
    wk_jobs.Critical.perform_async("k", 1)
    assert only_job(wk, "critical")["class"] == "wk_jobs.Critical"
    wk_jobs.Record.set(queue="low", retry=3, tags=["billing"]).perform_async("k", 2)
    payload = only_job(wk, "low")
    assert (payload["retry"], payload["tags"]) == (3, ["billing"])
    with pytest.raises(TypeError, match="unknown job option"):
        wk_jobs.Record.set(priority=3)


def test_perform_in_and_perform_at_schedule(wk: redis.Redis) -> None:
    before = time.time()
    wk_jobs.Record.perform_in(600, "k", "in")
    wk_jobs.Record.perform_in(timedelta(hours=1), "k", "td")
    moment = datetime(2100, 1, 1, tzinfo=UTC)
    wk_jobs.Record.perform_at(moment, "k", "dt")
    wk_jobs.Record.perform_at(moment.timestamp() + 5, "k", "epoch")
    after = time.time()
    entries = {payload["args"][1]: (payload, score) for payload, score in scheduled(wk)}
    assert before + 600 <= entries["in"][1] <= after + 600
    assert before + 3600 <= entries["td"][1] <= after + 3600
    assert entries["dt"][1] == moment.timestamp()
    assert entries["epoch"][1] == moment.timestamp() + 5
    assert all("enqueued_at" not in payload for payload, _ in entries.values())
    assert wk.llen("queue:default") == 0


def test_perform_at_in_the_past_pushes_now(wk: redis.Redis) -> None:
    wk_jobs.Record.perform_at(time.time() - 10, "k", "late")
    assert only_job(wk, "default")["args"] == ["k", "late"]
    assert wk.zcard("schedule") == 0


def test_job_function_forms(wk: redis.Redis) -> None:
    assert wk_jobs.send_mail("direct", "a@example.com") is None
    assert wk.lrange("direct", 0, -1) == [b"a@example.com"]
    wk_jobs.send_mail.delay("k", "b@example.com")
    payload = only_job(wk, "mailers")
    assert (payload["class"], payload["retry"], payload["args"]) == ("wk_jobs.send_mail", 5, ["k", "b@example.com"])
    wk_jobs.send_mail.delay_for(timedelta(minutes=5), "k", "c")
    wk_jobs.send_mail.delay_until(datetime(2100, 1, 1, tzinfo=UTC), "k", "d")
    assert sorted(payload["args"][1] for payload, _ in scheduled(wk)) == ["c", "d"]


def test_registry_knows_dotted_paths_and_aliases(wk: redis.Redis) -> None:
    assert registry.get("wk_jobs.Flaky") is wk_jobs.Flaky
    assert registry.get("flaky-alias") is wk_jobs.Flaky
    assert registry.get("wk_jobs.send_mail") is wk_jobs.send_mail.job_class
    assert registry.get("os.system") is None


def test_push_by_name(wk: redis.Redis) -> None:
    jid = workerkit.push("Ruby::Mailer", ["x"], queue="ruby", retry=False, tags=["t"])
    payload = only_job(wk, "ruby")
    assert (payload["jid"], payload["class"], payload["retry"], payload["tags"]) == (jid, "Ruby::Mailer", False, ["t"])
    workerkit.push("wk_jobs.Flaky", ["k"])
    assert only_job(wk, "default")["retry"] == 2
    workerkit.push("wk_jobs.Record", ["k", 1], at=time.time() + 100)
    assert len(scheduled(wk)) == 1


def test_push_bulk_keeps_order_and_checks_every_job_first(wk: redis.Redis) -> None:
    jids = workerkit.push_bulk(wk_jobs.Record, [("k", n) for n in range(2503)])
    assert len(set(jids)) == 2503
    oldest_first = [json.loads(raw) for raw in reversed(wk.lrange("queue:default", 0, -1))]
    assert [payload["args"][1] for payload in oldest_first] == list(range(2503))
    assert [payload["jid"] for payload in oldest_first] == jids
    with pytest.raises(TypeError, match=r"args\[1\]"):
        workerkit.push_bulk("wk_jobs.Record", [("k", 1), ("k", {1, 2})])
    assert wk.llen("queue:default") == 2503
    workerkit.push_bulk(wk_jobs.Record, [("k", 1), ("k", 2)], at=time.time() + 60, queue="later")
    assert [payload["queue"] for payload, _ in scheduled(wk)] == ["later", "later"]


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ((object(),), "args[0]"),
        ((1, {"when": datetime.now()}), "args[1]['when']"),
        (([1, (2, 3)],), "args[0][1]"),
        (({1: "a"},), "args[0]"),
        ((b"bytes",), "args[0]"),
        ((math.nan,), "args[0]"),
        (({"a": [{"b": {1, 2}}]},), "args[0]['a'][0]['b']"),
    ],
)
def test_non_json_arguments_fail_at_the_call_site(wk: redis.Redis, args: tuple[Any, ...], path: str) -> None:
    with pytest.raises(TypeError) as raised:
        wk_jobs.Record.perform_async(*args)
    assert f"job argument {path} " in str(raised.value)
    assert wk.dbsize() == 0


def test_client_middleware_can_change_or_drop(wk: redis.Redis) -> None:
    def stamp(payload: dict[str, Any]) -> dict[str, Any] | None:
        if payload["args"] == ["drop", 0]:
            return None
        payload["tenant"] = "acme"
        return payload

    config.configure(client_middleware=[stamp])
    wk_jobs.Record.perform_async("drop", 0)
    assert wk.llen("queue:default") == 0
    wk_jobs.Record.perform_async("keep", 1)
    assert only_job(wk, "default")["tenant"] == "acme"


def test_namespace_prefixes_every_key(wk: redis.Redis) -> None:
    config.configure(namespace="app")
    wk_jobs.Record.perform_async("k", 1)
    wk_jobs.Record.perform_in(60, "k", 2)
    assert sorted(wk.keys("*")) == [b"app:queue:default", b"app:queues", b"app:schedule"]
    assert config.keys() == Keys("app")


def test_redis_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKERKIT_REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert config.Config().redis_url == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6380/2")
    assert config.Config().redis_url == "redis://elsewhere:6380/2"
    monkeypatch.setenv("WORKERKIT_REDIS_URL", "unix:///run/redis.sock?db=3")
    assert config.Config().redis_url == "unix:///run/redis.sock?db=3"
    kwargs = config.new_redis_client(config.Config().redis_url).connection_pool.connection_kwargs
    assert (kwargs["path"], kwargs["db"]) == ("/run/redis.sock", 3)
    tls = config.new_redis_client("rediss://h:6390/0").connection_pool.connection_class
    assert tls.__name__ == "SSLConnection"


def test_a_filter_finds_what_a_full_scan_finds_whatever_the_text(wk: redis.Redis) -> None:
    """``matching`` lets Redis skip entries (ZSCAN MATCH) only when the text reads the same in raw JSON; for
    every needle, hostile ones included, it finds exactly the jobs a scan of every entry finds."""
    from workerkit.api import Api
    from workerkit.sets import JobSet
    from workerkit.views import JobView

    entries = [
        {"class": "app.Needle", "args": [1], "jid": "a" * 24},
        {"class": "app.Other", "args": ["has NEEDLE inside", {"k": "v"}], "jid": "b" * 24},
        {"class": "app.Other", "args": ["*[?]*", "a\\\\b", 'q"t'], "jid": "c" * 24},
        {"class": "app.Other", "args": ["é", "\u2028", 1e20, None, True], "jid": "d" * 24,
         "error_message": 'boom\\nline two: said "hi"', "error_class": "KeyError"},
        {"class": "app.Other", "args": [], "jid": "e" * 24, "queue": "needle-only-in-the-queue"},
    ]
    for number, entry in enumerate(entries):
        wk.zadd("retry", {json.dumps(entry, ensure_ascii=number % 2 == 1): float(number)})  # "\\u00e9" or "é"
    entries_set = Api(wk, Keys()).sorted_set(JobSet.RETRIES)
    every = [JobView.parse(raw, score) for raw, score in wk.zrange("retry", 0, -1, withscores=True)]
    needles = ("needle", "NEEDLE", "Needle", "*", "[?]", "*[?]*", "é", "a\\\\b", 'q"', "1e+20", "null", "none", "true",
               "k", "v}", "boom", "line two", '"hi', "KeyError", "a" * 24, "aaaa", "", "x" * 200, "\u2028", "?")
    for text in needles:
        expected = sorted(job.jid for job in every if job.matches(text.lower()))
        assert sorted(job.jid for job in entries_set.matching(text)) == expected, text
