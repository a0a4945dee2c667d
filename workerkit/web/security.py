"""The dashboard's defences: authentication, CSRF tokens and security headers.

- Authentication is a hook: any callable ``(request) -> bool | Response`` (or an async one; a sync one runs in
  the thread pool). :func:`basic_auth` builds
  one that checks HTTP basic credentials in constant time; the standalone server uses it with the
  ``WORKERKIT_WEB_USER`` / ``WORKERKIT_WEB_PASSWORD`` environment variables.
- CSRF: a random token lives in an HttpOnly, SameSite=Strict cookie, signed with HMAC-SHA256 under the
  dashboard's secret; every form carries the token in a hidden field, and a POST passes only when the
  cookie's signature is valid and the field equals the cookie's token. A POST that a browser marks as
  cross-site (``Sec-Fetch-Site``) is refused before that.
- Every response carries a Content-Security-Policy without inline script or style, and no-sniff,
  no-framing and same-origin-referrer headers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Auth = Callable[[Request], "bool | Response | Awaitable[bool | Response]"]
"""An authentication hook: return True to let the request through, False for a 401 with a basic-auth
challenge, or a response of your own (a redirect to your login page). An ``async`` hook is awaited; any
other runs in Starlette's thread pool, so a hook that blocks (a Django session lookup) stalls no other
request."""

CSRF_COOKIE = "workerkit_csrf"
CSRF_FIELD = "csrf_token"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def basic_auth(user: str, password: str) -> Auth:
    """An auth hook accepting only HTTP basic credentials ``user``:``password`` (compared in constant time)."""
    expected = hashlib.sha256(f"{user}:{password}".encode()).digest()

    def check(request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(hashlib.sha256(given).digest(), expected)

    return check


def bearer_auth(token: str) -> Auth:
    """An auth hook accepting only ``Authorization: Bearer <token>`` (compared in constant time): for a
    Prometheus scraper on ``/metrics`` (``dashboard(metrics_auth=...)``)."""
    if not token:
        raise ValueError("the bearer token is empty")
    expected = hashlib.sha256(token.encode()).digest()

    def check(request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(hashlib.sha256(given.encode()).digest(), expected)

    return check


class CsrfTokens:
    """Issues and checks CSRF tokens signed with ``secret``."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, token: str) -> str:
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()

    def cookie_value(self, token: str) -> str:
        """The cookie that vouches for ``token``."""
        return f"{token}.{self._sign(token)}"

    def token_from_cookie(self, cookie: str | None) -> str | None:
        """The token in a cookie whose signature is valid, else None."""
        token, _, signature = (cookie or "").partition(".")
        if not token or not hmac.compare_digest(signature, self._sign(token)):
            return None
        return token

    def token_for(self, request: Request) -> str:
        """The request's valid token, or a fresh one (the response must then set the cookie)."""
        return self.token_from_cookie(request.cookies.get(CSRF_COOKIE)) or secrets.token_urlsafe(32)

    def accepts(self, request: Request, submitted: str | None) -> bool:
        """Whether a POST's submitted token matches its signed cookie, and it is not cross-site."""
        if request.headers.get("sec-fetch-site", "same-origin") != "same-origin":
            return False
        token = self.token_from_cookie(request.cookies.get(CSRF_COOKIE))
        return token is not None and submitted is not None and hmac.compare_digest(token, submitted)


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequireAuth:
    """ASGI middleware asking the auth hook about every request before the dashboard sees it; the paths in
    ``own`` (below the dashboard's mount point, ``/metrics``) ask their own hook instead."""

    def __init__(self, app: ASGIApp, auth: Auth | None, own: dict[str, Auth] | None = None) -> None:
        self.app = app
        self.auth = auth
        self.own = own or {}

    async def _verdict(self, auth: Auth, request: Request) -> bool | Response:
        is_async = inspect.iscoroutinefunction(auth) or inspect.iscoroutinefunction(type(auth).__call__)
        verdict = auth(request) if is_async else await run_in_threadpool(auth, request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth = self.own.get(_route_path(scope), self.auth) if scope["type"] == "http" else None
        if auth is not None:
            verdict = await self._verdict(auth, Request(scope))
            if isinstance(verdict, Response) or not verdict:
                refusal = verdict if isinstance(verdict, Response) else _challenge()
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The request's path below the app's mount point."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root):] if root and path.startswith(root) else path


def _challenge() -> Response:
    return Response(
        "Authentication required.\n",
        status_code=401,
        headers={"www-authenticate": 'Basic realm="workerkit", charset="UTF-8"'},
        media_type="text/plain",
    )
