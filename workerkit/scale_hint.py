"""How many worker processes would keep the oldest waiting job younger than a target: ``workerkit scale-hint``.

It reads what every worker already writes to Redis (heartbeats: each process's queues, threads and busy
threads) and the age of the oldest job in each queue, and prints one number. ``procman``'s autoscaling
runs it every few seconds (``autoscale = "workerkit scale-hint --target-latency 5"``), and any other
autoscaler can too: it knows nothing of procman.

The rule, for the processes that take jobs from the queues asked about (all queues by default):

- the oldest job has waited longer than the target: grow in proportion to how far over it is (at least one
  more process), since the processes there are not keeping up;
- otherwise: enough processes for the busy threads to stay under ``busy_ceiling`` of their threads (0.8),
  and at least one while any job waits; fewer when the threads idle, so the caller can shrink.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workerkit.api import Api

DEFAULT_CONCURRENCY = 10
"""Threads assumed per process when no process runs yet (``workerkit worker``'s default ``-c``)."""


@dataclass(frozen=True)
class Observation:
    """What the heartbeats and the queues say, for the queues asked about."""

    processes: int
    """Live processes that take jobs from those queues and are not quiet."""
    threads: int
    busy: int
    latency: float
    """Seconds the oldest waiting job of those queues has waited (0 when they are empty)."""
    waiting: int
    """Jobs waiting in those queues."""


def observe(api: Api, queues: list[str] | None = None) -> Observation:
    """The :class:`Observation` of ``queues`` (None: every queue) through ``api``."""
    chosen = set(queues) if queues else None
    working = [process for process in api.processes() if not process.quiet and (
        chosen is None or chosen & set(process.info.get("queues") or []))]
    seen = [queue for queue in api.queues() if chosen is None or queue.name in chosen]
    return Observation(
        processes=len(working),
        threads=sum(int(process.info.get("concurrency") or DEFAULT_CONCURRENCY) for process in working),
        busy=sum(process.busy for process in working),
        latency=max((queue.latency for queue in seen), default=0.0),
        waiting=sum(queue.size for queue in seen),
    )


def desired_processes(seen: Observation, target_latency: float, busy_ceiling: float = 0.8) -> int:
    """The number of processes the rule in the module's docstring asks for (0 or more)."""
    if target_latency <= 0 or not 0 < busy_ceiling <= 1:
        raise ValueError("the target latency must be above 0 and the busy ceiling in (0, 1]")
    if seen.processes == 0:
        return 1 if seen.waiting else 0
    if seen.latency > target_latency:
        return max(seen.processes + 1, math.ceil(seen.processes * seen.latency / target_latency))
    per_process = seen.threads / seen.processes
    needed = math.ceil(seen.busy / (per_process * busy_ceiling)) if seen.busy else 0
    return max(needed, 1 if seen.waiting else 0)


def explain(seen: Observation, target_latency: float, desired: int) -> str:
    """One line saying why: what was seen and what it asks for."""
    return (f"{seen.processes} process(es), {seen.busy}/{seen.threads} threads busy, {seen.waiting} job(s) "
            f"waiting, the oldest for {seen.latency:.1f} s (target {target_latency:g} s): {desired}")
