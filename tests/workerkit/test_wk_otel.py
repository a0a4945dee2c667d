"""``workerkit.otel`` with the OpenTelemetry SDK's in-memory exporter: a push inside a span and the job's runs
(through the real fetch, runner and middleware chain, on a real server) form one trace, with the messaging
attributes; failures, retries, async jobs, JSON log ids and a hostile trace context."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import redis

pytest.importorskip("opentelemetry.sdk")

import wk_async_jobs
import wk_jobs
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from workerkit import otel
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, Outcome
from workerkit.logs import JsonFormatter
from workerkit.payload import encode, new_payload
from workerkit.runner import Runner

KEYS = Keys()
EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider() -> None:
    """One SDK provider for the module (OpenTelemetry allows one global provider per process)."""
    sdk = TracerProvider()
    sdk.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(sdk)


@pytest.fixture
def traced(wk: redis.Redis) -> Iterator[redis.Redis]:
    otel.instrument()
    otel.instrument()  # idempotent
    EXPORTER.clear()
    yield wk
    EXPORTER.clear()


def run_one(conn: redis.Redis) -> Outcome | None:
    [unit] = ReliableFetch(conn, KEYS, "host:1:abcdef", [QueueSpec("default")]).fetch(1)
    return Runner(threading.Event()).process(unit)


def spans() -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in EXPORTER.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def test_a_push_and_its_run_form_one_trace(traced: redis.Redis) -> None:
    with trace.get_tracer("app").start_as_current_span("checkout"):
        jid = wk_jobs.Record.perform_async("runs", 1)
    payload = json.loads(traced.lindex(KEYS.queue("default"), 0) or b"{}")
    assert set(payload["otel"]) == {"traceparent"}
    assert run_one(traced) is Outcome.DONE and traced.lrange("runs", 0, -1) == [b"1"]

    found = spans()
    [checkout], [send], [process] = found["checkout"], found["send default"], found["process default"]
    assert checkout.context is not None and send.context is not None and process.context is not None
    assert {checkout.context.trace_id, send.context.trace_id, process.context.trace_id} == {checkout.context.trace_id}
    assert send.parent is not None and send.parent.span_id == checkout.context.span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert [link.context.span_id for link in process.links] == [send.context.span_id]
    assert (send.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert dict(process.attributes or {}) == {
        "messaging.system": "workerkit", "messaging.destination.name": "default", "messaging.message.id": jid,
        "messaging.operation.type": "process", "messaging.operation.name": "process",
        "messaging.workerkit.job_class": "wk_jobs.Record",
    }
    assert dict(send.attributes or {})["messaging.operation.type"] == "send"


def test_failures_are_recorded_and_retries_join_the_same_trace(traced: redis.Redis) -> None:
    wk_jobs.Flaky.perform_async("flaky")
    assert run_one(traced) is Outcome.RETRY
    Lifecycle(traced, KEYS).promote(KEYS.retry, time.time() + 1)
    assert run_one(traced) is Outcome.RETRY
    [send] = spans()["send default"]
    first, second = spans()["process default"]
    assert send.context is not None
    for run in (first, second):
        assert run.context is not None and run.context.trace_id == send.context.trace_id
        assert run.status.status_code is StatusCode.ERROR
        assert [event.name for event in run.events] == ["exception"]
    assert "messaging.workerkit.retry_count" not in dict(first.attributes or {})
    assert dict(second.attributes or {})["messaging.workerkit.retry_count"] == 1


def test_an_async_job_runs_in_its_consumer_span(traced: redis.Redis) -> None:
    wk_async_jobs.AsyncRecord.perform_async("async-runs", 7)
    [unit] = ReliableFetch(traced, KEYS, "host:1:abcdef", [QueueSpec("default")]).fetch(1)

    async def run() -> Outcome | None:
        return await Runner(threading.Event()).aprocess(unit)

    assert asyncio.run(run()) is Outcome.DONE and traced.lrange("async-runs", 0, -1) == [b"7"]
    [send], [process] = spans()["send default"], spans()["process default"]
    assert send.context is not None and process.parent is not None
    assert process.parent.span_id == send.context.span_id


def test_json_log_lines_carry_the_trace_and_span_ids(traced: redis.Redis) -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "inside", None, None)
    with trace.get_tracer("app").start_as_current_span("work") as span:
        inside = json.loads(formatter.format(record))
    outside = json.loads(formatter.format(record))
    context = span.get_span_context()
    assert (inside["trace_id"], inside["span_id"]) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
    assert "trace_id" not in outside and "span_id" not in outside


@pytest.mark.parametrize("carrier", ["not a dict", {"traceparent": 5, "7": ["x"]}, {"traceparent": "00-zz-zz-01"},
                                     {"traceparent": "x" * 100_000}, {}])
def test_a_hostile_trace_context_starts_a_trace_of_its_own(traced: redis.Redis, carrier: object) -> None:
    payload = new_payload("wk_jobs.Record", ["runs", 2], "default", True, created_at=time.time())
    payload.update(enqueued_at=time.time(), otel=carrier)
    traced.lpush(KEYS.queue("default"), encode(payload))
    assert run_one(traced) is Outcome.DONE
    [process] = spans()["process default"]
    assert process.parent is None and list(process.links) == []
