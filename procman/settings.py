"""Option defaults from ``[tool.procman]`` in ``pyproject.toml`` and ``PROCMAN_*`` variables.

Precedence: command-line flags, then ``PROCMAN_<KEY>`` (upper case, ``-`` as ``_``), then
``[tool.procman]`` in the current folder's ``pyproject.toml``, then the built-in default. The table's
``processes`` key holds the per-process options, read by :mod:`procman.processconfig`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from procman.errors import ConfigError


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _to_list(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _to_text(value: Any) -> str:
    if isinstance(value, dict):  # concurrency as a TOML table: {web = 2, worker = 4}
        return ",".join(f"{name}={count}" for name, count in value.items())
    if isinstance(value, (list, bool)):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(value)


def seconds(value: Any) -> float:
    """A duration: a finite number of seconds, 0 or more."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"expected a number of seconds, 0 or more, got {value!r}")
    return number


def restart_limit(value: Any) -> tuple[int, float]:
    """``COUNT`` or ``COUNT/SECONDS``: at most COUNT restarts within SECONDS (default 600) per instance."""
    text = str(value).strip() if not isinstance(value, bool) else ""
    count, slash, window = text.partition("/")
    try:
        limit = int(count)
        seconds_ = float(window) if slash else 600.0
    except ValueError:
        limit, seconds_ = 0, 0.0
    if limit < 1 or not math.isfinite(seconds_) or seconds_ <= 0:
        raise ValueError(f"expected COUNT or COUNT/SECONDS (a whole number of restarts, 1 or more, within a number "
                         f"of seconds above 0, e.g. 5/600), got {value!r}")
    return limit, seconds_


# key (as spelled in pyproject.toml) -> converter
KEYS: dict[str, Callable[[Any], Any]] = {
    "procfile": _to_text,
    "env": _to_list,
    "root": _to_text,
    "port": _to_int,
    "concurrency": _to_text,
    "timeout": seconds,
    "color": _to_bool,
    "timestamp": _to_bool,
    "prefix": _to_bool,
    "ignore": _to_list,
    "can-die": _to_list,
    "restart": _to_list,
    "restart-limit": restart_limit,
    "tty": _to_bool,
}


def env_variable(key: str) -> str:
    """``can-die`` -> ``PROCMAN_CAN_DIE``."""
    return "PROCMAN_" + key.upper().replace("-", "_")


PROCESSES = "processes"


def read_pyproject(path: Path) -> dict[str, Any]:
    """The ``[tool.procman]`` table of ``path`` (empty when the file or table is absent), ``processes`` included."""
    if not path.is_file():
        return {}
    import tomllib

    try:
        with path.open("rb") as file:
            table = tomllib.load(file).get("tool", {}).get("procman", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"invalid TOML: {error}", str(path)) from None
    if not isinstance(table, dict):
        raise ConfigError("[tool.procman] must be a table", str(path))
    for key in table:
        if key not in KEYS and key != PROCESSES:
            raise ConfigError(f"unknown key {key!r} in [tool.procman] (known: {', '.join(KEYS)}, {PROCESSES})",
                              str(path))
    return table


def defaults(environ: Mapping[str, str], pyproject: Path) -> dict[str, Any]:
    """Every configured default, converted, keyed by ``KEYS`` names; missing keys are simply absent."""
    found: dict[str, tuple[Any, str]] = {
        key: (value, f"{pyproject} [tool.procman] {key}")
        for key, value in read_pyproject(pyproject).items()
        if key != PROCESSES
    }
    for key in KEYS:
        variable = env_variable(key)
        if variable in environ:
            found[key] = (environ[variable], variable)
    result: dict[str, Any] = {}
    for key, (value, source) in found.items():
        try:
            result[key] = KEYS[key](value)
        except ValueError as error:
            raise ConfigError(str(error), source) from None
    return result
