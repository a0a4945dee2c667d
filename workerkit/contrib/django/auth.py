"""Dashboard auth hooks that trust Django's login: the session cookie, read with Django's session engine.

``staff_required`` lets through logged-in, active staff users; anyone not logged in is sent to
``settings.LOGIN_URL`` (with ``?next=``), and a logged-in user who fails the test gets ``403``. The hooks are
plain functions that use the ORM, so the dashboard runs them in Starlette's thread pool, where Django allows
queries; they close that thread's old connections before and after, as Django does around a request.
Needs ``django.contrib.sessions`` and ``django.contrib.auth``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from workerkit.contrib.django.db import fresh_connections
from workerkit.web.security import Auth


def session_user(request: Request) -> Any:
    """The Django user whose session cookie ``request`` carries, else an ``AnonymousUser``.

    Django's own ``get_user`` checks the session's password hash, so a session ends when its user's password
    changes, as it does on the rest of the site."""
    engine = import_module(settings.SESSION_ENGINE)
    django_request = HttpRequest()
    django_request.session = engine.SessionStore(request.cookies.get(settings.SESSION_COOKIE_NAME))
    return get_user(django_request)


def user_passes_test(test: Callable[[Any], bool]) -> Auth:
    """An auth hook letting through the logged-in users for whom ``test(user)`` is true (compare Django's
    ``user_passes_test``); see the module's docstring for the others."""

    def check(request: Request) -> bool | Response:
        from django.contrib.auth.views import redirect_to_login  # loads the models: only once Django is set up

        with fresh_connections():
            user = session_user(request)
            if not user.is_authenticated:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(redirect_to_login(target).url, status_code=302)
            if not test(user):
                return PlainTextResponse("The workerkit dashboard is for staff users only.\n", status_code=403)
            return True

    return check


staff_required = user_passes_test(lambda user: bool(user.is_active and user.is_staff))
"""The dashboard for logged-in, active staff users (``is_staff``), as Django's admin."""
