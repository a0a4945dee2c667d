"""The formation: how many instances of each process run, their names and ports (Foreman's rules).

A count may also be a range, ``worker=auto:1..8``: the formation then holds the most instances (so their
names and ports are fixed), and the autoscaler (:mod:`procman.autoscale`) runs between the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from procman.errors import ConfigError
from procman.procfile import ProcfileEntry

DEFAULT_PORT = 5000
PORT_STEP_PER_ENTRY = 100
MAX_PORT = 65535


class AutoRange(NamedTuple):
    """``auto:LOW..HIGH``: at least ``low`` and at most ``high`` instances, as the autoscale command says."""

    low: int
    high: int


Counts = dict[str, int | AutoRange]


def _auto_range(name: str, text: str, argument: str) -> AutoRange:
    low, dots, high = text.removeprefix("auto:").partition("..")
    try:
        scale = AutoRange(int(low), int(high))
    except ValueError:
        scale = AutoRange(0, -1)
    if not dots or scale.low < 1 or scale.high < scale.low:
        raise ConfigError(f"expected auto:LOW..HIGH with 1 <= LOW <= HIGH, got {text!r} for {name}", argument)
    return scale


class Instance(NamedTuple):
    """One process to run: ``web.2`` is the second instance of the ``web`` entry."""

    entry: ProcfileEntry
    number: int
    port: int

    @property
    def name(self) -> str:
        """The process type (the Procfile name)."""
        return self.entry.name

    @property
    def label(self) -> str:
        """``web.1``: what the output prefix, ``PS`` and the control commands use."""
        return f"{self.entry.name}.{self.number}"

    @property
    def command(self) -> str:
        """The shell command from the Procfile."""
        return self.entry.command


def parse_concurrency(text: str, argument: str = "-c/--concurrency") -> Counts:
    """Parse ``web=2,worker=auto:1..8,all=1`` into counts; ``all`` sets the default for unnamed entries."""
    counts: Counts = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, equals, number = item.partition("=")
        name = name.strip()
        if not equals:
            raise ConfigError(f"expected NAME=COUNT, got {item!r} (Foreman's -c meant --color; use --color)", argument)
        if not name:
            raise ConfigError(f"missing process name in {item!r}", argument)
        if number.strip().startswith("auto:"):
            if name == "all":
                raise ConfigError("all=auto is not supported: name the process to autoscale", argument)
            counts[name] = _auto_range(name, number.strip(), argument)
            continue
        try:
            count = int(number)
        except ValueError:
            raise ConfigError(f"count must be a whole number, got {number.strip()!r} for {name}", argument) from None
        if count < 0:
            raise ConfigError(f"count must not be negative, got {count} for {name}", argument)
        counts[name] = count
    return counts


def check_names(names: Iterable[str], entries: Sequence[ProcfileEntry], argument: str) -> None:
    """Raise if a name is not a Procfile entry."""
    known = [entry.name for entry in entries]
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown process {name!r} (the Procfile defines: {', '.join(known)})", argument)


def base_port(option: int | None, dotenv: Mapping[str, str], shell: Mapping[str, str]) -> int:
    """Foreman's base port: ``-p``, else ``PORT`` from the env files, else ``$PORT``, else 5000."""
    if option is not None:
        return option
    for source, env in (("PORT in the env files", dotenv), ("$PORT", shell)):
        if "PORT" in env:
            try:
                return int(env["PORT"])
            except ValueError:
                raise ConfigError(f"{source} is not a number: {env['PORT']!r}") from None
    return DEFAULT_PORT


def port_for(entry: ProcfileEntry, number: int, base: int) -> int:
    """``base + 100 * (index of the entry in the Procfile) + (instance - 1)``, whatever else is selected."""
    return base + PORT_STEP_PER_ENTRY * entry.position + number - 1


def autoscaled(counts: Mapping[str, int | AutoRange]) -> dict[str, AutoRange]:
    """The process types given a range."""
    return {name: count for name, count in counts.items() if isinstance(count, AutoRange)}


def build_formation(
    entries: Sequence[ProcfileEntry],
    counts: Mapping[str, int | AutoRange],
    base: int,
    selected: Sequence[str] = (),
    ignored: Sequence[str] = (),
) -> list[Instance]:
    """Expand the entries into instances (an autoscaled type: its most). ``selected`` limits to those names;
    ``ignored`` drops names."""
    check_names((name for name in counts if name != "all"), entries, "-c/--concurrency")
    check_names(selected, entries, "process name")
    check_names(ignored, entries, "-x/--ignore")
    default = counts.get("all", 1)
    instances: list[Instance] = []
    for entry in entries:
        if (selected and entry.name not in selected) or entry.name in ignored:
            continue
        given = counts.get(entry.name, default)
        count = given.high if isinstance(given, AutoRange) else given
        first, last = port_for(entry, 1, base), port_for(entry, count, base)
        if count and not 0 < first <= MAX_PORT:
            raise ConfigError(f"base port {base} gives {entry.name} port {first}; ports run from 1 to {MAX_PORT}",
                              "-p/--port or PORT")
        if count and last > MAX_PORT:
            raise ConfigError(f"{entry.name}={count} needs ports up to {last} from base port {base}; ports run up to "
                              f"{MAX_PORT}", "-c/--concurrency")
        instances.extend(Instance(entry, number, port_for(entry, number, base)) for number in range(1, count + 1))
    return instances


def all_ports(entries: Sequence[ProcfileEntry], base: int) -> dict[str, int]:
    """The first instance's port of every entry (for ``PROCMAN_PORT_<NAME>``)."""
    return {entry.name: port_for(entry, 1, base) for entry in entries}
