"""The dashboard mounted in the test project's ASGI app, behind ``staff_required`` (Django's own sessions)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from dj_support import free_port
from polling import wait_for
from process_support import ChildProcess
from starlette.types import ASGIApp

from workerkit.keys import Keys

pytest.importorskip("django", minversion="5.2")

from django.conf import settings
from django.core.asgi import get_asgi_application

from workerkit.contrib.django.asgi import mount

KEYS = Keys("djtest")


class Browser:
    """Requests to an ASGI app through httpx's ASGITransport, keeping cookies as a browser does."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cookies = httpx.Cookies()

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                         cookies=self.cookies) as client:
                response = await client.request(method, path, **options)
                self.cookies.update(client.cookies)
                return response

        return asyncio.run(send())

    def get(self, path: str) -> httpx.Response:
        return self.request("GET", path)

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return self.request("POST", path, data=data)


@pytest.fixture
def client(site: redis.Redis) -> Browser:
    """Django's ASGI app with the dashboard at /workerkit."""
    return Browser(mount(get_asgi_application()))


@pytest.fixture
def log_in(site: redis.Redis) -> Iterator[Callable[..., str]]:
    """``log_in(**fields)``: a user with these fields, logged in; returns the session cookie's value."""
    from django.contrib.auth.models import User
    from django.test import Client

    User.objects.all().delete()

    def make(**fields: Any) -> str:
        user = User.objects.create_user(username=f"user{User.objects.count()}", password="secret", **fields)
        browser = Client()
        browser.force_login(user)
        return str(browser.cookies[settings.SESSION_COOKIE_NAME].value)

    yield make
    User.objects.all().delete()


@pytest.fixture
def queued(site: redis.Redis) -> None:
    """One job waiting in the queue ``default``."""
    from wkdj_app.jobs import RecordEntry

    RecordEntry.perform_async("waiting")


def with_session(client: Browser, session: str) -> Browser:
    client.cookies.set(settings.SESSION_COOKIE_NAME, session)
    return client


def test_anonymous_visitors_are_sent_to_the_login_page(client: Browser) -> None:
    page = client.get("/workerkit/queues?page=2")
    assert (page.status_code, page.headers["location"]) == (302, "/login/?next=/workerkit/queues%3Fpage%3D2")
    assert client.get("/workerkit/stats.json").status_code == 302
    assert client.post("/workerkit/queues/default/clear").status_code == 302


def test_a_staff_session_sees_the_dashboard(client: Browser, log_in: Callable[..., str], queued: None) -> None:
    with_session(client, log_in(is_staff=True))
    page = client.get("/workerkit/")
    assert page.status_code == 200
    assert "<title>Dashboard · workerkit</title>" in page.text
    assert client.get("/workerkit/stats.json").json()["queues"]["default"]["size"] == 1


def test_users_who_are_not_staff_are_refused(client: Browser, log_in: Callable[..., str]) -> None:
    with_session(client, log_in())
    page = client.get("/workerkit/")
    assert (page.status_code, page.text) == (403, "The workerkit dashboard is for staff users only.\n")


def test_inactive_staff_and_unknown_sessions_are_anonymous(client: Browser, log_in: Callable[..., str]) -> None:
    inactive = log_in(is_staff=True, is_active=False)
    assert with_session(client, inactive).get("/workerkit/").status_code == 302
    assert with_session(client, "no-such-session").get("/workerkit/").status_code == 302


def test_django_still_serves_its_own_paths(client: Browser, log_in: Callable[..., str]) -> None:
    assert client.get("/hello/").text == "hello from django, anonymous"
    with_session(client, log_in(is_staff=True))
    assert client.get("/hello/").text == "hello from django, user0"
    assert client.get("/nothing-here/").status_code == 404  # Django's 404, not the dashboard's
    bare = client.get("/workerkit?poll=5")
    assert (bare.status_code, bare.headers["location"]) == (308, "/workerkit/?poll=5")


def test_a_form_from_one_web_process_posts_to_another(
    log_in: Callable[..., str], queued: None, site: redis.Redis
) -> None:
    """Every process derives the CSRF key from SECRET_KEY, so two apps (two processes) accept each other's forms."""
    session = log_in(is_staff=True)
    first, second = Browser(mount(get_asgi_application())), Browser(mount(get_asgi_application()))
    form = with_session(first, session).get("/workerkit/queues")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    second.cookies = first.cookies
    cleared = second.post("/workerkit/queues/default/clear", data={"csrf_token": token.group(1)})
    assert cleared.status_code == 303, cleared.text
    assert site.llen(KEYS.queue("default")) == 0


def test_the_prefix_is_checked() -> None:
    with pytest.raises(ValueError, match="prefix must start with '/' and not end with one"):
        mount(get_asgi_application(), prefix="/workerkit/")


def test_the_dashboard_alone_behind_staff_required(log_in: Callable[..., str], queued: None) -> None:
    """A site served by WSGI runs the dashboard as an ASGI app of its own (docs/django.md)."""
    from workerkit.contrib.django.asgi import csrf_secret
    from workerkit.contrib.django.auth import staff_required
    from workerkit.web import dashboard

    alone = Browser(dashboard(auth=staff_required, secret=csrf_secret()))
    anonymous = alone.get("/queues")
    assert (anonymous.status_code, anonymous.headers["location"]) == (302, "/login/?next=/queues")
    assert with_session(alone, log_in(is_staff=True)).get("/stats.json").json()["enqueued"] == 1


def test_the_management_command_serves_the_dashboard_with_the_settings(
    queued: None, start_process: Callable[..., ChildProcess]
) -> None:
    """``manage.py workerkit web``: the settings' Redis and namespace, basic auth from the environment."""
    port = free_port()
    web = start_process("python", "-m", "django", "workerkit", "web", "--port", str(port),
                        env={"WORKERKIT_WEB_USER": "ops", "WORKERKIT_WEB_PASSWORD": "long secret"})
    url = f"http://127.0.0.1:{port}/stats.json"

    def stats() -> httpx.Response | None:
        try:
            return httpx.get(url, auth=("ops", "long secret"), timeout=10)
        except httpx.TransportError:
            return None

    answer = wait_for(stats, "the dashboard to answer", 60, web.output)
    assert answer.json()["enqueued"] == 1  # the job queued in the settings' namespace
    assert httpx.get(url, timeout=10).status_code == 401
