"""Parse a Procfile (Foreman's syntax) into ordered entries; every error names the file and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from procman.errors import ConfigError

_LINE = re.compile(r"^([A-Za-z0-9_-]+):[ \t]*(.*?)[ \t]*$")


class ProcfileEntry(NamedTuple):
    """One ``name: command`` line; ``position`` is its place among the Procfile's entries (for ports)."""

    name: str
    command: str
    position: int
    line: int


def parse_procfile(text: str, source: str = "Procfile") -> list[ProcfileEntry]:
    """Parse Procfile text. Blank lines and ``#`` comments are skipped; anything else must be ``name: command``."""
    entries: list[ProcfileEntry] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"expected 'name: command' (names use A-Z a-z 0-9 _ -), got {line!r}", source, number)
        name, command = match.groups()
        if not command:
            raise ConfigError(f"process {name!r} has no command", source, number)
        if "\0" in command:
            raise ConfigError(f"the command of {name!r} contains a NUL byte", source, number)
        if name in seen:
            raise ConfigError(f"duplicate process name {name!r} (first defined on line {seen[name]})", source, number)
        seen[name] = number
        entries.append(ProcfileEntry(name, command, len(entries), number))
    if not entries:
        raise ConfigError("no processes defined", source)
    return entries


def read_procfile(path: Path) -> list[ProcfileEntry]:
    """Read and parse the Procfile at ``path``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("Procfile not found (use -f to name another one)", str(path)) from None
    except OSError as error:
        raise ConfigError(f"cannot read Procfile: {error.strerror}", str(path)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError("not valid UTF-8", str(path), line) from None
    return parse_procfile(text, str(path))
