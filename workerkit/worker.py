"""A worker process: a dispatcher that fetches jobs in batches, a pool of threads that run them, the
heartbeat, the scheduler, and the signals.

- TERM / INT: stop fetching, let running jobs finish within ``timeout`` seconds, push every unfinished or
  not yet started job back to its queue, leave the process registry, exit 0.
- TSTP: quiet: fetch no more jobs (those already fetched still run); the dashboard can send TSTP and TERM.
- ``async def`` jobs: when the worker knows any, an event loop beside the threads awaits up to
  ``async_concurrency`` of them at once (``workerkit.async_lane``); the dispatcher hands each fetched job to
  the threads or the loop by its class, and the fetch counts the free places of both.
- Redis down at start or mid-run: wait and reconnect with backoff; jobs stay in Redis meanwhile.

Liveness: the heartbeat beats every ``heartbeat_interval`` seconds (2 by default) and expires four beats
later; every process runs the orphan sweep every ``sweep_interval`` seconds (2 by default, one sweep at a
time across the cluster), so the jobs of a process killed with -9 are back in their queues within about
``4 * heartbeat_interval + sweep_interval`` seconds (10 s by default).
"""

from __future__ import annotations

import gc
import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

import redis

from workerkit import __version__, cancellation, config, job_logs, registry, topology
from workerkit.async_lane import AsyncLane
from workerkit.connection import REDIS_DOWN, Backoff, single_try, until_done
from workerkit.fetch import ACK_FLUSH_SECONDS, QueueSpec, ReliableFetch, UnitOfWork
from workerkit.heartbeat import Heartbeat, ProcessInfo, new_identity
from workerkit.invoke import is_async_job
from workerkit.payload import PayloadError
from workerkit.recovery import Sweeper
from workerkit.runner import Runner
from workerkit.scheduler import Scheduler
from workerkit.ticker import Ticker
from workerkit.timelimit import Watchdog

log = logging.getLogger("workerkit")

MAX_PREFETCH = 500
WATCH_SECONDS = 0.5
"""How long one BLMOVE of an idle thread blocks before it checks whether it should still watch (and which
queue)."""
CATCH_MEMORY = 0.98
"""How much of a queue's count of recent catches each new watch keeps (about the last hundred catches)."""
BACKLOG_SECONDS = 0.002
"""A job caught this long after it was pushed (its ``enqueued_at``) shows that jobs wait for the watchers:
the worker leaves the idle mode and fetches in batches until a fetch comes back short. A producer whose
clock is behind makes this fire too often, which costs a round trip per catch, nothing more."""
UNWATCHED_POLL_SECONDS = 1.0
"""How often an idle worker with more queues than spare threads fetches from the queues nobody watches."""
ASYNC_SHARE_WEIGHT = 0.01
"""How much each fetched job moves the estimate of the share of async jobs among those fetched."""


@dataclass(frozen=True)
class Watch:
    """Tells an idle thread to block on queue ``index`` and run the job it catches."""

    index: int


@dataclass
class WorkerSettings:
    """How a worker process runs (the ``workerkit worker`` options)."""

    queues: list[QueueSpec] = field(default_factory=lambda: [QueueSpec("default")])
    concurrency: int = 10
    timeout: float = 25.0
    prefetch: int | None = None
    """Jobs fetched ahead of free threads; None adapts it to the jobs' run time (about 10 ms of work, at
    most 500, 1 for jobs of 10 ms or more); 0 fetches only for idle threads."""
    name: str | None = None
    tag: str = ""
    heartbeat_interval: float = 2.0
    sweep_interval: float = 2.0
    poll_interval: float = 1.0
    job_timeout: float | None = None
    """The time limit of a job whose payload sets none (``--job-timeout``); None: no limit."""
    async_concurrency: int = 500
    """How many ``async def`` jobs may await at once on the worker's event loop (``--async-concurrency``)."""
    metrics: bool = True
    """Record per-class metrics and queue latency (``workerkit.metrics``; ``--no-metrics`` turns them off)."""
    job_logs: bool = True
    """Keep a failed job's last log lines with its payload (``workerkit.job_logs``; ``--no-job-logs``: not)."""


