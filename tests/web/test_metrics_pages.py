"""The Metrics pages over HTTP against a real server, with metrics written the way workers write them
(a real fetch carrying a batch): the table's numbers per window, a class's charts, hostile names as text,
and queue latency on the queues page."""

from __future__ import annotations

import re
import time

import redis
from dashboard_helpers import KEYS, PREFIX, enqueue, payload
from starlette.testclient import TestClient

from workerkit.lifecycle import Lifecycle
from workerkit.metrics import MetricsBatch

HOSTILE = "<script>alert('x')</script>|n"


def write(conn: redis.Redis, runs: list[tuple[str, float, bool, float]], latency: list[tuple[str, float]] = ()) -> None:
    """Write runs (class, seconds, failed, minutes ago) and latencies (queue, seconds) with a real fetch."""
    now = time.time()
    batch = MetricsBatch()
    for name, seconds, failed, ago in runs:
        batch.record(name, seconds, failed, now - ago * 60)
    for queue, seconds in latency:
        batch.latency(queue, seconds, now)
    Lifecycle(conn, KEYS).fetch([], [], [], [], 0, [], now, batch.drain())


def cells(html: str, name: str) -> dict[str, str]:
    row = re.search(r'<tr data-class="' + re.escape(name) + r'">(.*?)</tr>', html, re.S)
    assert row, f"no row for {name!r}"
    return dict(re.findall(r'data-field="(\w+)">([^<]*)<', row.group(1)))


def test_the_table_counts_each_class_over_the_window(client: TestClient, redis_client: redis.Redis) -> None:
    write(redis_client, [("app.Fast", 0.002, False, 0)] * 19 + [("app.Fast", 0.002, True, 0)]
          + [("app.Slow", 3.0, False, 0), ("app.Slow", 3.0, False, 120)])
    page = client.get(f"{PREFIX}/job-metrics")
    assert page.status_code == 200
    assert cells(page.text, "app.Fast") == {"runs": "20", "failures": "1", "rate": "5.0 %", "total": "40 ms",
                                            "mean": "2 ms", "p95": "≤ 2 ms"}
    assert cells(page.text, "app.Slow")["runs"] == "1"  # the run two hours ago is outside the hour
    assert page.text.index('data-class="app.Slow"') < page.text.index('data-class="app.Fast"')  # longest first
    wide = client.get(f"{PREFIX}/job-metrics?window=480").text
    assert cells(wide, "app.Slow") == {"runs": "2", "failures": "0", "rate": "0.0 %", "total": "6.0 s",
                                       "mean": "3.0 s", "p95": "≤ 4.1 s"}
    assert 'aria-current="page">Metrics<' in page.text
    assert 'value="60" selected>last 1 hour' in client.get(f"{PREFIX}/job-metrics?window=bogus").text


def test_a_class_page_draws_its_series_and_histogram(client: TestClient, redis_client: redis.Redis) -> None:
    write(redis_client, [("app.Mixed", 0.001, False, 0)] * 3 + [("app.Mixed", 0.1, True, 0),
                                                             ("app.Mixed", 0.001, False, 30)])
    page = client.get(f"{PREFIX}/job-metrics/class", params={"name": "app.Mixed"})
    assert page.status_code == 200
    assert re.search(r'data-field="runs">5<', page.text)
    assert "1 (20.0 %)" in page.text
    assert "≤ 1 ms / ≤ 128 ms / ≤ 128 ms" in page.text
    runs_chart = page.text.split('id="runs-chart"')[1].split("</svg>")[0]
    assert runs_chart.count("<rect") == 2 * 60  # succeeded and failed bars in 60 one-minute slots
    p95 = re.findall(r'height="([\d.]+)"><title>[^<]*p95 ([^<]*)</title>', page.text.split('id="p95-chart"')[1])
    assert p95[-1] == ("96.0", "128 ms") and p95[-31] == ("12.0", "1 ms")  # 8 and 1 steps above 0.5 ms
    assert "log scale, from 0.5 ms" in page.text
    histogram = page.text.split('id="histogram"')[1].split("</svg>")[0]
    assert histogram.count("<rect") == 8  # from the 1 ms bucket to the 128 ms one
    assert "≤ 1 ms: 4 runs" in histogram and "≤ 128 ms: 1 runs" in histogram


def test_hostile_and_empty_names_render_as_text(client: TestClient, redis_client: redis.Redis) -> None:
    write(redis_client, [(HOSTILE, 0.5, False, 0), ("", 0.5, False, 0), ("x" * 20_000, 1e9, True, 0)])
    page = client.get(f"{PREFIX}/job-metrics").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;|n" in page
    assert "(empty name)" in page
    assert cells(page, "x" * 20_000)["p95"] == "≤ &gt; 70 min"
    one = client.get(f"{PREFIX}/job-metrics/class", params={"name": HOSTILE}).text
    assert "<script>alert" not in one and re.search(r'data-field="runs">1<', one)
    empty = client.get(f"{PREFIX}/job-metrics/class", params={"name": ""}).text
    assert re.search(r'data-field="runs">1<', empty)
    nobody = client.get(f"{PREFIX}/job-metrics/class", params={"name": "nobody", "window": "4320"}).text
    assert re.search(r'data-field="runs">0<', nobody) and "No runs in this window." in nobody


def test_the_queues_page_charts_the_longest_latency_per_minute(client: TestClient, redis_client: redis.Redis) -> None:
    enqueue(redis_client, payload(queue="mail"))
    write(redis_client, [], [("mail", 2.5), ("mail", 1.0)])
    page = client.get(f"{PREFIX}/queues").text
    spark = page.split('aria-label="Longest latency per minute of mail"')[1].split("</svg>")[0]
    assert spark.count("<rect") == 60
    assert "0 min ago: 2.5 s" in spark and spark.count("no job taken") == 59
