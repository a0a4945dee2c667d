"""Read and change job state: the one place the dashboard (and the CLI) go through.

``Api(conn, keys)`` wraps a Redis client and a key namespace (both default to the configured ones).
Reads: :meth:`Api.stats`, :meth:`Api.history`, :meth:`Api.server_info`, :meth:`Api.queues`,
:meth:`Api.queue_jobs`, :meth:`Api.set_jobs`, :meth:`Api.find`, :meth:`Api.processes`, :meth:`Api.periodic_jobs`.
Changes: run/retry now, delete and kill jobs in the schedule, retry and dead sets (one at a time or all
matching a filter), delete a queued job, clear a queue, quiet or stop a worker process, enqueue a
periodic job now. Moving a job out of a sorted set is one Lua script whose ZREM decides, so a job the
poller takes at the same moment is never run twice or lost.
"""

from __future__ import annotations

import base64
import enum
import json
import math
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import redis

from workerkit import config
from workerkit.client import build_payload
from workerkit.compat import to_seconds
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, stamped
from workerkit.payload import Payload, PayloadError, decode, encode
from workerkit.periodic import next_tick

MAX_HISTORY_DAYS = 180
"""The longest history :meth:`Api.history` returns (a bound, so a request cannot ask for years)."""
MAX_PER_PAGE = 500
_CHUNK = 500
Rows = list[tuple[bytes, float]]