class Worker:
    """One worker process. ``run()`` blocks until TERM/INT (or a remote TERM) and returns the exit code."""

    def __init__(self, settings: WorkerSettings, conn: redis.Redis | None = None) -> None:
        self.settings = settings
        # No silent command retries: a fetch whose reply was lost must surface, so it can be reconciled.
        self.conn = conn or config.new_redis_client(retry=single_try())
        self.keys = config.keys()
        identity = new_identity()
        if settings.name:
            identity = f"{settings.name}:{identity.rsplit(':', 2)[1]}:{identity.rsplit(':', 1)[1]}"
        self.identity = identity
        self.stopping = threading.Event()
        self.quiet = threading.Event()
        self.fetch = ReliableFetch(self.conn, self.keys, identity, settings.queues, settings.metrics)
        self.watchdog = Watchdog()
        self.runner = Runner(self.stopping, self.watchdog, settings.job_timeout)
        self.lane = (AsyncLane(self.runner, settings.async_concurrency, self._async_done)
                     if any(is_async_job(job_class) for job_class in registry.classes()) else None)
        """The event loop of the async jobs; None when this worker knows none (the threads get everything)."""
        self.async_outstanding = 0
        """Jobs handed to the event loop and not yet finished (part of ``outstanding``)."""
        self.async_share = 0.1
        """The share of async jobs among those fetched lately: how much of the loop's room a fetch fills."""
        self.work: queue.SimpleQueue[UnitOfWork | Watch | None] = queue.SimpleQueue()
        self.cond = threading.Condition()
        self.outstanding = 0
        """Jobs fetched or caught and not yet finished, less those in ``finished`` (change it under ``cond``;
        read :meth:`_outstanding`)."""
        self.finished: deque[None] = deque()
        """One entry per job a thread finished that ``outstanding`` does not count off yet: a thread appends
        without taking ``cond`` (``deque.append`` is atomic), the dispatcher folds them in under it."""
        self.average_seconds = 0.0
        self.dispatcher_waiting = False
        self.dispatcher_idle = False
        """The dispatcher waits in :meth:`_wait_for_jobs` (any job's end wakes it) rather than for room."""
        self.dispatcher_until = 0.0
        """``time.monotonic()`` when the dispatcher's current wait ends (see :meth:`_watch_again`)."""
        self.idle_mode = False
        """The last fetch found the queues empty, and no caught job has waited since (:meth:`_note_backlog`):
        every spare thread watches them (see :meth:`_wait_for_jobs`)."""
        self.watchers = [0] * len(settings.queues)
        """Threads watching (or sent to watch) each queue, by index (change it under ``cond``)."""
        self.catches = [0.0] * len(settings.queues)
        """Recent catches of each queue's watchers, fading (:data:`CATCH_MEMORY`): where watchers are needed."""
        self.polled = 0.0
        """``time.monotonic()`` of the last fetch for threads (see :data:`UNWATCHED_POLL_SECONDS`)."""
        self.suspect = False
        """A Redis call that moves jobs failed: jobs may sit in flight unknown to us until reconciled."""
        self.heartbeat = Heartbeat(
            self.conn, self.keys,
            ProcessInfo(identity, [spec.name for spec in settings.queues],
                        settings.concurrency + (settings.async_concurrency if self.lane else 0), settings.tag),
            running=lambda: self.runner.running, inflight_lists=self.fetch.registry_entries(),
            quiet=self.quiet.is_set, on_signal=self.remote_signal, interval=settings.heartbeat_interval,
            on_cancel=self._cancel_running,
        )
        self.sweeper = Sweeper(self.conn, self.keys, settings.sweep_interval, own_identity=identity)
        self.sweeps = Ticker("orphan sweep", self.sweeper.tick, settings.sweep_interval,
                             first_delay=settings.sweep_interval)
        self.scheduler = Scheduler(self.conn, self.keys, settings.poll_interval)
        self.threads = [
            threading.Thread(target=self._work, name=f"processor-{n}", daemon=True)
            for n in range(settings.concurrency)
        ]
        self.dispatcher = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)

    # Control ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Begin a graceful shutdown (what TERM and INT do)."""
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()

    def make_quiet(self) -> None:
        """Fetch no more jobs (what TSTP does)."""
        if not self.quiet.is_set():
            log.info("quiet: fetching no more jobs")
        self.quiet.set()
        with self.cond:
            self.cond.notify_all()

    def _cancel_running(self, jids: list[str]) -> None:
        """``workerkit.cancel`` asked these running jobs to stop: plain jobs see ``self.cancelled``, the
        tasks of ``async def`` jobs are cancelled."""
        cancellation.request(jids)
        for job in list(self.runner.running.values()):
            if job.task is not None and job.jid in jids and self.lane is not None:
                self.lane.loop.call_soon_threadsafe(job.task.cancel)

    def remote_signal(self, name: str) -> None:
        """Act on a signal sent through Redis (``TSTP`` or ``TERM``)."""
        log.info("received remote signal %s", name)
        if name == "TSTP":
            self.make_quiet()
        elif name in ("TERM", "INT"):
            self.stop()

    def install_signal_handlers(self) -> None:
        """TERM/INT stop, TSTP quiets (call from the main thread)."""

        def handle(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGTSTP:
                self.make_quiet()
            else:
                log.info("received %s: shutting down", signal.Signals(signum).name)
                self.stop()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP):
            signal.signal(signum, handle)

    # Running ------------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, wait for a stop, shut down gracefully; return the exit code (0)."""
        spec = ", ".join(f"{q.name}" + (f" (weight {q.weight})" if q.weight > 1 else "") for q in self.settings.queues)
        log.info(
            "workerkit %s starting: identity %s, queues %s, concurrency %d, Redis %s",
            __version__, self.identity, spec, self.settings.concurrency,
            topology.masked_url(config.current().redis_url),
        )
        if until_done(self._register, "starting the worker", self.stopping) is None:
            return 0
        if self.settings.job_logs:
            job_logs.install()
        # What is loaded by now (the modules, the jobs' code) lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it while jobs wait (p99 enqueue-to-start at
        # 2,000 jobs/s: 7.5-12.4 ms without, 4.9-9.3 ms with, three runs).
        gc.freeze()
        for thread in self.threads:
            thread.start()
        self.heartbeat.start()
        self.sweeps.start()
        self.scheduler.start()
        self.watchdog.start()
        if self.lane is not None:
            self.lane.start()
        self.dispatcher.start()
        while not self.stopping.wait(1.0):
            pass
        return self._shutdown()

    def _register(self) -> bool:
        self.conn.ping()
        self._check_eviction_policy()
        self.heartbeat.beat()
        self.sweeper.sweep()
        return True

    def _check_eviction_policy(self) -> None:
        """Warn when Redis may evict keys: an evicting Redis silently drops queued jobs (Sidekiq warns too)."""
        try:
            policy = self.conn.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.ResponseError:  # CONFIG is disabled on some managed services
            return
        if policy not in (None, "noeviction", b"noeviction"):
            name = policy.decode() if isinstance(policy, bytes) else policy
            log.warning("Redis maxmemory-policy is %r: under memory pressure Redis deletes keys, queued jobs "
                        "among them; set it to 'noeviction'", name)

    def prefetch(self) -> int:
        """How many jobs to hold ahead of free threads: fixed, or about 10 ms of work at the measured pace."""
        if self.settings.prefetch is not None:
            return self.settings.prefetch
        if not self.average_seconds:
            return self.settings.concurrency
        return max(1, min(MAX_PREFETCH, int(0.01 / self.average_seconds)))

    def _refill_level(self) -> int:
        """Fetch again once no more than this many plain jobs are outstanding (running or waiting for a thread)."""
        return self.settings.concurrency + self.prefetch() // 2 - 1

    def _async_room(self) -> int:
        """How many fetched jobs the event loop may expect: its free places times the async share."""
        if self.lane is None:
            return 0
        return max(0, int((self.settings.async_concurrency - self.async_outstanding) * self.async_share))

    def _should_fetch(self) -> bool:
        if self.quiet.is_set():
            return False
        if self.lane is None:  # a worker of plain jobs only: as few steps as possible
            return self._outstanding() <= self._refill_level()
        return self._outstanding() - self.async_outstanding <= self._refill_level() or self._async_room() > 0

    def _free_places(self) -> int:
        """How many jobs to fetch: one per thread neither busy nor watching, plus those fetched ahead, plus
        the event loop's expected room. A thread blocked in ``BLMOVE`` takes no fetched job until it catches
        one or its watch ends (up to :data:`WATCH_SECONDS`), so none is fetched for it. An idle worker asks
        for one more than its spare threads: getting it means the queues hold more than the watchers catch
        (see :meth:`_dispatch`), and the worker fetches in batches again. Out of the idle mode, jobs are
        fetched ahead while any thread runs a job (they wait for it to end) or none watches; threads still
        blocked on a queue after the idle mode ended (up to :data:`WATCH_SECONDS`) do not stop it, so a
        backlog drains in batches."""
        spare = self._spare_threads()
        running = self._outstanding() - self.async_outstanding
        ahead = int(spare > 0) if self.idle_mode else (self.prefetch() if running or not any(self.watchers) else 0)
        if self.lane is None:
            return spare + ahead
        return max(0, spare + ahead) + self._async_room()

    def _spare_threads(self) -> int:
        """Threads neither running a job nor watching a queue (exact under ``cond``)."""
        return (self.settings.concurrency - (self._outstanding() - self.async_outstanding)
                - sum(self.watchers))

    def _dispatch(self) -> None:
        backoff = Backoff("fetching jobs")
        while not self.stopping.is_set():
            if self.suspect:
                self._reconcile(backoff)
                continue
            with self.cond:
                self._fold_finished()
                if not self._should_fetch():
                    # Busy: wait for room; the finished jobs' acknowledgements go with the next fetch, at
                    # most ACK_FLUSH_SECONDS after they finished.
                    self._dispatcher_wait(self._wake_by(ACK_FLUSH_SECONDS), idle=False, ready=self._should_fetch)
                busy = self.quiet.is_set() or self.stopping.is_set()
                free = 0 if busy else self._free_places()
            if free <= 0 and not busy:
                if self._wake_by(UNWATCHED_POLL_SECONDS) > time.monotonic() and not self._unwatched_poll_due():
                    self._wait_for_jobs()  # every thread runs or watches, no acknowledgement is due
                    continue
                # Acknowledgements due, or queues nobody watches: fetch one job with them, taken by the first
                # thread free (watchers see the fetch and stop watching); getting it ends the idle mode.
                free = int(self.idle_mode)
            if free > 0:
                self.polled = time.monotonic()
            try:
                units = self.fetch.fetch(free)
            except REDIS_DOWN as exc:
                self.suspect = free > 0
                backoff.failed(exc, self.stopping)
                continue
            except Exception as exc:
                backoff.failed(exc, self.stopping)
                continue
            backoff.succeeded()
            if free > 0:
                # Fewer jobs than asked for: the queues are empty, spare threads watch them. As many as
                # asked: there may be more, the threads take fetched jobs (and prefetch) until a fetch
                # comes back short. Set before the jobs are handed out, so that no thread that sees one
                # waiting goes back to watch.
                self.idle_mode = len(units) < free
            if units:
                to_loop = self._async_units(units)
                with self.cond:
                    self.outstanding += len(units)
                    self.async_outstanding += len(to_loop)
                for unit in units:
                    if to_loop and unit in to_loop:
                        self._submit(unit)
                    else:
                        self.work.put(unit)
            if free > 0 and self.idle_mode:
                self._wait_for_jobs()

    def _is_async(self, unit: UnitOfWork) -> bool:
        """Whether the job is for the event loop (a registered ``async def`` job; anything else, unreadable
        bytes and unknown classes included, goes to the threads, which settle it)."""
        try:
            name = unit.payload().get("class")
        except PayloadError:
            return False
        job_class = registry.get(name) if isinstance(name, str) else None
        return job_class is not None and is_async_job(job_class)

    def _async_units(self, units: list[UnitOfWork]) -> set[UnitOfWork]:
        """The fetched jobs for the event loop; updates the estimated async share."""
        if self.lane is None:
            return set()
        found = {unit for unit in units if self._is_async(unit)}
        share = self.async_share
        for unit in units:
            share += ASYNC_SHARE_WEIGHT * ((unit in found) - share)
        self.async_share = share
        return found

    def _submit(self, unit: UnitOfWork) -> None:
        """Hand a job counted in ``async_outstanding`` to the event loop."""
        assert self.lane is not None
        self.lane.submit(unit)

    def _async_done(self, unit: UnitOfWork) -> None:
        """An async job ended (called on the event loop)."""
        with self.cond:
            self.outstanding -= 1
            self.async_outstanding -= 1
            if self.dispatcher_waiting:
                self.cond.notify()

    def _reconcile(self, backoff: Backoff) -> None:
        """Once the threads stopped blocking on the queues, give back in-flight jobs we never heard of."""
        self.idle_mode = False
        self._wait_for_watches_to_end(unless=self.stopping.is_set)
        try:
            moved = self.fetch.reconcile()
        except REDIS_DOWN as exc:
            backoff.failed(exc, self.stopping)
            return
        self.suspect = False
        if moved:
            log.warning("gave back %d job(s) fetched while the connection to Redis broke", moved)

    def _wait_for_watches_to_end(self, unless: Callable[[], bool] = lambda: False) -> None:
        """Wait until no thread blocks on a queue (at most two watches and a second), or ``unless()``: a job
        a blocked thread moves in flight meanwhile would be missed by what the caller does next."""
        with self.cond:
            self.cond.wait_for(lambda: not any(self.watchers) or unless(), timeout=2 * WATCH_SECONDS + 1)

    def _wait_for_jobs(self) -> None:
        """No job to fetch for now. When the queues are empty (``idle_mode``), send every spare thread to
        block on them (see :meth:`_queue_to_watch`), as Sidekiq's processors each block on theirs, so that a
        job pushed now is caught at once even just after another. Then wait until a thread is spare again (a
        job ended, a watch ended), acknowledgements are due, or a second passes."""
        with self.cond:
            if self.idle_mode and not (self.stopping.is_set() or self.quiet.is_set()):
                for _ in range(self._spare_threads()):
                    index = self._queue_to_watch()
                    self.watchers[index] += 1
                    self.work.put(Watch(index))
            self._dispatcher_wait(self._wake_by(UNWATCHED_POLL_SECONDS), idle=True, ready=lambda: (
                self.stopping.is_set() or self.quiet.is_set() or self._spare_threads() > 0))

    def _queue_to_watch(self) -> int:
        """Which queue a thread sent to watch blocks on (with ``cond`` held): the first one nobody watches,
        else the one with the most recent catches for its watchers, so the watchers gather where jobs
        arrive (BLMOVE watches one queue; Sidekiq's BRPOP watches them all)."""
        for index, count in enumerate(self.watchers):
            if count == 0:
                return index
        for index in range(len(self.catches)):
            self.catches[index] *= CATCH_MEMORY
        return max(range(len(self.watchers)), key=lambda index: (self.catches[index] + 1) / (self.watchers[index] + 1))

    def _unwatched_poll_due(self) -> bool:
        """Whether an idle worker should fetch for the queues nobody watches (more queues than spare threads)."""
        return (self.idle_mode and 0 in self.watchers
                and time.monotonic() - self.polled >= UNWATCHED_POLL_SECONDS)

    def _outstanding(self) -> int:
        """Jobs fetched or caught and not yet finished (exact under ``cond``)."""
        return self.outstanding - len(self.finished)

    def _fold_finished(self) -> None:
        """Count the finished jobs off ``outstanding`` (with ``cond`` held): only here are they taken out."""
        done = len(self.finished)
        for _ in range(done):
            self.finished.popleft()
        self.outstanding -= done

    def _dispatcher_wait(self, until: float, *, idle: bool, ready: Callable[[], bool]) -> None:
        """Wait (with ``cond`` held) until ``time.monotonic()`` reaches ``until`` unless ``ready()``: idle,
        until ``ready()``; busy, until the first wake-up (a thread's, see :meth:`_job_ended`, or a stop or
        quiet). The flags are set before ``ready()`` is checked, so a job that ends meanwhile is seen by one
        or the other."""
        self.dispatcher_idle = idle
        self.dispatcher_waiting = True
        self.dispatcher_until = until
        timeout = max(0.0, until - time.monotonic())
        if idle:  # a caught job's end moves ``dispatcher_until`` closer to have its acknowledgement sent
            self.cond.wait_for(lambda: ready() or self.dispatcher_until < until, timeout)
        elif not ready():
            self.cond.wait(timeout)
        self.dispatcher_waiting = False

    def _job_ended(self) -> None:
        """A thread finished a plain job: count it without a lock, and wake the dispatcher only when it
        waits for this: idle (any job's end), or short of jobs to run (see :meth:`_dispatcher_wait`)."""
        self.finished.append(None)
        if self.dispatcher_waiting and (self.dispatcher_idle or self._should_fetch()):
            with self.cond:
                self.cond.notify()

    def _wake_by(self, longest: float) -> float:
        """When (``time.monotonic()``) the dispatcher's wait must end: ``longest`` seconds from now, or
        sooner when acknowledgements are due sooner (their deadline itself, so that :meth:`_watch_again`
        compares like with like)."""
        latest = time.monotonic() + longest
        deadline = self.fetch.ack_deadline()
        return latest if deadline is None else min(latest, deadline)

    def _work(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            if isinstance(item, Watch):
                self._watch(item.index)
            else:
                self._run(item)

    def _run(self, unit: UnitOfWork) -> None:
        self._execute(unit)
        self._job_ended()

    def _execute(self, unit: UnitOfWork) -> None:
        """Run a plain job in this thread (and time it, for the prefetch)."""
        started = time.perf_counter()
        try:
            if not self.stopping.is_set():
                self.runner.process(unit)
        except BaseException:
            log.exception("a worker thread failed outside a job; the job stays in flight")
        finally:
            elapsed = time.perf_counter() - started
            self.average_seconds = 0.99 * self.average_seconds + 0.01 * elapsed if self.average_seconds else elapsed

    def _watch(self, index: int) -> None:
        """Watch the queues while the worker is idle: block on one, run each job caught in this thread (no
        hand-off), and watch again, without the dispatcher, as long as the worker stays idle."""
        watched: int | None = index
        while watched is not None:
            caught = self._catch(watched)
            if caught is None:
                return
            if self.quiet.is_set() or self.stopping.is_set():
                self._give_back(caught)
                return
            self._note_backlog(caught)
            plain = self.lane is None or not self._is_async(caught)
            if plain:
                self._execute(caught)
            else:
                with self.cond:
                    self.async_outstanding += 1
                self._submit(caught)
            watched = self._watch_again(plain)

    def _note_backlog(self, caught: UnitOfWork) -> None:
        """Leave the idle mode when ``caught`` waited in its queue past :data:`BACKLOG_SECONDS`: one job per
        round trip per watcher does not keep up, a fetch of a batch does. The thread that caught it runs it
        and then stays spare (see :meth:`_watch_again`), which wakes the dispatcher to fetch."""
        waited = caught.waited(time.time()) if self.idle_mode else None
        if waited is not None and waited > BACKLOG_SECONDS:
            with self.cond:
                self.idle_mode = False

    def _catch(self, index: int) -> UnitOfWork | None:
        """Block on queue ``index`` (counted in ``watchers``) until a job comes or the worker is no longer
        idle; after each :data:`WATCH_SECONDS` without a catch the thread may move to a queue that needs it
        more. Returns the job caught (counted as outstanding), or None."""
        backoff = Backoff("waiting for jobs")
        caught: UnitOfWork | None = None
        try:
            while caught is None and self.idle_mode and not (self.stopping.is_set() or self.quiet.is_set()):
                try:
                    caught = self.fetch.wait_for_job(index, WATCH_SECONDS, register=not self.heartbeat.fresh())
                except REDIS_DOWN as exc:
                    self.suspect = True
                    backoff.failed(exc, self.stopping)
                    continue
                backoff.succeeded()
                if caught is None:
                    with self.cond:
                        self.watchers[index] -= 1
                        index = self._queue_to_watch()
                        self.watchers[index] += 1
        finally:
            with self.cond:
                self.watchers[index] -= 1
                if caught is None:  # a spare thread again
                    self.cond.notify()
                else:
                    self.outstanding += 1
                    self.catches[index] += 1
                    if self.stopping.is_set():  # the shutdown waits for every watch to end
                        self.cond.notify_all()
        return caught

    def _watch_again(self, ended: bool) -> int | None:
        """A caught job ended (``ended``: a plain one, run here) or went to the event loop: the queue this
        thread watches next (counted in ``watchers``), or None when the worker is no longer idle or jobs
        wait for threads (the thread is spare, and the dispatcher is woken). The job's acknowledgement
        goes with the dispatcher's next fetch: it is woken when that would come later than the
        acknowledgement is due (at once after a quiet spell, see ``ReliableFetch.ack_deadline``)."""
        with self.cond:
            if ended:
                self.outstanding -= 1
            if not self.idle_mode or self.stopping.is_set() or self.quiet.is_set() or not self.work.empty():
                self.cond.notify()
                return None
            index = self._queue_to_watch()
            self.watchers[index] += 1
            deadline = self.fetch.ack_deadline() if ended and self.dispatcher_waiting else None
            if deadline is not None and self.dispatcher_until > deadline:  # sooner than the wait ends
                self.dispatcher_until = deadline
                self.cond.notify()
            return index

    def _give_back(self, unit: UnitOfWork) -> None:
        """A job caught after quiet or stop goes straight back to its queue."""
        try:
            unit.requeue()
        except REDIS_DOWN:
            log.warning("could not give a job back to its queue; it stays in flight until shutdown")
        with self.cond:
            self.outstanding -= 1

    def _shutdown(self) -> int:
        """Finish running jobs within the timeout, push the rest back, leave the registry."""
        running = len(self.runner.running)
        log.info("shutting down: waiting up to %.0f s for %d running job(s)", self.settings.timeout, running)
        self.dispatcher.join(5)
        for _ in self.threads:
            self.work.put(None)
        deadline = time.monotonic() + self.settings.timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        unfinished = sum(thread.is_alive() for thread in self.threads)
        if self.lane is not None:
            unfinished += self.lane.close(max(0.0, deadline - time.monotonic()))
        self.watchdog.close()
        self.scheduler.close()
        self.sweeps.close()
        self.heartbeat.close()
        give_up = threading.Event()
        timer = threading.Timer(10.0, give_up.set)
        timer.daemon = True
        timer.start()

        self._wait_for_watches_to_end()  # a thread still blocked on a queue would catch a job pushed back below

        def requeue() -> int:
            self.fetch.fetch(0)
            return self.fetch.requeue_all()

        moved = until_done(requeue, "pushing unfinished jobs back", give_up)
        if moved is None:
            log.error("Redis unreachable: unfinished jobs stay in flight; another worker will recover them")
        else:
            until_done(self.heartbeat.clear, "leaving the process registry", give_up)
        timer.cancel()
        log.info(
            "stopped: %d job(s) still running at the deadline, %s job(s) pushed back to their queues",
            unfinished, "?" if moved is None else moved,
        )
        return 0

