"""The heartbeat: every few seconds, write this process's entry in the ``processes`` registry (Sidekiq's
layout: ``<identity>`` HASH with info/busy/beat/quiet/rss, ``<identity>:work`` HASH of running jobs and its
Sidekiq 6 twin ``<identity>:workers``, all EXPIRE 60), pick up a remote signal from ``<identity>-signals``,
and sweep the orphans of dead processes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil
import redis

from workerkit import __version__
from workerkit.connection import REDIS_DOWN, Backoff
from workerkit.fetch import recover_orphans
from workerkit.guard import ErrorGuard
from workerkit.keys import Keys
from workerkit.payload import Payload

log = logging.getLogger("workerkit")

HEARTBEAT_TTL = 60


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
    """Beats every ``interval`` seconds in its own thread; acts on remote TSTP/TERM; sweeps orphans."""

    def __init__(
        self,
        conn: redis.Redis,
        keys: Keys,
        info: ProcessInfo,
        running: Callable[[], dict[int, tuple[str, Payload, float]]],
        quiet: Callable[[], bool],
        on_signal: Callable[[str], None],
        interval: float = 5.0,
        sweep_interval: float = 15.0,
    ) -> None:
        self.conn = conn
        self.keys = keys
        self.info = info
        self.running = running
        self.quiet = quiet
        self.on_signal = on_signal
        self.interval = interval
        self.sweep_interval = sweep_interval
        self.stop = threading.Event()
        self._info_json = info.to_json()
        self._process = psutil.Process()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._next_sweep = 0.0

    def beat(self) -> None:
        """Write the heartbeat now and act on one pending remote signal."""
        identity = self.info.identity
        running = self.running()
        work: dict[Any, Any] = {
            f"{tid:x}": json.dumps({"queue": queue, "payload": payload, "run_at": run_at})
            for tid, (queue, payload, run_at) in list(running.items())
        }
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
        pipe.expire(self.keys.process(identity), HEARTBEAT_TTL)
        for work_key in self.keys.work_keys(identity):
            pipe.delete(work_key)
            if work:
                pipe.hset(work_key, mapping=work)
                pipe.expire(work_key, HEARTBEAT_TTL)
        pipe.rpop(self.keys.signals(identity))
        signal = pipe.execute()[-1]
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
        self._thread.start()

    def close(self) -> None:
        """Stop the heartbeat thread."""
        self.stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        backoff = Backoff("sending the heartbeat")
        guard = ErrorGuard("heartbeat")
        while not self.stop.wait(self.interval if not backoff.delay else 0):
            try:
                self.beat()
                if time.monotonic() >= self._next_sweep:
                    self._next_sweep = time.monotonic() + self.sweep_interval
                    recover_orphans(self.conn, self.keys, self.sweep_interval * 0.9)
            except REDIS_DOWN as exc:
                backoff.failed(exc, self.stop)
            except Exception as exc:
                guard.failed(exc, self.stop)
            else:
                backoff.succeeded()
                guard.succeeded()
