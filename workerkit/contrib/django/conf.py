"""``settings.WORKERKIT``: read and check the dict, then apply it with :func:`workerkit.config.configure`.

::

    WORKERKIT = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "NAMESPACE": "myapp",
        "SERVER_MIDDLEWARE": ["myapp.jobs.timing"],   # callables or dotted paths
        "JOB_MODULES": ["myapp.jobs"],                # imported so their jobs register
    }

Every key is optional. A key workerkit does not know, or a value of the wrong type, raises
``ImproperlyConfigured`` naming it: ``settings.WORKERKIT['MAX_RETRIES'] must be ...``.
:func:`~workerkit.contrib.django.db.close_old_connections_middleware` always comes first in the server
middleware.
"""

from __future__ import annotations

import importlib
import math
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from workerkit import compat, config, topology
from workerkit.contrib.django.db import close_old_connections_middleware

Parse = Callable[[str, object], Any]
"""``parse(where, value)``: the checked value, or ImproperlyConfigured naming ``where``."""


def _where(key: str) -> str:
    return f"settings.WORKERKIT[{key!r}]"


def _shown(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _failure(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()


def _string(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{where} must be a string, not {_shown(value)}")
    return value


def _url(where: str, value: object) -> str:
    url = _string(where, value)
    if not url:
        raise ImproperlyConfigured(f"{where} must be a Redis URL such as redis://127.0.0.1:6379/0, not ''")
    try:
        topology.parse(url)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{where}: {exc}") from None
    return url


def _count(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(f"{where} must be a whole number of 0 or more, not {_shown(value)}")
    return value


def _milliseconds(where: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"{where} must be a whole number of milliseconds, 1 or more, not {_shown(value)}")
    return value


def _seconds(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ImproperlyConfigured(f"{where} must be a number of seconds above 0, not {_shown(value)}")
    return float(value)


def _payload_format(where: str, value: object) -> str:
    try:
        return compat.check_payload_format(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{where} must be one of {', '.join(compat.PAYLOAD_FORMATS)}, not {_shown(value)}"
        ) from None


def _items(where: str, value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise ImproperlyConfigured(f"{where} must be a list, not {_shown(value)}")
    return list(value)


def _callables(where: str, value: object) -> list[Any]:
    """A list of callables, each given as itself or as the dotted path of one."""
    found: list[Any] = []
    for index, item in enumerate(_items(where, value)):
        if isinstance(item, str):
            try:
                item = import_string(item)
            except ImportError as exc:
                raise ImproperlyConfigured(f"{where}[{index}]: cannot import {item!r}: {_failure(exc)}") from exc
        if not callable(item):
            raise ImproperlyConfigured(f"{where}[{index}] must be a callable or its dotted path, not {_shown(item)}")
        found.append(item)
    return found


def _modules(where: str, value: object) -> list[str]:
    names = _items(where, value)
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(f"{where}[{index}] must be a module's dotted path, not {_shown(name)}")
    return [str(name) for name in names]


SETTINGS: dict[str, tuple[str, Parse]] = {
    "REDIS_URL": ("redis_url", _url),
    "NAMESPACE": ("namespace", _string),
    "CLIENT_MIDDLEWARE": ("client_middleware", _callables),
    "SERVER_MIDDLEWARE": ("server_middleware", _callables),
    "ERROR_HANDLERS": ("error_handlers", _callables),
    "DEATH_HANDLERS": ("death_handlers", _callables),
    "MAX_RETRIES": ("max_retries", _count),
    "DEAD_MAX_JOBS": ("dead_max_jobs", _count),
    "DEAD_TIMEOUT": ("dead_timeout", _seconds),
    "PAYLOAD_FORMAT": ("payload_format", _payload_format),
    "RESULT_TTL": ("result_ttl", _seconds),
    "WAIT_REPLICAS": ("wait_replicas", _count),
    "WAIT_TIMEOUT_MS": ("wait_timeout_ms", _milliseconds),
}
"""Each key of ``settings.WORKERKIT`` but ``JOB_MODULES``: the ``configure`` argument it sets, and its parser."""
JOB_MODULES = "JOB_MODULES"


def parse(values: object) -> tuple[dict[str, Any], list[str]]:
    """The ``configure`` arguments and the job modules ``values`` (``settings.WORKERKIT``) ask for.

    Raises ImproperlyConfigured naming the first key that is unknown or wrong (a dotted path that cannot be
    imported included)."""
    if not isinstance(values, Mapping):
        raise ImproperlyConfigured(f"settings.WORKERKIT must be a dict, not {_shown(values)}")
    known = [*SETTINGS, JOB_MODULES]
    for key in values:
        if key not in known:
            raise ImproperlyConfigured(f"{_where(key)} is not a workerkit setting (known: {', '.join(known)})")
    options = {SETTINGS[key][0]: SETTINGS[key][1](_where(key), value)
               for key, value in values.items() if key != JOB_MODULES}
    return options, _modules(_where(JOB_MODULES), values.get(JOB_MODULES, []))


def apply_settings(values: object) -> config.Config:
    """Configure workerkit from ``values`` (``settings.WORKERKIT``), then import its ``JOB_MODULES``.

    Keys left out keep their value (so the Redis URL still comes from ``WORKERKIT_REDIS_URL`` or
    ``REDIS_URL``). The server middleware is :func:`close_old_connections_middleware`, then
    ``SERVER_MIDDLEWARE`` (or the middleware configured before)."""
    options, modules = parse(values)
    chosen = options.pop("server_middleware", config.current().server_middleware)
    options["server_middleware"] = [
        close_old_connections_middleware, *(step for step in chosen if step is not close_old_connections_middleware)
    ]
    configured = config.configure(**options)
    for index, module in enumerate(modules):
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ImproperlyConfigured(
                f"{_where(JOB_MODULES)}[{index}]: cannot import {module!r}: {_failure(exc)}"
            ) from exc
    return configured
