"""Read and change job state: the one place the dashboard (and the CLI) go through.

``Api(conn, keys)`` wraps a Redis client and a key namespace (both default to the configured ones).
Reads: :meth:`Api.stats`, :meth:`Api.history`, :meth:`Api.server_info`, :meth:`Api.queues`,
:meth:`Api.queue_jobs`, :meth:`Api.processes`, :meth:`Api.periodic_jobs`; the read models are in
``workerkit.views``. Changes: delete a queued job, clear a queue, quiet or stop a worker process, enqueue a
periodic job now; the scheduled, retry and dead sets are resources of their own (:meth:`Api.sorted_set`,
``workerkit.sets``: page, find, retry, kill, delete). Every change of a job's place goes through
``workerkit.lifecycle``.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import redis

from workerkit import cancellation, config
from workerkit.client import build_payload
from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, stamped
from workerkit.metrics_query import MetricsReader
from workerkit.payload import encode
from workerkit.periodic import next_tick
from workerkit.sets import CHUNK, MAX_PER_PAGE, JobSet, NotFound, SortedJobSet
from workerkit.views import (
    DayStats,
    JobView,
    Page,
    PeriodicView,
    ProcessView,
    QueueView,
    Stats,
    Work,
    as_float,
    as_text,
)

MAX_HISTORY_DAYS = 180
"""The longest history :meth:`Api.history` returns (a bound, so a request cannot ask for years)."""

class Api:
    """Job state in one Redis under one namespace."""

    def __init__(self, conn: redis.Redis | None = None, keys: Keys | None = None) -> None:
        self.conn = conn if conn is not None else config.redis_client()
        self.keys = keys if keys is not None else config.keys()
        self.lifecycle = Lifecycle(self.conn, self.keys)

    # Overview -----------------------------------------------------------------------------------
    def queue_names(self) -> list[str]:
        return sorted(as_text(name) for name in self.conn.smembers(self.keys.queues))

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
        days = int(as_float(info.get("uptime_in_seconds"))) // 86400
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
        for start in range(0, int(self.conn.llen(key)), CHUNK):
            for raw in self.conn.lrange(key, start, start + CHUNK - 1):
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
    def sorted_set(self, which: JobSet) -> SortedJobSet:
        """The scheduled, retry or dead set, to page through and act on (``workerkit.sets``)."""
        return SortedJobSet(self.conn, self.keys, which, self.lifecycle)

    def metrics(self) -> MetricsReader:
        """The per-class metrics and queue latencies the workers record (``workerkit.metrics_query``)."""
        return MetricsReader(self.conn, self.keys)

    # Processes ----------------------------------------------------------------------------------
    def processes(self) -> list[ProcessView]:
        """Every worker process with a live heartbeat, and the jobs its threads run, by identity."""
        identities = sorted(as_text(name) for name in self.conn.smembers(self.keys.processes))
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
                Work(as_text(thread), str(entry.get("queue", "")), JobView.parse(job_raw),
                     as_float(entry.get("run_at")))
            )
        return ProcessView(
            identity=identity,
            info=info if isinstance(info, dict) else {},
            busy=int(as_float(beat.get(b"busy"))),
            beat=as_float(beat.get(b"beat")),
            quiet=as_text(beat.get(b"quiet", b"false")) == "true",
            rss_kb=int(as_float(beat.get(b"rss"))),
            work=running,
        )

    def cancel(self, jid: str) -> cancellation.Found:
        """Cancel a job (``workerkit.cancellation``): taken out of its queue or set, or, when a worker holds it,
        asked to stop; where it was found."""
        return cancellation.cancel(jid, self.conn, self.keys)

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
                cron, tz = str(record["cron"]), str(record.get("tz", "UTC"))
            except (ValueError, KeyError, TypeError):
                continue
            upcoming: float | None
            try:
                upcoming = next_tick(cron, tz, current)
            except Exception:  # croniter's errors: a schedule that never fires, or one a newer version accepts
                upcoming = None
            last = record.get("last_run")
            views.append(
                PeriodicView(
                    name=as_text(name),
                    cron=cron,
                    class_name=str(record.get("class", "")),
                    args=record.get("args", []) if isinstance(record.get("args"), list) else [],
                    queue=str(record.get("queue", "default")),
                    tz=tz,
                    last_run=as_float(last) if last is not None else None,
                    next_run=upcoming,
                    retry=record["retry"] if isinstance(record.get("retry"), (bool, int)) else True,
                    error=str(record["error"]) if record.get("error") else None,
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
