"""workerkit for Django: add ``"workerkit.contrib.django"`` to ``INSTALLED_APPS``.

- :mod:`~workerkit.contrib.django.apps` applies ``settings.WORKERKIT`` when Django starts
  (:mod:`~workerkit.contrib.django.conf` reads and checks it) and wraps every job in
  :func:`~workerkit.contrib.django.db.close_old_connections_middleware`;
- ``python manage.py workerkit worker|run|web ...`` runs the workerkit command line with the project set up;
- :func:`workerkit.contrib.django.transactions.on_commit_push` pushes a job once the transaction commits;
- :func:`workerkit.contrib.django.asgi.mount` serves the dashboard inside Django's ASGI app, behind
  :data:`workerkit.contrib.django.auth.staff_required`;
- :func:`workerkit.contrib.django.bootstrap.setup_if_configured` sets Django up for ``workerkit`` commands
  run with ``DJANGO_SETTINGS_MODULE``;
- ``"workerkit.contrib.django.WorkerkitBackend"`` is a backend for Django's Tasks framework (``TASKS``),
  defined in :mod:`~workerkit.contrib.django.tasks` and imported from there when first asked for.

This package imports nothing from Django itself, so ``bootstrap`` can be imported without Django installed.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"WorkerkitBackend": "workerkit.contrib.django.tasks"}


def __getattr__(name: str) -> Any:
    """``WorkerkitBackend``, imported (with Django's Tasks framework) only when asked for."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
