"""Per-process options: ``[tool.procman.processes.NAME]`` in ``pyproject.toml``, or ``[processes.NAME]`` in a
``procman.toml`` beside the Procfile.

Keys (``_`` or ``-`` in their names): ``depends_on`` (a list of names, or a table of name -> ``"ready"``,
``"exited"`` or ``"started"``), ``ready`` (a check, see :mod:`procman.readiness`), ``ready_interval``,
``ready_timeout``, ``stop_signal``, ``quiet_signal``, ``max_memory`` (see :mod:`procman.memory`), and
``autoscale``, ``autoscale_interval`` and ``autoscale_cooldown`` (see :mod:`procman.autoscale`). Every
error names the file and the key; an unknown dependency and a dependency cycle are errors too. A table
for a process the Procfile does not define is ignored (one ``pyproject.toml`` may serve several Procfiles)
and ``procman check`` lists it.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from procman.errors import ConfigError
from procman.procfile import ProcfileEntry

if TYPE_CHECKING:  # imported when a key needs them: a start without options loads neither
    from procman.readiness import Check

PROCMAN_TOML = "procman.toml"
CONDITIONS = ("ready", "exited", "started")
DEFAULT_READY_INTERVAL = 0.5
DEFAULT_READY_TIMEOUT = 60.0
DEFAULT_AUTOSCALE_INTERVAL = 5.0
DEFAULT_AUTOSCALE_COOLDOWN = 30.0


class ProcessOptions(NamedTuple):
    """What one process type was configured with (every field has a default: an absent table is these)."""

    depends_on: Mapping[str, str] = {}
    ready: Check | None = None
    ready_interval: float = DEFAULT_READY_INTERVAL
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    stop_signal: signal.Signals = signal.SIGTERM
    quiet_signal: signal.Signals | None = None
    max_memory: int | None = None  # bytes
    autoscale: str | None = None
    autoscale_interval: float = DEFAULT_AUTOSCALE_INTERVAL
    autoscale_cooldown: float = DEFAULT_AUTOSCALE_COOLDOWN


class ProcessConfig(NamedTuple):
    """The options of every configured process type, and the file (and table) they came from."""

    options: Mapping[str, ProcessOptions]
    source: str
    ignored: tuple[str, ...] = ()

    def of(self, name: str) -> ProcessOptions:
        """The options of process type ``name`` (the defaults when it has no table)."""
        return self.options.get(name, _DEFAULTS)


_DEFAULTS = ProcessOptions()
NO_CONFIG = ProcessConfig({}, "")


def _depends_on(value: Any) -> dict[str, str]:
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return dict.fromkeys(value, "ready")
    if isinstance(value, dict):
        for name, condition in value.items():
            if condition not in CONDITIONS:
                raise ValueError(f"{name} = {condition!r}: expected one of {', '.join(map(repr, CONDITIONS))}")
        return dict(value)
    raise ValueError(f'expected a list of process names or a table such as {{redis = "ready"}}, got {value!r}')


def _positive_seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a number of seconds above 0, got {value!r}")
    return float(value)


def parse_signal(value: Any) -> signal.Signals:
    """``"TERM"``, ``"SIGTERM"`` or ``15`` -> ``signal.SIGTERM``; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return signal.Signals(value)
        except ValueError:
            pass
    elif isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name in signal.Signals.__members__ and name != "SIGKILL":
            return signal.Signals[name]
    raise ValueError(f"expected a signal name such as \"TERM\", \"INT\" or \"TSTP\" (not KILL), got {value!r}")


def _command(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a command line, got {value!r}")
    return value


def _check(value: Any) -> Check:
    from procman.readiness import parse_check

    if not isinstance(value, str):
        raise ValueError(f"expected a string such as \"tcp:$PORT\", got {value!r}")
    return parse_check(value)


def _size(value: Any) -> int:
    from procman.memory import parse_size

    return parse_size(value)


_CONVERTERS = {
    "depends_on": _depends_on,
    "ready": _check,
    "ready_interval": _positive_seconds,
    "ready_timeout": _positive_seconds,
    "stop_signal": parse_signal,
    "quiet_signal": parse_signal,
    "max_memory": _size,
    "autoscale": _command,
    "autoscale_interval": _positive_seconds,
    "autoscale_cooldown": _positive_seconds,
}


def _options(table: Any, where: str) -> ProcessOptions:
    if not isinstance(table, dict):
        raise ConfigError(f"expected a table of options, got {table!r}", where)
    values: dict[str, Any] = {}
    for spelled, value in table.items():
        key = spelled.replace("-", "_")
        if key not in _CONVERTERS:
            raise ConfigError(f"unknown key {spelled!r} (known: {', '.join(_CONVERTERS)})", where)
        if key in values:
            raise ConfigError(f"{key} is given twice (with - and with _)", where)
        try:
            values[key] = _CONVERTERS[key](value)
        except ValueError as error:
            raise ConfigError(str(error), f"{where} {spelled}") from None
    return ProcessOptions(**values)


def _check_graph(options: Mapping[str, ProcessOptions], known: Sequence[str], table: str) -> None:
    """Unknown dependencies and cycles are errors naming the ``depends_on`` key."""
    for name, option in options.items():
        for dependency in option.depends_on:
            if dependency not in known:
                raise ConfigError(f"unknown process {dependency!r} (the Procfile defines: {', '.join(known)})",
                                  f"{table}.{name}] depends_on")
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name):], name]
            raise ConfigError(f"dependency cycle: {' -> '.join(cycle)}", f"{table}.{cycle[0]}] depends_on")
        if name in done:
            return
        for dependency in options.get(name, _DEFAULTS).depends_on:
            visit(dependency, [*path, name])
        done.add(name)

    for name in options:
        visit(name, [])


def parse_processes(tables: Any, source: str, table: str, entries: Sequence[ProcfileEntry]) -> ProcessConfig:
    """Validate the ``processes`` table read from ``source`` (``table`` is how its header starts)."""
    if not isinstance(tables, dict):
        raise ConfigError(f"{table}] must be a table of process tables", source)
    known = [entry.name for entry in entries]
    options: dict[str, ProcessOptions] = {}
    for name, value in tables.items():
        option = _options(value, f"{source} {table}.{name}]")
        if name in known:
            options[name] = option
    _check_graph(options, known, f"{source} {table}")
    return ProcessConfig(options, f"{source} {table}]", tuple(name for name in tables if name not in known))


def _load_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"invalid TOML: {error}", str(path)) from None


def load_process_config(pyproject_table: Mapping[str, Any], pyproject: Path, procfile: Path,
                        entries: Sequence[ProcfileEntry]) -> ProcessConfig:
    """The per-process options: ``processes`` of the ``[tool.procman]`` table read from ``pyproject``, or a
    ``procman.toml`` beside the Procfile (both at once is an error)."""
    beside = procfile.parent / PROCMAN_TOML
    found = []
    if "processes" in pyproject_table:
        found.append(parse_processes(pyproject_table["processes"], str(pyproject), "[tool.procman.processes",
                                     entries))
    if beside.is_file():
        data = _load_toml(beside)
        unknown = [key for key in data if key != "processes"]
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r}: procman.toml holds only [processes.NAME] tables (other "
                              "settings go in [tool.procman] of pyproject.toml or PROCMAN_* variables)", str(beside))
        found.append(parse_processes(data.get("processes", {}), str(beside), "[processes", entries))
    if len(found) == 2:
        raise ConfigError(f"processes are configured in {pyproject} too; keep one of the two", str(beside))
    return found[0] if found else NO_CONFIG
