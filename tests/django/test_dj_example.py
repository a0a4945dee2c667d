"""The example Django site for real: migrate, ``procman start`` its Procfile (Redis, uvicorn, a worker run by
``manage.py workerkit``), save a note in the page, watch the job count its words, log in to the admin and
open the dashboard. It runs in a copy of the example in a scratch folder, on free ports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import polling
import pytest
import redis
from dj_support import free_port
from procman_support import PROCMAN, interrupt

from workerkit.keys import Keys

pytest.importorskip("django", minversion="5.2")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_site"
KEYS = Keys("notes")
ADMIN_PASSWORD = "a long test password"


def csrf_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


class Site:
    """The running example: its URL, a client of its Redis, and procman's output."""

    def __init__(self, url: str, conn: redis.Redis, output: Path) -> None:
        self.url, self.conn, self.output = url, conn, output

    def wait_for(self, condition: Callable[[], object], what: str) -> object:
        return polling.wait_for(condition, what, 60, detail=lambda: self.output.read_text()[-4000:])


@pytest.fixture
def example(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "django_site"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3", ".workerkit"))
    web_port, redis_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WORKERKIT_", "REDIS_", "DJANGO_", "PROCMAN_")) and key != "PORT"}
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        REDIS_PORT=str(redis_port),
        DJANGO_DATABASE=str(tmp_path / "db.sqlite3"),
        WORKERKIT_HEARTBEAT_INTERVAL="1",
        WORKERKIT_POLL_INTERVAL="0.5",
    )
    admin = ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"]
    for command in (["migrate", "-v0"], admin):
        subprocess.run([sys.executable, "manage.py", *command], cwd=root, check=True, timeout=60,
                       env={**env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD})
    output = tmp_path / "procman.log"
    with output.open("wb") as sink:  # procman gives the second entry, web, the base port + 100
        procman = subprocess.Popen([PROCMAN, "start", "-p", str(web_port - 100)], cwd=root, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    conn = redis.Redis(port=redis_port)
    site = Site(f"http://127.0.0.1:{web_port}", conn, output)
    try:
        site.wait_for(lambda: _answers(conn), "Redis")
        site.wait_for(lambda: conn.scard(KEYS.processes) >= 1, "the worker's heartbeat")
        yield site
    finally:
        conn.close()  # `workerkit redis` waits for its clients to leave before it stops
        interrupt(procman)


def _answers(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.ConnectionError:
        return False


def test_the_example_site_runs_its_jobs_and_shows_the_dashboard(example: Site) -> None:
    with httpx.Client(base_url=example.url, timeout=30) as browser:
        form = example.wait_for(lambda: _page(browser, "/"), "the web app")
        saved = browser.post("/", data={"csrfmiddlewaretoken": csrf_token(form), "text": "three small words"})
        assert (saved.status_code, saved.headers["location"]) == (302, "/")
        example.wait_for(lambda: "three small words — 3 words" in browser.get("/").text, "the words counted")
        example.wait_for(lambda: int(example.conn.get(KEYS.stat("processed")) or 0) == 1,  # acked within 100 ms
                         "the run counted")

        anonymous = browser.get("/workerkit/")
        assert (anonymous.status_code, anonymous.headers["location"]) == (302, "/admin/login/?next=/workerkit/")
        login = browser.get("/admin/login/?next=/workerkit/")
        logged_in = browser.post("/admin/login/?next=/workerkit/", data={
            "csrfmiddlewaretoken": csrf_token(login), "username": "admin", "password": ADMIN_PASSWORD,
            "next": "/workerkit/",
        })
        assert (logged_in.status_code, logged_in.headers["location"]) == (302, "/workerkit/"), logged_in.text
        dashboard = browser.get("/workerkit/")
        assert dashboard.status_code == 200
        assert "<title>Dashboard · workerkit</title>" in dashboard.text
        assert browser.get("/workerkit/stats.json").json()["processed"] == 1
        example.wait_for(lambda: "forget-old-notes" in browser.get("/workerkit/periodic").text, "the periodic job")
        assert browser.get("/static/admin/css/base.css").status_code == 200


def _page(browser: httpx.Client, path: str) -> httpx.Response | None:
    try:
        return browser.get(path)
    except httpx.TransportError:
        return None
