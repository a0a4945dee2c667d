"""Read models of job state: what the dashboard, the CLI and ``workerkit.api`` show, built from Redis
replies. Pure data and parsing; nothing here talks to Redis."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from workerkit.compat import to_seconds
from workerkit.payload import Payload, PayloadError, decode


def as_text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def as_float(value: Any, default: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


_ARG_TEXT = json.JSONEncoder(ensure_ascii=False).encode
"""``json.dumps(arg, ensure_ascii=False)``, with the encoder made once (``json.dumps`` with an option makes
one per call)."""


def _args(payload: Payload) -> list[Any]:
    args = payload.get("args", [])
    return args if isinstance(args, list) else [args]


def payload_matches(payload: Payload, needle: str) -> bool:
    """Whether ``needle`` (lower case) occurs in a job's searched text: its class, its arguments written as
    JSON text (``JobView.args_text``), its error class and message and its jid, each as ``str()`` of the
    field ("" when absent), joined by spaces, in lower case. What a filter of the dashboard means; the fields
    without the arguments are looked at first, alone: most matches are found there without writing the
    arguments as text."""
    fields = [str(payload.get(name, "")) for name in ("class", "error_class", "error_message", "jid")]
    for text in fields:  # a loop, not any(): this runs for every entry a filter decodes
        if needle in text.lower():
            return True
    fields.insert(1, _args_text(_args(payload)))
    return needle in " ".join(fields).lower()


def _args_text(args: list[Any]) -> str:
    """``args`` as JSON text, joined by ", " (the list written whole, without its brackets: one call)."""
    return _ARG_TEXT(args)[1:-1]


@dataclass(frozen=True)
class JobView:
    """One job as stored: its raw JSON, the decoded payload and, in a sorted set, its score."""

    raw: str
    payload: Payload
    score: float | None = None
    readable: bool = True
    stored: bytes | None = None
    """The bytes read from Redis, when the job came from them (``raw`` is their text, which replaces what is
    not UTF-8)."""

    @classmethod
    def parse(cls, raw: bytes | str, score: float | None = None) -> JobView:
        """Decode ``raw``; a payload that is not a job is kept, shown as unreadable, never dropped. Bytes that
        are not text in a JSON encoding are not a job, as the worker finds too: read as a job with U+FFFD
        in their place, a move that writes the job again would lose them."""
        text = as_text(raw)
        stored = raw if isinstance(raw, bytes) else None
        try:
            return cls(text, decode(raw), score, stored=stored)
        except PayloadError as exc:
            unreadable = {"class": "(unreadable payload)", "args": [], "error_message": str(exc)}
            return cls(text, unreadable, score, False, stored)

    @property
    def member(self) -> bytes | str:
        """The entry exactly as Redis holds it, which is what a command that removes it must name."""
        return self.stored if self.stored is not None else self.raw

    @property
    def jid(self) -> str:
        return str(self.payload.get("jid", ""))

    @property
    def class_name(self) -> str:
        return str(self.payload.get("class", ""))

    @property
    def args(self) -> list[Any]:
        return _args(self.payload)

    @property
    def args_text(self) -> str:
        """The arguments as JSON text (shown escaped by the templates)."""
        return _args_text(self.args)

    @property
    def queue(self) -> str:
        return str(self.payload.get("queue", "default"))

    @property
    def error_class(self) -> str:
        return str(self.payload.get("error_class", ""))

    @property
    def error_message(self) -> str:
        return str(self.payload.get("error_message", ""))

    def quarantined_bytes(self) -> bytes | None:
        """For a dead-set entry of bytes that were not a job (``workerkit.InvalidPayload``): those bytes."""
        original = self.payload.get("raw_base64")
        if self.class_name != "workerkit.InvalidPayload" or not isinstance(original, str):
            return None
        try:
            return base64.b64decode(original, validate=True)
        except ValueError:
            return None

    @property
    def retry_count(self) -> int | None:
        count = self.payload.get("retry_count")
        return count if isinstance(count, int) else None

    @property
    def name(self) -> str:
        """What tells the entry from the others of its score: its jid, or for an entry without one (bytes that
        are not a job) ``raw-`` and a digest of its bytes."""
        if self.jid:
            return self.jid
        member = self.member
        data = member if isinstance(member, bytes) else member.encode("utf-8", "surrogatepass")
        return "raw-" + hashlib.sha256(data).hexdigest()[:24]

    @property
    def key(self) -> str:
        """Identifies the job inside its sorted set: ``<score>-<name>``."""
        return f"{self.score!r}-{self.name}"

    @property
    def log_lines(self) -> list[str]:
        """The last lines the job logged in its failed run (``error_log``, see ``workerkit.job_logs``)."""
        lines = self.payload.get("error_log")
        return [str(line) for line in lines] if isinstance(lines, list) else []

    def time(self, name: str) -> float | None:
        """A timestamp field (``created_at``, ``enqueued_at``, ``failed_at``, ...) as epoch seconds."""
        return to_seconds(self.payload.get(name))  # Sidekiq 8 writes milliseconds

    @property
    def backtrace(self) -> list[str]:
        """The error backtrace lines: a list, a string, or Sidekiq's base64(zlib(JSON)) form."""
        trace = self.payload.get("error_backtrace")
        if isinstance(trace, list):
            return [str(line) for line in trace]
        if not isinstance(trace, str) or not trace:
            return []
        try:
            # Ruby's Base64.encode64 breaks its output into lines of 60 characters.
            lines = json.loads(zlib.decompress(base64.b64decode("".join(trace.split()), validate=True)))
        except (ValueError, zlib.error):
            return trace.splitlines()
        return [str(line) for line in lines] if isinstance(lines, list) else trace.splitlines()

    def matches(self, needle: str) -> bool:
        """Whether ``needle`` (lower case) occurs in the class, args, error or jid, joined by spaces
        (:func:`payload_matches`)."""
        return payload_matches(self.payload, needle)


