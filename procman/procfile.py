"""Parse a Procfile (Foreman's syntax) into ordered entries; every error names the file and line."""

from __future__ import annotations

import re
import shlex
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


_PUNCTUATION = ";&|()<>"
_SHELL_ONLY_WORDS = frozenset(
    # reserved words, and builtins with no program of that name to exec
    {"!", "{", "}", "case", "do", "done", "elif", "else", "esac", "exec", "fi", "for", "function", "if", "in",
     "select", "then", "time", "until", "while",
     ".", ":", "alias", "bg", "break", "cd", "command", "continue", "eval", "exit", "export", "fg", "getopts",
     "hash", "jobs", "local", "read", "readonly", "return", "set", "shift", "source", "times", "trap", "type",
     "ulimit", "umask", "unalias", "unset", "wait"}
)


def shell_command(command: str) -> str:
    """The text ``/bin/sh -c`` runs for a Procfile command: ``exec COMMAND`` when it is one simple command.

    With ``exec`` the program replaces the shell (as Foreman does), so it is the process that gets the
    signals and whose exit code counts: Debian's dash, unlike bash, keeps waiting as a parent otherwise,
    dies at the first TERM and leaves the program's graceful shutdown unreported. Lists, pipelines,
    compound commands, shell builtins and commands led by a variable assignment are left to the shell
    as written.
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: let the shell report it
        return command
    if not tokens or tokens[0] in _SHELL_ONLY_WORDS or "=" in tokens[0] or any(map(_joins_commands, tokens)):
        return command
    return f"exec {command}"


def _joins_commands(token: str) -> bool:
    """An operator token that is not a redirection (``>``, ``2>&1``'s ``>&``, ``<``): ``;``, ``&&``, ``|``..."""
    return token[0] in ";&|()" and all(char in _PUNCTUATION for char in token)


def shell_argv(command: str) -> list[str]:
    """The argv that runs a Procfile command: ``/bin/sh -c`` with :func:`shell_command`."""
    return ["/bin/sh", "-c", shell_command(command)]
