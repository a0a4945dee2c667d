"""The heartbeat: every few seconds, write this process's entry in the ``processes`` registry (Sidekiq's
layout: ``<identity>`` HASH with info/busy/beat/quiet/rss, ``<identity>:work`` HASH of running jobs and its
Sidekiq 6 twin ``<identity>:workers``), re-assert its in-flight lists in the ``inflight_lists`` registry, and
pick up a remote signal from ``<identity>-signals``.

Everything written expires :data:`TTL_BEATS` beats after the last one, so a process killed with -9 is seen
dead within seconds (``--heartbeat`` sets the interval). The work hash reports only what the worker owns:
the queue, the payload exactly as fetched, and the start time, never a dict a job or middleware can change.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

from workerkit import __version__
from workerkit.keys import Keys
from workerkit.payload import encode
from workerkit.ticker import Ticker

TTL_BEATS = 4
"""A heartbeat expires this many intervals after it was written: a process is declared dead after it missed
three beats in a row (and the sweep, one interval later at most, recovers its jobs)."""


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job one thread runs, as the heartbeat reports it."""

    queue: str
    raw: bytes
    """The payload exactly as fetched (valid JSON: only decodable jobs run)."""
    run_at: float
    jid: str = ""
    task: asyncio.Task[Any] | None = None
    """The task of an ``async def`` job (None: a plain job in a thread)."""

    def to_json(self) -> str:
        """The work hash's value: ``{"queue", "payload", "run_at"}``, the payload embedded as fetched."""
        return f'{{"queue":{encode(self.queue)},"payload":{self.raw.decode()},"run_at":{self.run_at!r}}}'


def new_identity() -> str:
    """``host:pid:hex6``, like Sidekiq (``DYNO`` wins over the hostname, as on Heroku)."""
    host = os.environ.get("DYNO") or socket.gethostname()
    return f"{host}:{os.getpid()}:{os.urandom(3).hex()}"


@dataclass
class ProcessInfo:
    """The static part of a heartbeat (Sidekiq's ``info`` JSON)."""

    identity: str
    queues: list[str]
    concurrency: int
    tag: str = ""
    labels: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        """The ``info`` field."""
        return json.dumps({
            "hostname": self.identity.rsplit(":", 2)[0],
            "started_at": self.started_at,
            "pid": os.getpid(),
            "tag": self.tag,
            "concurrency": self.concurrency,
            "queues": self.queues,
            "labels": self.labels,
            "identity": self.identity,
            "version": __version__,
        })


class Heartbeat:
    """Beats every ``interval`` seconds in its own thread; acts on remote TSTP/TERM."""

    def __init__(
        self,
        conn: redis.Redis,
        keys: Keys,
        info: ProcessInfo,
        running: Callable[[], Mapping[int, RunningJob]],
        inflight_lists: Mapping[Any, Any],
        quiet: Callable[[], bool],
        on_signal: Callable[[str], None],
        interval: float = 2.0,
        on_cancel: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.info = info
        self.running = running
        self.inflight_lists = dict(inflight_lists)
        self.quiet = quiet
        self.on_signal = on_signal
        self.on_cancel = on_cancel
        """Called with the running jobs a cancellation flag asks to stop (``workerkit.cancellation``)."""
        self.interval = interval
        self.ttl_ms = max(1000, int(interval * TTL_BEATS * 1000))
        self.last_beat = 0.0
        """When the last beat landed (``time.monotonic()``), 0 before the first."""
        self._info_json = info.to_json()
        self._process = psutil.Process()
        self._ticker = Ticker("heartbeat", self.beat, interval, first_delay=interval)

    def fresh(self) -> bool:
        """Whether the last beat landed recently enough that this process is surely still listed as alive."""
        return time.monotonic() - self.last_beat < self.interval * (TTL_BEATS - 1)

    def beat(self) -> None:
        """Write the heartbeat and the in-flight registry now, and act on one pending remote signal."""
        identity = self.info.identity
        started = time.monotonic()
        running = list(self.running().items())
        work: dict[Any, Any] = {f"{tid:x}": job.to_json() for tid, job in running}
        jids = [job.jid for _, job in running if job.jid]
        pipe = self.conn.pipeline(transaction=True)
        pipe.sadd(self.keys.processes, identity)
        fields: dict[Any, Any] = {
            "info": self._info_json,
            "busy": len(work),
            "beat": time.time(),
            "quiet": "true" if self.quiet() else "false",
            "rss": self._process.memory_info().rss // 1024,
            "concurrency": self.info.concurrency,
        }
        pipe.hset(self.keys.process(identity), mapping=fields)
        pipe.pexpire(self.keys.process(identity), self.ttl_ms)
        for work_key in self.keys.work_keys(identity):
            pipe.delete(work_key)
            if work:
                pipe.hset(work_key, mapping=work)
                pipe.pexpire(work_key, self.ttl_ms)
        if self.inflight_lists:
            pipe.hset(self.keys.inflight_lists, mapping=self.inflight_lists)
        if jids and self.on_cancel is not None:
            pipe.mget([self.keys.cancel(jid) for jid in jids])
        pipe.rpop(self.keys.signals(identity))
        replies = pipe.execute()
        signal = replies[-1]
        self.last_beat = started
        if jids and self.on_cancel is not None:
            flagged = [jid for jid, flag in zip(jids, replies[-2], strict=True) if flag is not None]
            if flagged:
                self.on_cancel(flagged)
        if signal:
            self.on_signal(signal.decode("utf-8", "replace") if isinstance(signal, bytes) else str(signal))

    def clear(self) -> None:
        """Remove this process from the registry (on a clean exit)."""
        identity = self.info.identity
        pipe = self.conn.pipeline(transaction=True)
        pipe.srem(self.keys.processes, identity)
        pipe.delete(self.keys.process(identity), *self.keys.work_keys(identity), self.keys.signals(identity))
        pipe.execute()

    def start(self) -> None:
        """Start beating in the background (call :meth:`beat` once first, so the process is registered)."""
        self._ticker.start()

    def close(self) -> None:
        """Stop the heartbeat thread."""
        self._ticker.close()
