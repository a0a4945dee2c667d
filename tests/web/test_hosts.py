"""DNS rebinding: an open dashboard answers only for loopback hosts and the names it is told to allow."""

from __future__ import annotations

import time

import pytest
import redis
from dashboard_helpers import KEYS, LOCAL, PREFIX, add_to, csrf_token, failed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from workerkit.api import Api
from workerkit.web import basic_auth, dashboard

LOOPBACK_HOSTS = ["127.0.0.1", "127.0.0.1:5100", "127.8.9.10:80", "localhost", "LOCALHOST:9292", "localhost.",
                  "[::1]:8000", "[::1]"]
FOREIGN_HOSTS = ["rebind.attacker.example", "rebind.attacker.example:5100", "127.0.0.1.attacker.example",
                 "localhost.attacker.example", "0.0.0.0:5100", "192.168.1.20", "[::]:80", ""]


def app_with(api: Api, **options: object) -> Starlette:
    """The user's app: a home page of its own, and the dashboard mounted at /workerkit."""
    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("the user's app")

    return Starlette(routes=[Route("/", home), Mount(PREFIX, dashboard(api, secret="s", **options))])


@pytest.fixture
def open_client(api: Api) -> TestClient:
    return TestClient(app_with(api), LOCAL, follow_redirects=False)


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_an_open_dashboard_answers_loopback_hosts(open_client: TestClient, host: str) -> None:
    assert open_client.get(PREFIX + "/", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_an_open_dashboard_refuses_every_other_host(open_client: TestClient, host: str) -> None:
    for path in ("/", "/retries", "/stats.json", "/static/dashboard.js"):
        refused = open_client.get(PREFIX + path, headers={"host": host})
        assert refused.status_code == 400, (host, path)
        assert "does not answer for the host" in refused.text and "allowed_hosts" in refused.text
        assert refused.headers["x-content-type-options"] == "nosniff"
    assert open_client.get("/", headers={"host": host}).text == "the user's app"  # the host app decides for itself


def test_a_rebound_page_cannot_delete_the_retries(open_client: TestClient, redis_client: redis.Redis) -> None:
    """The attack of the issue: the rebound page loads the dashboard (token and cookie) and posts."""
    add_to(redis_client, KEYS.retry, failed(), time.time() + 60)
    attacker = {"host": "rebind.attacker.example"}
    assert open_client.get(PREFIX + "/retries", headers=attacker).status_code == 400
    token = csrf_token(open_client, PREFIX + "/retries")  # even holding a valid token and cookie
    form = {"csrf_token": token, "action": "delete", "scope": "all", "q": ""}
    assert open_client.post(PREFIX + "/retries", data=form, headers=attacker).status_code == 400
    assert redis_client.zcard(KEYS.retry) == 1


def test_allowed_hosts_lets_the_apps_own_name_in(api: Api) -> None:
    client = TestClient(app_with(api, allowed_hosts=["Jobs.Example.com"]), LOCAL, follow_redirects=False)
    assert client.get(PREFIX + "/", headers={"host": "jobs.example.com:443"}).status_code == 200
    assert client.get(PREFIX + "/", headers={"host": "127.0.0.1:5100"}).status_code == 200
    assert client.get(PREFIX + "/", headers={"host": "other.example.com"}).status_code == 400


def test_behind_auth_any_host_passes_unless_allowed_hosts_is_given(api: Api) -> None:
    auth = basic_auth("ops", "secret")
    guarded = TestClient(app_with(api, auth=auth), LOCAL, follow_redirects=False)
    assert guarded.get(PREFIX + "/", headers={"host": "jobs.example.com"}, auth=("ops", "secret")).status_code == 200
    assert guarded.get(PREFIX + "/", headers={"host": "jobs.example.com"}).status_code == 401
    listed = TestClient(app_with(api, auth=auth, allowed_hosts=["jobs.example.com"]), LOCAL, follow_redirects=False)
    assert listed.get(PREFIX + "/", headers={"host": "jobs.example.com"}, auth=("ops", "secret")).status_code == 200
    assert listed.get(PREFIX + "/", headers={"host": "evil.example"}, auth=("ops", "secret")).status_code == 400


@pytest.mark.parametrize("bad", [["https://jobs.example.com"], ["jobs.example.com/workerkit"], [""], ["*"], [7]])
def test_a_bad_allowed_host_is_refused_naming_the_argument(api: Api, bad: list[object]) -> None:
    with pytest.raises(ValueError, match=r"^allowed_hosts: "):
        dashboard(api, allowed_hosts=bad)


def test_allowed_hosts_must_be_a_list(api: Api) -> None:
    with pytest.raises(TypeError, match="allowed_hosts must be a list"):
        dashboard(api, allowed_hosts="jobs.example.com")
