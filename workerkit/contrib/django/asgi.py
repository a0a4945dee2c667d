"""The dashboard inside a Django ASGI app: ``application = mount(get_asgi_application())``.

::

    # mysite/asgi.py
    from django.core.asgi import get_asgi_application
    from workerkit.contrib.django.asgi import mount

    application = mount(get_asgi_application(), prefix="/workerkit")   # behind staff_required

Requests under ``prefix`` go to the dashboard, every other request (and websocket) to Django, untouched.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils.crypto import salted_hmac
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from workerkit.contrib.django.auth import staff_required
from workerkit.web.app import dashboard
from workerkit.web.security import Auth


def csrf_secret() -> bytes:
    """The key that signs the dashboard's CSRF cookie, derived from ``settings.SECRET_KEY``: every process
    of the site signs alike, so a form loaded from one process may be posted to another."""
    return bytes(salted_hmac("workerkit.contrib.django.asgi", "dashboard CSRF cookie", algorithm="sha256").digest())


def mount(
    django_app: ASGIApp,
    prefix: str = "/workerkit",
    *,
    auth: Auth | None = staff_required,
    secret: bytes | str | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> ASGIApp:
    """An ASGI app serving the dashboard under ``prefix`` and ``django_app`` everywhere else.

    ``auth`` defaults to :data:`~workerkit.contrib.django.auth.staff_required`; ``auth=None`` opens the
    dashboard, which then answers only on loopback host names (for development). ``secret`` defaults to
    :func:`csrf_secret`; ``allowed_hosts`` is the dashboard's (``docs/dashboard.md``). ``prefix`` itself
    redirects to ``prefix/``."""
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ValueError(f"prefix must start with '/' and not end with one (such as '/workerkit'), not {prefix!r}")
    board = dashboard(auth=auth, secret=secret or csrf_secret(), allowed_hosts=allowed_hosts)

    def to_slash(request: Request) -> Response:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(f"{request.scope.get('root_path', '')}{prefix}/{query}", status_code=308)

    return Starlette(routes=[Route(prefix, to_slash), Mount(prefix, app=board), Mount("", app=django_app)])