class JobSet(enum.Enum):
    """The three sorted sets of jobs, by the name the dashboard's URLs use."""

    SCHEDULED = "scheduled"
    RETRIES = "retries"
    DEAD = "dead"

    def key(self, keys: Keys) -> str:
        """The Redis key of this set."""
        return {JobSet.SCHEDULED: keys.schedule, JobSet.RETRIES: keys.retry, JobSet.DEAD: keys.dead}[self]


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _float(value: Any, default: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


@dataclass(frozen=True)
class JobView:
    """One job as stored: its raw JSON, the decoded payload and, in a sorted set, its score."""

    raw: str
    payload: Payload
    score: float | None = None
    readable: bool = True

    @classmethod
    def parse(cls, raw: bytes | str, score: float | None = None) -> JobView:
        """Decode ``raw``; a payload that is not a job is kept, shown as unreadable, never dropped."""
        text = _text(raw)
        try:
            return cls(text, decode(text), score)
        except PayloadError as exc:
            return cls(text, {"class": "(unreadable payload)", "args": [], "error_message": str(exc)}, score, False)

    @property
    def jid(self) -> str:
        return str(self.payload.get("jid", ""))

    @property
    def class_name(self) -> str:
        return str(self.payload.get("class", ""))

    @property
    def args(self) -> list[Any]:
        args = self.payload.get("args", [])
        return args if isinstance(args, list) else [args]

    @property
    def args_text(self) -> str:
        """The arguments as JSON text (shown escaped by the templates)."""
        return ", ".join(json.dumps(arg, ensure_ascii=False) for arg in self.args)

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
    def key(self) -> str:
        """Identifies the job inside its sorted set: ``<score>-<jid>``."""
        return f"{self.score!r}-{self.jid}"

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
        """Whether ``needle`` (lower case) occurs in the class, args, error or jid."""
        haystack = " ".join((self.class_name, self.args_text, self.error_class, self.error_message, self.jid))
        return needle in haystack.lower()


@dataclass(frozen=True)
class Page:
    """One page of jobs and where it sits in the whole list."""

    jobs: list[JobView]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
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
        return int(_float(self.info.get("concurrency")))

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
        return _float(self.info.get("started_at"))

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

    @property
    def args_text(self) -> str:
        return ", ".join(json.dumps(arg, ensure_ascii=False) for arg in self.args)


class NotFound(LookupError):
    """The job, queue, process or periodic job named is not there (any more)."""


def parse_key(key: str) -> tuple[float, str]:
    """Split a ``<score>-<jid>`` job key; raise NotFound when it is malformed."""
    score_text, _, jid = key.rpartition("-")
    score = _float(score_text, math.nan)
    if not jid or math.isnan(score):
        raise NotFound(f"no job {key!r}")
    return score, jid


class Api:
    """Job state in one Redis under one namespace."""

    def __init__(self, conn: redis.Redis | None = None, keys: Keys | None = None) -> None:
        self.conn = conn if conn is not None else config.redis_client()
        self.keys = keys if keys is not None else config.keys()
        self.lifecycle = Lifecycle(self.conn, self.keys)

    # Overview -----------------------------------------------------------------------------------
    def queue_names(self) -> list[str]:
        return sorted(_text(name) for name in self.conn.smembers(self.keys.queues))

    def stats(self) -> Stats:
        """Processed and failed totals, and how many jobs sit where right now."""
        names = self.queue_names()
        processes = self.processes()
        pipe = self.conn.pipeline(transaction=False)
        pipe.get(self.keys.stat("processed"))
        pipe.get(self.keys.stat("failed"))
        pipe.zcard(self.keys.schedule)
        pipe.zcard(self.keys.retry)
        pipe.zcard(self.keys.dead)
        for name in names:
            pipe.llen(self.keys.queue(name))
        processed, failed, scheduled, retries, dead, *sizes = pipe.execute()
        return Stats(
            processed=int(processed or 0),
            failed=int(failed or 0),
            busy=sum(process.busy for process in processes),
            processes=len(processes),
            enqueued=sum(sizes),
            scheduled=scheduled,
            retries=retries,
            dead=dead,
            time=time.time(),
        )

    def history(self, days: int = 30, today: date | None = None) -> list[DayStats]:
        """Processed and failed per day for the last ``days`` days (at most 180), oldest first."""
        days = max(1, min(days, MAX_HISTORY_DAYS))
        last = today or datetime.now(UTC).date()
        dates = [last - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
        processed = self.conn.mget([self.keys.stat("processed", day) for day in dates])
        failed = self.conn.mget([self.keys.stat("failed", day) for day in dates])
        return [
            DayStats(day, int(done or 0), int(fail or 0))
            for day, done, fail in zip(dates, processed, failed, strict=True)
        ]

    def server_info(self) -> dict[str, str]:
        """Name and version of the server, memory in use, connected clients and uptime."""
        info: dict[str, Any] = self.conn.info()
        valkey = info.get("valkey_version")
        days = int(_float(info.get("uptime_in_seconds"))) // 86400
        return {
            "server": f"Valkey {valkey}" if valkey else f"Redis {info.get('redis_version', '?')}",
            "memory": str(info.get("used_memory_human", "?")),
            "clients": str(info.get("connected_clients", "?")),
            "uptime": f"{days} day{'s' if days != 1 else ''}",
        }

    # Queues -------------------------------------------------------------------------------------
    def queues(self) -> list[QueueView]:
        """Every known queue with its size and latency."""
        names = self.queue_names()
        pipe = self.conn.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.keys.queue(name))
            pipe.lindex(self.keys.queue(name), -1)
        replies = pipe.execute()
        now = time.time()
        views = []
        for index, name in enumerate(names):
            size, oldest = replies[2 * index], replies[2 * index + 1]
            enqueued = JobView.parse(oldest).time("enqueued_at") if oldest else None
            views.append(QueueView(name, size, max(0.0, now - enqueued) if enqueued else 0.0))
        return views

    def queue_jobs(self, name: str, page: int = 1, per_page: int = 25) -> Page:
        """A page of the queue's jobs, newest first."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        page = max(1, page)
        start = (page - 1) * per_page
        key = self.keys.queue(name)
        pipe = self.conn.pipeline(transaction=False)
        pipe.llen(key)
        pipe.lrange(key, start, start + per_page - 1)
        total, raws = pipe.execute()
        return Page([JobView.parse(raw) for raw in raws], page, per_page, total)

    def delete_queued(self, name: str, jid: str) -> bool:
        """Remove the job ``jid`` from queue ``name``; False if it is not there (already taken)."""
        key = self.keys.queue(name)
        for start in range(0, int(self.conn.llen(key)), _CHUNK):
            for raw in self.conn.lrange(key, start, start + _CHUNK - 1):
                if JobView.parse(raw).jid == jid:
                    return bool(self.conn.lrem(key, 1, cast(str, raw)))
        return False

    def clear_queue(self, name: str) -> int:
        """Delete every job in queue ``name`` and forget the queue; returns how many jobs went."""
        pipe = self.conn.pipeline(transaction=True)
        pipe.llen(self.keys.queue(name))
        pipe.unlink(self.keys.queue(name))
        pipe.srem(self.keys.queues, name)
        size: int = pipe.execute()[0]
        return size

    # Scheduled, retries, dead ---------------------------------------------------------------------
    def set_size(self, job_set: JobSet) -> int:
        return int(self.conn.zcard(job_set.key(self.keys)))

    def set_jobs(
        self,
        job_set: JobSet,
        page: int = 1,
        per_page: int = 25,
        *,
        sort: str = "at",
        descending: bool = False,
        text: str = "",
    ) -> Page:
        """A page of the set, sorted by time (``at``), ``class`` or ``queue``, filtered by ``text``."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        page = max(1, page)
        start = (page - 1) * per_page
        if sort == "at" and not text:
            key = job_set.key(self.keys)
            total = self.set_size(job_set)
            rows = cast(Rows, self.conn.zrange(key, start, start + per_page - 1, desc=descending, withscores=True))
            return Page([JobView.parse(raw, score) for raw, score in rows], page, per_page, total)
        jobs = list(self.matching(job_set, text))
        sort_key = {"class": lambda job: job.class_name, "queue": lambda job: job.queue}.get(
            sort, lambda job: job.score or 0.0
        )
        jobs.sort(key=sort_key, reverse=descending)
        return Page(jobs[start : start + per_page], page, per_page, len(jobs))

    def matching(self, job_set: JobSet, text: str = "") -> Iterator[JobView]:
        """Every job of the set whose class, args, error or jid contains ``text`` (any case)."""
        needle = text.lower()
        for entry in self.conn.zscan_iter(job_set.key(self.keys), count=_CHUNK):
            raw, score = cast(tuple[bytes, float], entry)
            job = JobView.parse(raw, score)
            if job.matches(needle):
                yield job

    def find(self, job_set: JobSet, key: str) -> JobView:
        """The job with key ``<score>-<jid>`` in the set; raise NotFound when it is gone."""
        score, jid = parse_key(key)
        rows = cast(Rows, self.conn.zrange(job_set.key(self.keys), score, score, byscore=True, withscores=True))
        for raw, row_score in rows:
            job = JobView.parse(raw, row_score)
            if job.jid == jid:
                return job
        raise NotFound(f"no job {key!r} in {job_set.value}")

    def find_all(self, job_set: JobSet, keys: Iterable[str]) -> list[JobView]:
        """The jobs with these keys that are still in the set (the others are skipped)."""
        found = []
        for key in keys:
            try:
                found.append(self.find(job_set, key))
            except NotFound:
                continue
        return found

    def run_now(self, job_set: JobSet, jobs: Iterable[JobView]) -> int:
        """Move jobs from the set to their queues now (scheduled: run now; retries and dead: retry now)."""
        moved = 0
        now = time.time()
        for job in jobs:
            original = job.quarantined_bytes()
            if original is not None:  # an entry that was not a job: its exact bytes go back, to be tried again
                moved += int(self.lifecycle.move_entry(job_set.key(self.keys), job.raw, original, "queue", job.queue))
                continue
            payload = stamped(dict(job.payload), now)
            if job_set is not JobSet.SCHEDULED and isinstance(payload.get("retry_count"), int):
                payload["retry_count"] -= 1  # the next failure counts this attempt again
            moved += self._move_one(job_set, job, payload, "queue", job.queue)
        return moved

    def kill(self, job_set: JobSet, jobs: Iterable[JobView]) -> int:
        """Move jobs from the scheduled or retry set to the dead set."""
        now = time.time()
        return sum(self._move_one(job_set, job, dict(job.payload), "dead", now) for job in jobs)

    def _move_one(self, job_set: JobSet, job: JobView, payload: Payload, to: str, where: str | float) -> int:
        new_raw = encode(payload) if job.readable else job.raw
        return int(self.lifecycle.move_entry(job_set.key(self.keys), job.raw, new_raw, to, where))

    def delete(self, job_set: JobSet, jobs: Iterable[JobView]) -> int:
        """Delete jobs from the set; returns how many were still there."""
        return self.lifecycle.delete_entries(job_set.key(self.keys), [job.raw for job in jobs])

    def run_all(self, job_set: JobSet, text: str = "") -> int:
        """Run now / retry now every job of the set that matches ``text``."""
        return self.run_now(job_set, list(self.matching(job_set, text)))

    def kill_all(self, job_set: JobSet, text: str = "") -> int:
        """Send to the dead set every job of the set that matches ``text``."""
        return self.kill(job_set, list(self.matching(job_set, text)))

    def delete_all(self, job_set: JobSet, text: str = "") -> int:
        """Delete every job of the set that matches ``text`` (all of them when ``text`` is empty)."""
        if not text:
            pipe = self.conn.pipeline(transaction=True)
            pipe.zcard(job_set.key(self.keys))
            pipe.unlink(job_set.key(self.keys))
            size: int = pipe.execute()[0]
            return size
        return self.delete(job_set, list(self.matching(job_set, text)))

    # Processes ----------------------------------------------------------------------------------
    def processes(self) -> list[ProcessView]:
        """Every worker process with a live heartbeat, and the jobs its threads run, by identity."""
        identities = sorted(_text(name) for name in self.conn.smembers(self.keys.processes))
        pipe = self.conn.pipeline(transaction=False)
        for identity in identities:
            pipe.hgetall(self.keys.process(identity))
            for work_key in self.keys.work_keys(identity):  # Sidekiq 6 processes write only the second
                pipe.hgetall(work_key)
        replies = pipe.execute()
        views = []
        for index, identity in enumerate(identities):
            beat, work, legacy_work = replies[3 * index : 3 * index + 3]
            if not beat:
                continue  # the heartbeat expired: the process is gone
            views.append(self._process_view(identity, beat, work or legacy_work))
        return views

    @staticmethod
    def _process_view(identity: str, beat: dict[bytes, bytes], work: dict[bytes, bytes]) -> ProcessView:
        try:
            info = json.loads(beat.get(b"info", b"{}"))
        except ValueError:
            info = {}
        running = []
        for thread, raw in sorted(work.items()):
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            job_payload = entry.get("payload", {})
            job_raw = job_payload if isinstance(job_payload, str) else json.dumps(job_payload)
            running.append(
                Work(_text(thread), str(entry.get("queue", "")), JobView.parse(job_raw), _float(entry.get("run_at")))
            )
        return ProcessView(
            identity=identity,
            info=info if isinstance(info, dict) else {},
            busy=int(_float(beat.get(b"busy"))),
            beat=_float(beat.get(b"beat")),
            quiet=_text(beat.get(b"quiet", b"false")) == "true",
            rss_kb=int(_float(beat.get(b"rss"))),
            work=running,
        )

    def signal(self, identity: str, signal: str) -> None:
        """Ask a worker process to quiet (``TSTP``) or stop (``TERM``); its heartbeat picks it up."""
        if signal not in ("TSTP", "TERM"):
            raise ValueError(f"unknown signal {signal!r}; use TSTP (quiet) or TERM (stop)")
        if not self.conn.sismember(self.keys.processes, identity):
            raise NotFound(f"no process {identity!r}")
        pipe = self.conn.pipeline(transaction=True)
        pipe.lpush(self.keys.signals(identity), signal)
        pipe.expire(self.keys.signals(identity), 60)
        pipe.execute()

    # Periodic -----------------------------------------------------------------------------------
    def periodic_jobs(self, now: float | None = None) -> list[PeriodicView]:
        """Every periodic job the workers published, with its last and next run, by name."""
        current = time.time() if now is None else now
        views = []
        for name, raw in sorted(self.conn.hgetall(self.keys.periodic).items()):
            try:
                record = json.loads(raw)
                upcoming: float | None = next_tick(record["cron"], record.get("tz", "UTC"), current)
            except (ValueError, KeyError, TypeError):
                continue
            except Exception:  # croniter raises its own errors for expressions a newer version accepts
                upcoming = None
            last = record.get("last_run")
            views.append(
                PeriodicView(
                    name=_text(name),
                    cron=str(record["cron"]),
                    class_name=str(record.get("class", "")),
                    args=record.get("args", []) if isinstance(record.get("args"), list) else [],
                    queue=str(record.get("queue", "default")),
                    tz=str(record.get("tz", "UTC")),
                    last_run=_float(last) if last is not None else None,
                    next_run=upcoming,
                    retry=record["retry"] if isinstance(record.get("retry"), (bool, int)) else True,
                )
            )
        return views

    def forget_periodic(self, name: str) -> bool:
        """Drop the periodic job's record (a job still declared in the workers' code reappears within a second)."""
        return bool(self.conn.hdel(self.keys.periodic, name))

    def enqueue_periodic(self, name: str) -> str:
        """Push one run of the periodic job ``name`` now, outside its schedule; returns the jid."""
        for view in self.periodic_jobs():
            if view.name == name:
                payload = build_payload(view.class_name, view.args,
                                        {"queue": view.queue, "retry": view.retry, "periodic": name})
                self.lifecycle.enqueue(view.queue, [encode(stamped(payload, time.time()))])
                return str(payload["jid"])
        raise NotFound(f"no periodic job {name!r}")