@dataclass(frozen=True)
class Page:
    """One page of jobs and where it sits in the whole list."""

    jobs: list[JobView]
    number: int
    per_page: int
    total: int
    sorted_within: bool = False
    """The jobs are the page at this place in time order, sorted within the page (a set too big to sort
    whole, see ``workerkit.sets.SORT_LIMIT``)."""
    counted: bool = True
    """False when a filter's matches were counted only so far (``workerkit.sets.DECODE_BUDGET``): ``total``
    is how many were found by then, and there may be more, on later pages."""

    @property
    def pages(self) -> int:
        """How many pages ``total`` fills (at least that many when not ``counted``)."""
        return max(1, math.ceil(self.total / self.per_page))


@dataclass(frozen=True)
class Stats:
    """The dashboard's headline numbers."""

    processed: int
    failed: int
    busy: int
    processes: int
    enqueued: int
    scheduled: int
    retries: int
    dead: int
    time: float

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class DayStats:
    day: date
    processed: int
    failed: int


@dataclass(frozen=True)
class QueueView:
    name: str
    size: int
    latency: float
    """Seconds since the oldest job in the queue was enqueued (0 when empty)."""


@dataclass(frozen=True)
class Work:
    """A job one thread of a worker process is running."""

    thread: str
    queue: str
    job: JobView
    run_at: float


@dataclass(frozen=True)
class ProcessView:
    """A live worker process from its heartbeat."""

    identity: str
    info: dict[str, Any]
    busy: int
    beat: float
    quiet: bool
    rss_kb: int
    work: list[Work] = field(default_factory=list)

    @property
    def hostname(self) -> str:
        return str(self.info.get("hostname", self.identity.split(":")[0]))

    @property
    def pid(self) -> str:
        return str(self.info.get("pid", ""))

    @property
    def tag(self) -> str:
        return str(self.info.get("tag") or "")

    @property
    def concurrency(self) -> int:
        return int(as_float(self.info.get("concurrency")))

    @property
    def queues(self) -> list[str]:
        queues = self.info.get("queues", [])
        return [str(queue) for queue in queues] if isinstance(queues, list) else []

    @property
    def labels(self) -> list[str]:
        labels = self.info.get("labels", [])
        return [str(label) for label in labels] if isinstance(labels, list) else []

    @property
    def started_at(self) -> float:
        return as_float(self.info.get("started_at"))

    @property
    def version(self) -> str:
        return str(self.info.get("version", ""))


@dataclass(frozen=True)
class PeriodicView:
    """A periodic job as the workers published it, with its next tick."""

    name: str
    cron: str
    class_name: str
    args: list[Any]
    queue: str
    tz: str
    last_run: float | None
    next_run: float | None
    retry: bool | int = True
    error: str | None = None
    """Why the schedule cannot fire, when a worker found it cannot (``0 0 30 2 *``)."""

    @property
    def args_text(self) -> str:
        return ", ".join(json.dumps(arg, ensure_ascii=False) for arg in self.args)
