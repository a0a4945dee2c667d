"""The dashboard's defences: escaping, CSP, CSRF, authentication."""

from __future__ import annotations

import re
import time

import pytest
import redis
from dashboard_helpers import KEYS, LOCAL, PREFIX, add_to, csrf_token, enqueue, failed, payload
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount
from starlette.testclient import TestClient

from workerkit.api import Api
from workerkit.sets import JobSet
from workerkit.web import basic_auth, dashboard
from workerkit.web.security import CONTENT_SECURITY_POLICY

XSS_ARG = "<script>alert('args')</script>"
XSS_ERROR = '<img src=x onerror="alert(1)">'
PAGES = ["/", "/busy", "/queues", "/queues/default", "/scheduled", "/retries", "/dead", "/periodic"]


@pytest.fixture
def hostile(api: Api, redis_client: redis.Redis) -> str:
    """Hostile text in args, class, error and queue name in every place a job can be shown."""
    job = failed("app.jobs.<b>Bold</b>", [XSS_ARG], error_message=XSS_ERROR, error_class="<i>Err</i>")
    add_to(redis_client, KEYS.retry, job, time.time() + 60)
    add_to(redis_client, KEYS.schedule, payload("app.jobs.X", [XSS_ARG]), time.time() + 60)
    enqueue(redis_client, payload("app.jobs.X", [XSS_ARG]))
    enqueue(redis_client, payload("app.jobs.X", [1], queue="<svg onload=alert(1)>"))
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs
    return entry.key


def test_hostile_text_is_escaped_everywhere(client: TestClient, hostile: str) -> None:
    for path in [*PAGES, f"/retries/{hostile}"]:
        html = client.get(PREFIX + path).text
        assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html, path
        assert "<b>Bold</b>" not in html and "<i>Err</i>" not in html, path
    detail = client.get(f"{PREFIX}/retries/{hostile}").text
    assert "&lt;script&gt;alert(&#39;args&#39;)&lt;/script&gt;" in detail
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in detail


def test_every_page_has_the_security_headers_and_no_inline_script(client: TestClient, hostile: str) -> None:
    for path in [*PAGES, f"/retries/{hostile}", "/stats.json", "/static/dashboard.css", "/no-such-page"]:
        response = client.get(PREFIX + path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        if response.headers["content-type"].startswith("text/html"):
            assert re.findall(r"<script[^>]*>", response.text) in (
                [],
                [f'<script src="{PREFIX}/static/dashboard.js" defer>'],
            )
            tags = [re.sub(r'"[^"]*"', '""', tag) for tag in re.findall(r"<[a-z][^>]*>", response.text)]
            assert not [tag for tag in tags if re.search(r"\son\w+=|\sstyle=", tag)], path
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_the_csrf_cookie_is_signed_httponly_and_strict(client: TestClient) -> None:
    cookie = client.get(PREFIX + "/").headers["set-cookie"]
    assert cookie.startswith("workerkit_csrf=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert f"Path={PREFIX}" in cookie
    assert "set-cookie" not in client.get(PREFIX + "/").headers  # a valid cookie is kept


def retry_post(client: TestClient, key: str, **extra: str) -> int:
    return client.post(f"{PREFIX}/retries/{key}", data={"action": "delete", **extra}).status_code


def test_posts_without_a_matching_token_are_refused(
    client: TestClient, hostile: str, redis_client: redis.Redis
) -> None:
    csrf_token(client)
    assert retry_post(client, hostile) == 403
    assert retry_post(client, hostile, csrf_token="forged") == 403
    client.cookies.set("workerkit_csrf", "forged.0000", path=PREFIX)
    assert retry_post(client, hostile, csrf_token="forged") == 403
    assert redis_client.zcard(KEYS.retry) == 1
    assert "security token did not match" in client.post(f"{PREFIX}/retries", data={"action": "delete"}).text

    client.cookies.clear()
    fresh = csrf_token(client)
    cross_site = client.post(
        f"{PREFIX}/retries/{hostile}",
        data={"action": "delete", "csrf_token": fresh},
        headers={"sec-fetch-site": "cross-site"},
    )
    assert cross_site.status_code == 403 and redis_client.zcard(KEYS.retry) == 1
    assert retry_post(client, hostile, csrf_token=fresh) == 303
    assert redis_client.zcard(KEYS.retry) == 0


def test_a_token_signed_by_another_secret_is_refused(api: Api, hostile: str, redis_client: redis.Redis) -> None:
    other = TestClient(Starlette(routes=[Mount(PREFIX, dashboard(api, secret="other"))]), LOCAL, follow_redirects=False)
    token = csrf_token(other)
    mine = TestClient(Starlette(routes=[Mount(PREFIX, dashboard(api, secret="mine"))]), LOCAL, follow_redirects=False)
    mine.cookies = other.cookies
    assert mine.post(f"{PREFIX}/retries/{hostile}", data={"action": "delete", "csrf_token": token}).status_code == 403
    assert redis_client.zcard(KEYS.retry) == 1


def test_basic_auth_guards_every_page(api: Api) -> None:
    app = Starlette(routes=[Mount(PREFIX, dashboard(api, auth=basic_auth("admin", "s3cret:x")))])
    with TestClient(app) as anonymous:
        refused = anonymous.get(PREFIX + "/")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic ")
        assert anonymous.get(PREFIX + "/stats.json", auth=("admin", "wrong")).status_code == 401
        assert anonymous.get(PREFIX + "/static/dashboard.css").status_code == 401
        assert anonymous.get(PREFIX + "/", auth=("admin", "s3cret:x")).status_code == 200


def test_an_async_auth_hook_decides_per_request(api: Api) -> None:
    async def only_admins(request: Request) -> bool | Response:
        if "x-role" not in request.headers:
            return RedirectResponse("/login", status_code=303)
        return request.headers["x-role"] == "admin"

    app = Starlette(routes=[Mount(PREFIX, dashboard(api, auth=only_admins))])
    with TestClient(app, follow_redirects=False) as user:
        assert user.get(PREFIX + "/queues").headers["location"] == "/login"
        assert user.get(PREFIX + "/queues", headers={"x-role": "guest"}).status_code == 401
        assert user.get(PREFIX + "/queues", headers={"x-role": "admin"}).status_code == 200
