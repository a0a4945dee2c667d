"""End to end in real headless Chromium: a real worker, the real standalone dashboard, a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from browser_support import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from dashboard_helpers import KEYS, WORKERKIT, free_port
from polling import wait_for

from workerkit.payload import encode, new_payload
from workerkit.server import running_server

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]
sync_api = pytest.importorskip("playwright.sync_api")
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("browser-redis"), kind="auto") as server:
        yield server.url


@pytest.fixture
def conn(server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server_url)
    client.flushall()
    yield client
    client.close()


@dataclass
class Running:
    url: str
    """The dashboard's URL."""
    worker: subprocess.Popen[bytes]


@pytest.fixture
def running(server_url: str, conn: redis.Redis) -> Iterator[Running]:
    """A real worker (loading browser_jobs) and ``workerkit web``."""
    port = free_port()
    env = {**os.environ, "WORKERKIT_HEARTBEAT_INTERVAL": "1", "WORKERKIT_POLL_INTERVAL": "0.5"}
    env = {key: value for key, value in env.items() if not key.startswith("WORKERKIT_WEB_")}
    common = ["--redis-url", server_url]
    worker = subprocess.Popen([*WORKERKIT, "worker", "-r", "browser_jobs", "-c", "2", *common], cwd=HERE, env=env)
    web = subprocess.Popen([*WORKERKIT, "web", "--port", str(port), *common], cwd=HERE, env=env)
    try:
        wait_for(lambda: _alive(worker, web) and conn.scard(KEYS.processes) == 1, "the worker's heartbeat", 90)
        wait_for(lambda: _alive(worker, web) and _listening(port), "the dashboard to listen", 90)
        yield Running(f"http://127.0.0.1:{port}", worker)
    finally:
        for process in (worker, web):
            process.terminate()
        for process in (worker, web):
            process.wait(timeout=40)


def _alive(*processes: subprocess.Popen[bytes]) -> bool:
    for process in processes:
        assert process.poll() is None, f"{process.args[3]} exited with {process.returncode} (its output is above)"
    return True


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


def push(conn: redis.Redis, class_name: str, args: list[Any]) -> str:
    payload = new_payload(f"browser_jobs.{class_name}", args, "default", True, created_at=time.time())
    payload["enqueued_at"] = time.time()
    conn.sadd(KEYS.queues, "default")
    conn.lpush(KEYS.queue("default"), encode(payload))
    return str(payload["jid"])


def stat(page: Any, name: str) -> str:
    return str(page.locator(f'.stat [data-stat="{name}"]').inner_text())


def test_the_dashboard_shows_live_numbers_from_real_workers(running: Running, page: Any, conn: redis.Redis) -> None:
    page.goto(running.url + "/")
    page.select_option("#poll-interval", "2")
    assert stat(page, "processed") == "0"
    wait_for(lambda: page.locator('dd[data-stat="processes"]').inner_text() == "1", "one live process")

    for number in range(7):
        push(conn, "Quick", [number])

    wait_for(lambda: stat(page, "processed") == "7", "the live count to reach 7", timeout=60)
    assert page.locator("#live-status").inner_text().startswith("updated")
    points = page.locator("#live-graph .line-processed").get_attribute("points") or ""
    assert len(points.split()) >= 1
    assert page.locator("#live-peak").inner_text().startswith(" (top of the graph: ")


def test_a_failed_job_is_retried_with_a_click_and_counts_as_processed(
    running: Running, page: Any, conn: redis.Redis
) -> None:
    push(conn, "FailsOnce", [])
    wait_for(lambda: conn.zcard(KEYS.retry) == 1, "the job to fail into the retry set")

    page.goto(running.url + "/retries")
    page.get_by_role("link", name="browser_jobs.FailsOnce").click()
    sync_api.expect(page.locator("dd.error")).to_have_text("RuntimeError: first attempt fails")
    with page.expect_navigation():
        page.get_by_role("button", name="Retry now").click()

    sync_api.expect(page.locator(".notice")).to_have_text("Moved 1 job(s) to their queues.")
    wait_for(lambda: int(conn.get(KEYS.stat("processed")) or 0) == 2, "the retried job to be processed")
    assert conn.zcard(KEYS.retry) == 0 and conn.zcard(KEYS.dead) == 0
    page.goto(running.url + "/")
    assert (stat(page, "processed"), stat(page, "failed"), stat(page, "retries")) == ("2", "1", "0")


