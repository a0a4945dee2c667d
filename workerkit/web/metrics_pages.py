"""The dashboard's Metrics pages: a table of job classes over a chosen window (runs, failure rate, total
and p95 time), and a page per class with its runs and p95 over time and its histogram of execution times.
They read ``workerkit.metrics_query``; the charts are SVG drawn by the templates (``workerkit.web.charts``).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from datetime import UTC, datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from workerkit.api import Api
from workerkit.metrics import BOUNDS_US
from workerkit.metrics_query import ClassMetrics, Series
from workerkit.web.charts import Bar, bars, duration

WINDOWS = {60: "1 hour", 480: "8 hours", 1440: "24 hours", 4320: "72 hours"}
"""The windows the pages offer, in minutes (the metrics are kept 72 hours)."""
SLOTS = 60
"""Slots of a class's time series at most (of 1, 8, 24 or 72 minutes)."""
MAX_NAME = 10_000
"""The longest class name a page is asked for (longer ones are cut: nothing has metrics under them)."""


class Renders(Protocol):
    """What the pages need of the dashboard: its API and its page renderer."""

    @property
    def api(self) -> Api: ...

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> Response: ...


def window_of(request: Request) -> int:
    """The window asked for in ``?window=`` (minutes), else one hour."""
    try:
        asked = int(request.query_params.get("window", "60"))
    except ValueError:
        return 60
    return asked if asked in WINDOWS else 60


def _clock(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_bars(series: Series) -> tuple[list[Bar], list[Bar]]:
    """Succeeded runs stacked under failed ones, per slot of the series."""
    titles = []
    for index, slot in enumerate(series.slots):
        start = series.first_minute + index * series.slot_minutes
        titles.append(f"{_clock(start)}: {slot.runs:,} runs, {slot.failures:,} failed, "
                      f"p95 {duration(slot.percentile(0.95))}")
    succeeded = [float(slot.runs - slot.failures) for slot in series.slots]
    failed = [float(slot.failures) for slot in series.slots]
    return bars(succeeded, titles), bars(failed, titles, base=succeeded)


def p95_bars(series: Series) -> tuple[list[Bar], str]:
    """Each slot's p95 on a log scale, one step per histogram bucket above the bucket below the lowest p95
    (so changes show), and that floor's label."""
    found = [slot.percentile(0.95) for slot in series.slots]
    steps = [None if p95 is None else _bucket_index(p95) for p95 in found]
    floor = min([step for step in steps if step is not None], default=1) - 1
    titles = [f"{_clock(series.first_minute + index * series.slot_minutes)}: p95 {duration(p95)}"
              for index, p95 in enumerate(found)]
    values = [0.0 if step is None else float(step - floor) for step in steps]
    return bars(values, titles), duration(BOUNDS_US[floor] / 1e6) if floor >= 0 else "0"


def _bucket_index(seconds: float) -> int:
    return len(BOUNDS_US) if math.isinf(seconds) else bisect_left(BOUNDS_US, round(seconds * 1e6))


def histogram_bars(total: ClassMetrics) -> tuple[list[Bar], list[str]]:
    """The window's histogram, from the first bucket with runs to the last, and each bar's label."""
    used = [index for index, count in enumerate(total.buckets) if count]
    if not used:
        return [], []
    span = range(used[0], used[-1] + 1)
    labels = [f"≤ {duration(BOUNDS_US[index] / 1e6)}" if index < len(BOUNDS_US) else "> 70 min" for index in span]
    counts = [float(total.buckets[index]) for index in span]
    titles = [f"{label}: {int(count):,} runs" for label, count in zip(labels, counts, strict=True)]
    return bars(counts, titles), labels


def latency_bars(values: list[int | None]) -> list[Bar]:
    """A queue's longest latency per minute (ms; None: no job taken that minute), oldest minute first."""
    titles = [f"{len(values) - index - 1} min ago: " + ("no job taken" if value is None else duration(value / 1000))
              for index, value in enumerate(values)]
    return bars([float(value or 0) for value in values], titles)


class MetricsPages:
    """The endpoints of the Metrics pages of one dashboard."""

    def __init__(self, board: Renders) -> None:
        self.board = board

    def classes(self, request: Request) -> Response:
        window = window_of(request)
        found = self.board.api.metrics().classes(window)
        return self.board.render(request, "metrics.html", window=window, windows=WINDOWS, classes=found,
                                 duration=duration)

    def job_class(self, request: Request) -> Response:
        window = window_of(request)
        name = request.query_params.get("name", "")[:MAX_NAME]
        series = self.board.api.metrics().series(name, window, SLOTS)
        succeeded, failed = run_bars(series)
        histogram, labels = histogram_bars(series.total)
        p95, p95_floor = p95_bars(series)
        return self.board.render(
            request, "metrics_class.html", window=window, windows=WINDOWS, name=name, series=series,
            succeeded=succeeded, failed=failed, p95=p95, p95_floor=p95_floor, histogram=histogram, labels=labels,
            duration=duration, first=_clock(series.first_minute),
        )
