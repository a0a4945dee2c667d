"""The demo for real: ``procman start -f Procfile.example``, clicked through in headless Chromium.

procman runs the Procfile's Redis, web app and worker in a scratch folder (so the developer's
``.workerkit/redis`` and control socket are untouched) on free ports; the test presses every button
of the demo page and checks in Redis that each kind of job ran.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polling
import pytest
import redis
from browser_support import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from procman_support import interrupt

from workerkit.keys import Keys

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    needs_chromium,
]
sync_api = pytest.importorskip("playwright.sync_api")
KEYS = Keys()


def free_port(step: int = 1) -> int:
    """A free port whose neighbours ``+step`` and ``+2*step`` were free too (procman spaces types by 100)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port + 3 * step < 65535 and all(_free(port + offset * step) for offset in (1, 2)):
            return port
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def wait_for(condition: Callable[[], Any], what: str, timeout: float, output: Path) -> Any:
    """``polling.wait_for``, with the end of procman's output in the failure message."""
    return polling.wait_for(condition, what, timeout, detail=lambda: f"procman output:\n{output.read_text()[-4000:]}")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, redis.Redis, Path]]:
    """The running demo: the web app's URL, a client of its Redis, and procman's output file."""
    base, redis_port = free_port(100), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WORKERKIT_", "REDIS_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        REDIS_PORT=str(redis_port),
        SIGNUP_REMINDER_SECONDS="3",
        WORKERKIT_POLL_INTERVAL="0.5",
        WORKERKIT_HEARTBEAT_INTERVAL="1",
    )
    output = tmp_path / "procman.log"
    command = [
        sys.executable,
        "-m",
        "procman",
        "start",
        "-f",
        str(ROOT / "Procfile.example"),
        "-d",
        str(tmp_path),
        "-p",
        str(base),
    ]
    with output.open("wb") as sink:
        procman = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    conn = redis.Redis(port=redis_port)
    url = f"http://127.0.0.1:{base + 100}"
    try:
        wait_for(lambda: not _free(base + 100), "the web app to listen", 60, output)
        wait_for(lambda: conn.scard(KEYS.processes) >= 1, "the worker's heartbeat", 60, output)
        yield url, conn, output
    finally:
        conn.close()  # `workerkit redis` waits for its clients to leave before it stops
        interrupt(procman)


def activity(conn: redis.Redis) -> list[str]:
    return [line.decode().split(" ", 1)[1] for line in conn.lrange("signup:activity", 0, -1)]


def test_the_demo_runs_every_kind_of_job(demo: tuple[str, redis.Redis, Path]) -> None:
    url, conn, output = demo
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(url + "/")
        for button, notice in [
            ("#sign-up", "Welcome email queued for newcomer@example.com; reminder in 3 s."),
            ("#import", "Contact import queued"),
            ("#charge", "Card charge queued"),
            ("#crunch", "10,000 jobs queued"),
        ]:
            with page.expect_navigation():
                page.click(button)
            sync_api.expect(page.locator(".notice")).to_contain_text(notice)
        page.get_by_role("link", name="Dashboard").first.click()
        page.wait_for_url(url + "/workerkit/")
        sync_api.expect(page).to_have_title("Dashboard · workerkit")
        browser.close()

    def kinds() -> set[str]:
        return {line.split(":", 1)[0] for line in activity(conn)}

    wait_for(lambda: {"welcome", "reminder", "import", "tidy-up"} <= kinds(), "every kind of job", 90, output)
    assert "welcome: newcomer@example.com" in activity(conn)
    assert any(line.startswith("import: ") and line.endswith("succeeded on attempt 3") for line in activity(conn))
    dead = wait_for(lambda: conn.zrange(KEYS.dead, 0, -1), "the always-failing job to die", 60, output)
    assert [json.loads(job)["class"] for job in dead] == ["examples.signup.jobs.ChargeCard"]
    assert json.loads(dead[0])["retry_count"] == 2
    wait_for(lambda: conn.llen(KEYS.queue("default")) == 0, "the 10,000 jobs to drain", 120, output)
    wait_for(lambda: int(conn.get(KEYS.stat("processed")) or 0) >= 10_000 + 7, "10,000 jobs counted", 30, output)
    assert json.loads(conn.hget(KEYS.periodic, "tidy-up") or b"{}")["cron"] == "* * * * *"
