"""OpenTelemetry tracing for workerkit jobs (``pip install 'procman-workerkit[otel]'``).

- :func:`inject`, a client middleware: each push starts a ``send <queue>`` PRODUCER span (a child of the
  span the push happens in) and writes its W3C trace context (``traceparent``, ``tracestate``) into the
  payload's ``otel`` field.
- :func:`trace_jobs`, a server middleware: each run is a ``process <queue>`` CONSUMER span, a child of the
  producer's span and linked to it, so a push and the job's runs (retries included) form one trace; a job
  that raises ends its span with the exception recorded and an error status. ``async def`` jobs get its
  ``async def`` variant (``around_async_jobs``).
- Attributes follow OpenTelemetry's messaging conventions: ``messaging.system`` (``workerkit``),
  ``messaging.destination.name`` (the queue), ``messaging.message.id`` (the jid),
  ``messaging.operation.type`` and ``.name`` (``send`` / ``process``), and ``messaging.workerkit.job_class``
  and, on a retry, ``messaging.workerkit.retry_count``.
- JSON log lines logged inside a span carry its ``trace_id`` and ``span_id``.

:func:`instrument` does all three; the tracer provider and its exporter are the application's to set up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

from workerkit import __version__, config, logs
from workerkit.invoke import ASYNC_VARIANT
from workerkit.payload import Payload
from workerkit.protocols import JobLike

FIELD = "otel"
"""The payload field holding the trace context."""
SYSTEM = "workerkit"

_tracer = trace.get_tracer("workerkit", __version__)


def _attributes(payload: Payload, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.destination.name": str(payload.get("queue", "default")),
        "messaging.message.id": str(payload.get("jid", "")),
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.workerkit.job_class": str(payload.get("class", "")),
    }
    retries = payload.get("retry_count")
    if operation == "process" and isinstance(retries, int) and not isinstance(retries, bool):
        attributes["messaging.workerkit.retry_count"] = retries + 1
    return attributes


def inject(payload: dict[str, Any]) -> dict[str, Any]:
    """Client middleware: a ``send <queue>`` span, its trace context written into ``payload["otel"]``."""
    carrier: dict[str, str] = {}
    with _tracer.start_as_current_span(f"send {payload.get('queue', 'default')}", kind=SpanKind.PRODUCER,
                                       attributes=_attributes(payload, "send")):
        propagate.inject(carrier)
    if carrier:
        payload[FIELD] = carrier
    return payload


@contextmanager
def _consumer_span(payload: Payload) -> Iterator[Span]:
    carrier = payload.get(FIELD)
    headers = {key: value for key, value in carrier.items() if isinstance(key, str) and isinstance(value, str)} \
        if isinstance(carrier, dict) else {}
    parent = propagate.extract(headers)
    producer = trace.get_current_span(parent).get_span_context()
    with _tracer.start_as_current_span(f"process {payload.get('queue', 'default')}", context=parent,
                                       kind=SpanKind.CONSUMER, links=[Link(producer)] if producer.is_valid else [],
                                       attributes=_attributes(payload, "process")) as span:
        yield span


def trace_jobs(job: JobLike, payload: dict[str, Any], call_next: Callable[[], None]) -> None:
    """Server middleware: the job runs inside a ``process <queue>`` span (see the module)."""
    with _consumer_span(payload):
        call_next()


async def _trace_async_jobs(job: JobLike, payload: dict[str, Any], call_next: Callable[[], Awaitable[None]]) -> None:
    with _consumer_span(payload):
        await call_next()


setattr(trace_jobs, ASYNC_VARIANT, _trace_async_jobs)  # its variant around async jobs (workerkit.invoke)


def log_ids() -> dict[str, str]:
    """The current span's ``trace_id`` and ``span_id`` (hex), or nothing outside a recording span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def instrument() -> None:
    """Trace every push and every job run of this process, and put trace ids in JSON log lines (once)."""
    settings = config.current()
    config.configure(
        client_middleware=[*[step for step in settings.client_middleware if step is not inject], inject],
        server_middleware=[trace_jobs, *[step for step in settings.server_middleware if step is not trace_jobs]],
    )
    if log_ids not in logs.json_fields:
        logs.json_fields.append(log_ids)
