"""The dashboard's defences on every route, found by walking the app's routing table (a new route is
covered without editing this file): CSRF on every POST, the auth hook on every route (JSON and static
included), hostile args and error messages escaped on every page, and no redirect leaves the dashboard."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "web"))

from dashboard_helpers import KEYS, PREFIX, add_to, csrf_token, enqueue, failed, payload

from workerkit.api import Api
from workerkit.sets import JobSet
from workerkit.web import dashboard

XSS = ["<script>alert('x')</script>", '<img src=x onerror="alert(1)">', "<svg onload=alert(1)>"]
EVIL = "https://evil.example/phish"
FORMS = {
    "signal_process": {"action": "quiet", "identity": "host:1:abcdef"},
    "delete_queued": {"jid": "nope"},
    "clear_queue": {},
    "act_on_periodic": {"name": "nope"},
    "act_on_set": {"action": "delete", "scope": "all", "q": "nothing-matches"},
    "act_on_job": {"action": "delete"},
    "cancel_job": {"jid": "nope"},
}
"""A form each POST route accepts; a new POST route without one here fails test_every_post_route_is_known."""


@pytest.fixture
def conn(redis_client: redis.Redis) -> redis.Redis:
    """A database holding hostile text in every place a job shows: args, class, error, queue name."""
    job = failed(f"app.jobs.{XSS[0]}", [XSS[0]], error_message=XSS[1], error_class=XSS[2])
    for job_set in JobSet:
        add_to(redis_client, job_set.key(KEYS), job, time.time() + 60)
    enqueue(redis_client, payload("app.jobs.X", [XSS[0]]))
    enqueue(redis_client, payload("app.jobs.X", [1], queue=XSS[2]))
    return redis_client


def _app(conn: redis.Redis, **options: object) -> Starlette:
    return Starlette(routes=[Mount(PREFIX, dashboard(Api(conn, KEYS), secret="s", **options))])  # type: ignore[arg-type]


@pytest.fixture
def client(conn: redis.Redis) -> Iterator[TestClient]:
    with TestClient(_app(conn), base_url="http://127.0.0.1", follow_redirects=False) as test_client:
        yield test_client


def _requests(conn: redis.Redis) -> list[tuple[str, str, str]]:
    """(method, path, route name) for every route of the dashboard, path parameters filled with real values."""
    key = Api(conn, KEYS).sorted_set(JobSet.DEAD).page().jobs[0].key
    values = {"name": ["default", XSS[2], ""], "set": [job_set.value for job_set in JobSet], "key": [key],
              "bid": ["nope", XSS[2]]}
    found: list[tuple[str, str, str]] = []
    for route in dashboard(Api(conn, KEYS)).routes:
        if isinstance(route, Mount):
            found.append(("GET", f"{PREFIX}{route.path}/dashboard.css", str(route.name)))
            continue
        assert isinstance(route, Route)
        paths = [route.path]
        for param, choices in values.items():
            paths = [re.sub(rf"\{{{param}:\w+\}}", choice, path) for path in paths for choice in choices]
        assert not [path for path in paths if "{" in path], f"no value for a parameter of {route.path}"
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            found += [(method, PREFIX + path, str(route.name)) for path in paths]
    return found


def _snapshot(conn: redis.Redis) -> dict[bytes, bytes | None]:
    return {key: conn.dump(key) for key in conn.keys("*") if not key.startswith(b"stat:")}


def test_every_post_route_is_known(conn: redis.Redis) -> None:
    posts = {name for method, _, name in _requests(conn) if method == "POST"}
    assert posts == set(FORMS), "add a form for the new POST route to FORMS"


def test_every_post_route_refuses_a_missing_forged_or_cross_site_token(client: TestClient, conn: redis.Redis) -> None:
    before = _snapshot(conn)
    for method, path, name in _requests(conn):
        if method != "POST":
            continue
        client.cookies.clear()
        assert client.post(path, data=FORMS[name]).status_code == 403, path
        token = csrf_token(client)
        assert client.post(path, data={**FORMS[name], "csrf_token": token + "x"}).status_code == 403, path
        cross = client.post(path, data={**FORMS[name], "csrf_token": token}, headers={"sec-fetch-site": "cross-site"})
        assert cross.status_code == 403, path
        other = TestClient(_app(conn), base_url="http://127.0.0.1", follow_redirects=False)
        stolen = csrf_token(other)  # a valid token of another session does not match this cookie
        assert client.post(path, data={**FORMS[name], "csrf_token": stolen}).status_code == 403, path
    assert _snapshot(conn) == before


def test_the_auth_hook_guards_every_route_and_method(conn: redis.Redis) -> None:
    def only_admins(request: Request) -> bool:
        return request.headers.get("x-role") == "admin"

    with TestClient(_app(conn, auth=only_admins), follow_redirects=False) as anonymous:
        for method, path, _ in [*_requests(conn), ("GET", PREFIX + "/no-such-page", "")]:
            response = anonymous.request(method, path, headers={"accept": "application/json"})
            assert response.status_code == 401, (method, path)
            assert XSS[0] not in response.text and "default" not in response.text
        assert anonymous.get(PREFIX + "/stats.json", headers={"x-role": "admin"}).status_code == 200


def test_hostile_text_is_inert_on_every_get_route(client: TestClient, conn: redis.Redis) -> None:
    for method, path, _ in _requests(conn):
        if method != "GET":
            continue
        response = client.get(path)
        assert response.status_code in (200, 404), path
        kind = response.headers["content-type"]
        if kind.startswith("text/html"):
            assert not [text for text in XSS if text in response.text], path
            tags = [re.sub(r'"[^"]*"', '""', tag) for tag in re.findall(r"<[a-z][^>]*>", response.text)]
            assert not [tag for tag in tags if re.search(r"\son\w+=", tag)], path
        elif path == PREFIX + "/metrics":  # Prometheus' text format: plain text, never sniffed as HTML
            assert kind.startswith("text/plain; version=0.0.4"), (path, kind)
        else:
            assert kind.startswith(("application/json", "text/css")), (path, kind)
        assert response.headers["x-content-type-options"] == "nosniff"


def test_no_redirect_leaves_the_dashboard(client: TestClient, conn: redis.Redis) -> None:
    token = csrf_token(client)
    hostile = {"next": EVIL, "return_to": "//evil.example", "redirect": EVIL, "back": "/\\evil.example"}
    locations = []
    for method, path, name in _requests(conn):
        if method != "POST":
            continue
        for target in (path, path.replace("/queues/default", "/queues/%2F%2Fevil.example")):
            response = client.post(target, data={**FORMS[name], **hostile, "csrf_token": token},
                                   headers={"referer": EVIL})
            if response.status_code == 303:
                locations.append(response.headers["location"])
    assert len(locations) >= len(FORMS)
    for location in locations:
        assert location.startswith(PREFIX + "/") and "evil.example" not in location.split("?")[0].replace(
            "%2F%2Fevil.example", ""), location
        assert "//" not in location and "\\" not in location, location
