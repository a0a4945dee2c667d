"""Every Redis key name workerkit uses, in one place.

The layout follows Sidekiq's, so a Ruby Sidekiq client and Sidekiq's own API can share a Redis with
workerkit. Reliable fetch adds in-flight lists of workerkit's own (``inflight:<identity>:<queue>``)
that Sidekiq never reads. An optional namespace prefix (``myapp:``) lets several apps share one Redis.
On a Redis Cluster the prefix is a hash tag (``{myapp}:``, or ``{workerkit}:`` without a namespace), so every
key of a namespace lives in one hash slot and every Lua script and transaction stays atomic; several
namespaces spread over the cluster's primaries. Nothing outside this module spells a key.
``docs/redis-model.md`` documents each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources

DEFAULT_HASH_TAG = "workerkit"
"""The hash tag of the keys on a Redis Cluster when no namespace is configured."""


@dataclass(frozen=True)
class Keys:
    """Key names under one optional namespace."""

    namespace: str = ""
    hash_tag: bool = False
    """Prefix every key with the namespace as a Redis Cluster hash tag (see the module's docstring)."""
    _prefix: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if self.hash_tag and ("{" in self.namespace or "}" in self.namespace):
            raise ValueError(f"namespace {self.namespace!r}: on a Redis Cluster the namespace becomes the keys' "
                             "hash tag, so it cannot contain '{' or '}'")
        prefix = f"{{{self.namespace or DEFAULT_HASH_TAG}}}:" if self.hash_tag else (
            f"{self.namespace}:" if self.namespace else "")
        object.__setattr__(self, "_prefix", prefix)

    def _k(self, name: str) -> str:
        return self._prefix + name

    @property
    def prefix(self) -> str:
        """What every key starts with (the namespace, hash-tagged on a Cluster): the Lua scripts that reach
        keys they are not given (a batch's parent and callbacks) spell them from it."""
        return self._prefix

    # Queues -------------------------------------------------------------------------------------
    @property
    def queues(self) -> str:
        """SET of every queue name ever pushed to."""
        return self._k("queues")

    def queue(self, name: str) -> str:
        """LIST of job payloads; clients LPUSH, workers take from the right (oldest first)."""
        return self._k(f"queue:{name}")

    # Sorted sets ------------------------------------------------------------------------------------
    @property
    def schedule(self) -> str:
        """ZSET of scheduled jobs, scored by the epoch second they are due."""
        return self._k("schedule")

    @property
    def retry(self) -> str:
        """ZSET of failed jobs waiting for their next attempt, scored by that time."""
        return self._k("retry")

    @property
    def dead(self) -> str:
        """ZSET of jobs that exhausted their retries, scored by the time they died."""
        return self._k("dead")

    # Processes ----------------------------------------------------------------------------------
    @property
    def processes(self) -> str:
        """SET of live worker process identities."""
        return self._k("processes")

    def process(self, identity: str) -> str:
        """HASH of one process's heartbeat (info, busy, beat, quiet, rss, ...); expires a few beats after the last."""
        return self._k(identity)

    def work(self, identity: str) -> str:
        """HASH thread-id -> JSON {queue, payload, run_at} of jobs the process is running (payload as fetched)."""
        return self._k(f"{identity}:work")

    def work_keys(self, identity: str) -> tuple[str, str]:
        """The work hash under Sidekiq 7+'s name (``:work``) and Sidekiq 6's (``:workers``); the heartbeat
        writes both so either version's API sees the busy threads."""
        return self.work(identity), self._k(f"{identity}:workers")

    def signals(self, identity: str) -> str:
        """LIST of signals (TSTP, TERM) sent to a process from the dashboard or API."""
        return self._k(f"{identity}-signals")

    def inflight(self, identity: str, queue: str) -> str:
        """LIST of jobs fetched by ``identity`` from ``queue`` and not yet acknowledged (reliable fetch)."""
        return self._k(f"inflight:{identity}:{queue}")

    @property
    def inflight_lists(self) -> str:
        """HASH in-flight list key -> JSON {identity, queue}: the registry of every in-flight list."""
        return self._k("inflight_lists")

    @property
    def process_cleanup_lock(self) -> str:
        """STRING lock (SET NX PX, holding the sweeper's token) held for a whole orphan sweep and for one
        interval after it, so sweeps never overlap and run about once per interval; not Sidekiq 7's
        ``process_cleanup``, which its Web UI holds for 60 s at a time and would starve the sweep."""
        return self._k("orphan_sweep")

    # Stats --------------------------------------------------------------------------------------
    def stat(self, name: str, day: date | None = None) -> str:
        """Counter ``stat:processed`` / ``stat:failed``, or its daily twin ``stat:NAME:YYYY-MM-DD``."""
        suffix = f":{day.isoformat()}" if day else ""
        return self._k(f"stat:{name}{suffix}")

    def result(self, jid: str) -> str:
        """STRING JSON result record of a job that keeps its result (``workerkit.results``), with a TTL."""
        return self._k(f"result:{jid}")

    def task(self, jid: str) -> str:
        """STRING JSON record of a Django task enqueued with ``workerkit.contrib.django.WorkerkitBackend``
        (what to rebuild its ``TaskResult`` from), with a TTL."""
        return self._k(f"task:{jid}")

    def unique(self, digest: str) -> str:
        """STRING lock of a unique job (``workerkit.unique``): the jid of the job holding it, with a TTL."""
        return self._k(f"unique:{digest}")

    def cancel(self, jid: str) -> str:
        """STRING flag asking the worker that holds job ``jid`` to stop it (``workerkit.cancellation``), 1 h TTL."""
        return self._k(f"cancel:{jid}")

    def limiter(self, name: str, kind: str) -> str:
        """The state of a rate limiter (``workerkit.limiter``): ``concurrent`` and ``window`` a ZSET, ``bucket``
        a HASH, each expiring when unused."""
        return self._k(f"limiter:{kind}:{name}")

    # Batches (workerkit.batch) ------------------------------------------------------------------
    def batch(self, bid: str) -> str:
        """HASH of batch ``bid``: description, open blocks, total, parent, children, callbacks
        (``cb:<event>`` payloads and ``cbq:<event>`` queues) and event times; its SETs ``<key>:pending``,
        ``:failed`` and ``:dead`` hold members (jids; ``b:<bid>`` for child batches). Expires 30 days after
        its last block opened (``workerkit.batch.TTL``), as do its sets."""
        return self._k(f"batch:{bid}")

    def batch_pending(self, bid: str) -> str:
        """SET of the members of batch ``bid`` that have not succeeded yet."""
        return self._k(f"batch:{bid}:pending")

    def batch_failed(self, bid: str) -> str:
        """SET of the pending members of batch ``bid`` that failed at least once."""
        return self._k(f"batch:{bid}:failed")

    def batch_dead(self, bid: str) -> str:
        """SET of the pending members of batch ``bid`` that died."""
        return self._k(f"batch:{bid}:dead")

    @property
    def batches(self) -> str:
        """ZSET bid -> creation time of the batches kept (the dashboard's list), trimmed as they expire."""
        return self._k("batches")

    # Dashboard --------------------------------------------------------------------------------------
    def bulk_action(self, set_name: str) -> str:
        """STRING JSON: how far the dashboard's last bulk action on a sorted set got (``workerkit.web.bulk``);
        it lapses a minute after a running action's last step, ten minutes after it ended."""
        return self._k(f"web:bulk:{set_name}")

    def bulk_lock(self, set_name: str) -> str:
        """STRING SET NX while a bulk action on a sorted set runs: its token (one at a time per set)."""
        return self._k(f"web:bulk:{set_name}:lock")

    # Periodic jobs ------------------------------------------------------------------------------
    def periodic_tick(self, name: str, tick_epoch: int) -> str:
        """STRING set NX once per (periodic job, tick) so each tick is enqueued exactly once."""
        return self._k(f"periodic:{name}:{tick_epoch}")

    @property
    def periodic(self) -> str:
        """HASH name -> JSON {cron, class, args, queue, tz, last_run} of registered periodic jobs."""
        return self._k("periodic")

    # Metrics (workerkit.metrics) ----------------------------------------------------------------
    @property
    def metrics_classes(self) -> str:
        """ZSET job class -> the last minute (epoch minute) it has metrics for: the index of the classes with
        metrics, trimmed of those idle for longer than the metrics are kept."""
        return self._k("metrics:classes")

    @property
    def metrics_totals(self) -> str:
        """HASH ``<class>|n`` / ``|f`` / ``|us`` / ``|b<i>`` -> runs, failures, microseconds, histogram bucket
        counts since metrics began (what Prometheus' counters and histograms read); never expires."""
        return self._k("metrics:totals")

    def metrics_minute(self, minute: int) -> str:
        """HASH of one minute (epoch minute) with the same fields as :attr:`metrics_totals`, kept 72 h."""
        return self._k(f"metrics:m:{minute}")

    def metrics_hour(self, hour: int) -> str:
        """HASH of one hour (epoch hour: epoch minute // 60), the sum of its minutes' hashes, written with them
        (so a window of days reads hours, not thousands of minutes), kept 73 h."""
        return self._k(f"metrics:h:{hour}")

    def latency_minute(self, minute: int) -> str:
        """HASH queue -> the longest queue latency (ms) a worker saw in one minute (epoch minute), kept 72 h."""
        return self._k(f"metrics:latency:{minute}")


def _source(name: str) -> str:
    return (resources.files("workerkit") / "scripts" / f"{name}.lua").read_text(encoding="utf-8")


@cache
def script(name: str) -> str:
    """The source of the Lua script ``workerkit/scripts/<name>.lua`` (each documents its KEYS and ARGV),
    after the shared functions of ``scripts/lib.lua``."""
    return _source("lib") + "\n" + _source(name)
