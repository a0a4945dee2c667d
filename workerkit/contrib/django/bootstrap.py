"""Set Django up for a ``workerkit`` command when ``DJANGO_SETTINGS_MODULE`` says which project.

``workerkit worker``, ``run`` and ``web`` call :func:`setup_if_configured` before they start, so with
``DJANGO_SETTINGS_MODULE`` set they see the project's ``settings.WORKERKIT`` and its jobs, and their jobs can
use the ORM. Without it, Django is never imported.
"""

from __future__ import annotations

import os
import traceback

SETTINGS_VARIABLE = "DJANGO_SETTINGS_MODULE"


class SetupError(Exception):
    """``DJANGO_SETTINGS_MODULE`` is set but Django cannot be set up with it (the message says why)."""


def setup_if_configured() -> bool:
    """``django.setup()`` when ``DJANGO_SETTINGS_MODULE`` is set (once: nothing to do when Django is already
    set up, as under ``manage.py``); return whether it is. Raises :class:`SetupError` naming the variable
    when Django is not installed or the settings fail to load (an import error, ``ImproperlyConfigured``)."""
    name = os.environ.get(SETTINGS_VARIABLE)
    if not name:
        return False
    try:
        import django
        from django.apps import apps
    except ImportError as exc:
        raise SetupError(
            f"{SETTINGS_VARIABLE} is set ({name}) but Django cannot be imported ({exc}): install it "
            f"(pip install 'procman-workerkit[django]') or unset {SETTINGS_VARIABLE}"
        ) from exc
    if apps.ready:
        return True
    try:
        django.setup()
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(exc)).strip()
        raise SetupError(f"cannot set up Django with {SETTINGS_VARIABLE}={name}: {detail}") from exc
    return True
