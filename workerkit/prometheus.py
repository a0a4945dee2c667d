"""Cluster-wide workerkit figures in Prometheus' text format, read from Redis at each scrape, so one scrape
target covers every worker: queue sizes and latency, the scheduled, retry and dead sets, busy threads,
live processes, processed and failed jobs, and per job class its runs, failures and execution-time
histogram (all-time totals from ``workerkit.metrics``). The dashboard serves it at ``/metrics``.

Names: ``workerkit_processed_total``, ``workerkit_failed_total``, ``workerkit_queue_size{queue}``,
``workerkit_queue_latency_seconds{queue}``, ``workerkit_scheduled_jobs``, ``workerkit_retry_jobs``,
``workerkit_dead_jobs``, ``workerkit_busy_threads``, ``workerkit_processes``,
``workerkit_job_runs_total{class}``, ``workerkit_job_failures_total{class}``,
``workerkit_job_duration_seconds{class}`` (a histogram; its buckets are ``workerkit.metrics.BOUNDS_US``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from workerkit.api import Api
from workerkit.metrics import BOUNDS_US

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of Prometheus' text format."""


class WorkerkitCollector(Collector):
    """A Prometheus collector reading workerkit's state from Redis through an :class:`~workerkit.api.Api`."""

    def __init__(self, api: Callable[[], Api]) -> None:
        self.api = api

    def collect(self) -> Iterator[Metric]:
        api = self.api()
        stats, queues, classes = api.stats(), api.queues(), api.metrics().totals()
        yield CounterMetricFamily("workerkit_processed", "Jobs processed (succeeded or failed).", stats.processed)
        yield CounterMetricFamily("workerkit_failed", "Jobs that failed.", stats.failed)
        size = GaugeMetricFamily("workerkit_queue_size", "Jobs waiting in the queue.", labels=["queue"])
        latency = GaugeMetricFamily("workerkit_queue_latency_seconds", "Age of the oldest job in the queue.",
                                    labels=["queue"])
        for queue in queues:
            size.add_metric([queue.name], queue.size)
            latency.add_metric([queue.name], queue.latency)
        yield size
        yield latency
        yield GaugeMetricFamily("workerkit_scheduled_jobs", "Jobs in the schedule set.", stats.scheduled)
        yield GaugeMetricFamily("workerkit_retry_jobs", "Jobs waiting for a retry.", stats.retries)
        yield GaugeMetricFamily("workerkit_dead_jobs", "Jobs in the dead set.", stats.dead)
        yield GaugeMetricFamily("workerkit_busy_threads", "Jobs running now, over every process.", stats.busy)
        yield GaugeMetricFamily("workerkit_processes", "Worker processes with a live heartbeat.", stats.processes)
        runs = CounterMetricFamily("workerkit_job_runs", "Runs of the job class.", labels=["class"])
        failures = CounterMetricFamily("workerkit_job_failures", "Failed runs of the job class.", labels=["class"])
        durations = HistogramMetricFamily("workerkit_job_duration_seconds", "Execution time of the job class.",
                                          labels=["class"])
        for job in classes:
            runs.add_metric([job.name], job.runs)
            failures.add_metric([job.name], job.failures)
            cumulative, buckets = 0, []
            for bound, count in zip([*[str(b / 1e6) for b in BOUNDS_US], "+Inf"], job.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            durations.add_metric([job.name], buckets, job.seconds)
        yield runs
        yield failures
        yield durations


def exposition(api: Callable[[], Api]) -> bytes:
    """One scrape: every figure above in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerkitCollector(api))
    return generate_latest(registry)