def test_retry_all_of_a_big_set_goes_on_in_the_background_and_the_page_follows_it(
    running: Running, page: Any, conn: redis.Redis
) -> None:
    count, now = 50_000, time.time()  # about a second of work: more than a request's budget
    pipe = conn.pipeline(transaction=False)
    for number in range(count):  # a queue no worker here reads, so the moved jobs stay to be counted
        job = new_payload("browser_jobs.Quick", [number], "parked", True, created_at=now)
        job.update(error_class="RuntimeError", error_message="boom", retry_count=1, failed_at=now)
        pipe.zadd(KEYS.retry, {encode(job): now + 3600 + number})  # not due: the poller leaves them
    pipe.execute()

    page.goto(running.url + "/retries")
    page.on("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.get_by_role("button", name="Retry now all").click()

    sync_api.expect(page.locator('.notice[role="status"]').first).to_have_text(
        "Started: the rest goes on in the background, and this page shows how far it got.")
    finished = page.locator('[data-field="bulk"][data-state="finished"]')
    sync_api.expect(finished).to_contain_text("50,000 job(s) moved to their queues, finished", timeout=60_000)
    assert conn.llen(KEYS.queue("parked")) == count and conn.zcard(KEYS.retry) == 0


def test_hostile_arguments_and_errors_render_as_text(running: Running, page: Any, conn: redis.Redis) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    push(conn, "Hostile", ["<script>alert('xss')</script>"])
    wait_for(lambda: conn.zcard(KEYS.retry) == 1, "the hostile job to fail")

    page.goto(running.url + "/retries")
    page.get_by_role("link", name="browser_jobs.Hostile").click()

    assert page.locator("dd code.args").inner_text() == "\"<script>alert('xss')</script>\""
    assert page.locator("dd.error").inner_text().startswith('ValueError: <img src=x onerror="document.title=')
    assert page.locator("main script, main img").count() == 0
    assert dialogs == [] and page.title() != "pwned"


def test_quiet_and_stop_reach_a_real_worker_from_the_busy_page(running: Running, page: Any, conn: redis.Redis) -> None:
    [identity] = [name.decode() for name in conn.smembers(KEYS.processes)]
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(running.url + "/busy")

    with page.expect_navigation():
        page.get_by_role("button", name="Quiet").click()
    wait_for(lambda: conn.hget(KEYS.process(identity), "quiet") == b"true", "the worker to turn quiet")
    page.reload()
    sync_api.expect(page.locator("h2 .tag.warn")).to_have_text("quiet")

    with page.expect_navigation():
        page.get_by_role("button", name="Stop").click()
    assert running.worker.wait(timeout=40) == 0
    assert not conn.sismember(KEYS.processes, identity)


def test_the_metrics_pages_draw_what_real_workers_recorded(running: Running, page: Any, conn: redis.Redis) -> None:
    for number in range(5):
        push(conn, "Quick", [number])
    push(conn, "Hostile", ["<b>bold</b>"])
    wait_for(lambda: conn.hget(KEYS.metrics_totals, "browser_jobs.Hostile|f") == b"1", "the failure's metrics")
    wait_for(lambda: conn.hget(KEYS.metrics_totals, "browser_jobs.Quick|n") == b"5", "the runs' metrics")

    page.goto(running.url + "/")
    page.get_by_role("link", name="Metrics").click()
    sync_api.expect(page.locator('tr[data-class="browser_jobs.Quick"] [data-field="runs"]')).to_have_text("5")
    sync_api.expect(page.locator('tr[data-class="browser_jobs.Hostile"] [data-field="rate"]')).to_have_text("100.0 %")
    page.select_option('select[name="window"]', "1440")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert page.url.endswith("/job-metrics?window=1440")

    page.get_by_role("link", name="browser_jobs.Quick").click()
    sync_api.expect(page.locator('#summary [data-field="runs"]')).to_have_text("5")
    box = page.locator("#runs-chart").bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 50
    assert page.locator("#runs-chart rect").count() == 2 * 60  # 24-minute slots over 24 hours
    assert page.locator("#runs-chart rect.bar-processed").last.get_attribute("height") == "96.0"
    assert page.locator("#histogram rect").count() >= 1
    assert page.locator("main script, main b").count() == 0
