"""``procman start --watch 'web=**/*.py'``: restart a process type, one instance at a time, when files change.

The watching runs in a child process (``python -m procman.watch ROOT``, started like a readiness check:
its own process group, the guardian, the parent-death signal), so procman itself loads no watchfiles and
runs no thread. The child uses watchfiles, which skips ``.git``, ``.venv``, ``__pycache__`` and the like
and waits :data:`DEBOUNCE_MS` for a burst of changes to settle, and prints each batch as one JSON list of
paths relative to the root (and ``"ready"`` once it watches, which procman reports). procman matches them
against the patterns: shell wildcards where ``*`` also matches ``/``, and a leading ``**/`` also matches at
the top (``**/*.py`` matches ``app.py``).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from procman.child import Readers
from procman.errors import ConfigError
from procman.output import read_chunk
from procman.procfile import ProcfileEntry

DEBOUNCE_MS = 500
IDLE_WAKEUP_MS = 500  # how soon the child can tell that it watches (it wakes this often while nothing changes)


class WatchSpec(NamedTuple):
    """Restart process type ``name`` when a file matching ``pattern`` changes."""

    name: str
    pattern: str


def parse_watch(values: Sequence[str], entries: Sequence[ProcfileEntry]) -> list[WatchSpec]:
    """``["web=**/*.py", ...]`` -> specs; an unknown name or a missing pattern is an error naming ``--watch``."""
    known = [entry.name for entry in entries]
    specs = []
    for value in values:
        name, equals, pattern = value.partition("=")
        if not equals or not name.strip() or not pattern.strip():
            raise ConfigError(f"expected NAME=PATTERN such as 'web=**/*.py', got {value!r}", "--watch")
        if name.strip() not in known:
            raise ConfigError(f"unknown process {name.strip()!r} (the Procfile defines: {', '.join(known)})",
                              "--watch")
        specs.append(WatchSpec(name.strip(), pattern.strip()))
    return specs


def matches(path: str, pattern: str) -> bool:
    """Whether a path relative to the root matches a pattern (see the module's docstring)."""
    return fnmatch.fnmatchcase(path, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:]))


def changed_types(paths: Sequence[str], specs: Sequence[WatchSpec]) -> dict[str, list[str]]:
    """Process type -> the changed paths that concern it."""
    found: dict[str, list[str]] = {}
    for spec in specs:
        hits = [path for path in paths if matches(path, spec.pattern)]
        if hits:
            found.setdefault(spec.name, []).extend(path for path in hits if path not in found.get(spec.name, []))
    return found


class Spawner(Protocol):
    """How the watcher child is started (``procman.groups.ProcessGroups``)."""

    def run_check(self, command: str, env: dict[str, str], capture: bool = False) -> _Piped:
        """Start ``command`` in a group of its own, its output in a pipe."""
        ...


class _Piped(Protocol):
    @property
    def output_fd(self) -> int | None:
        """The read end of its output pipe."""
        ...


class Watcher:
    """procman's side: start the child, read its batches in the loop, report the process types to restart."""

    def __init__(self, root: Path, specs: Sequence[WatchSpec], env: Mapping[str, str], spawner: Spawner,
                 readers: Readers, on_change: Callable[[dict[str, list[str]]], None],
                 say: Callable[[str], None], stopping: Callable[[], bool]) -> None:
        self._specs = specs
        self._readers = readers
        self._on_change = on_change
        self._say = say
        self._stopping = stopping
        self._buffer = b""
        command = shlex.join([sys.executable, "-m", "procman.watch", str(root)])
        child = spawner.run_check(command, dict(env), capture=True)
        self._fd = child.output_fd
        if self._fd is not None:
            os.set_blocking(self._fd, False)
            readers.add_reader(self._fd, self._on_readable)
        patterns = ", ".join(f"{spec.name}={spec.pattern}" for spec in specs)
        self._ready = f"watching {root} for changes ({patterns})"

    def _on_readable(self) -> None:
        chunk = read_chunk(self._fd) if self._fd is not None else b""
        if chunk is None:
            return
        if not chunk:
            self.close()
            if not self._stopping():  # at shutdown procman stops it itself
                self._say("the file watcher has exited; --watch is off")
            return
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        for line in lines:
            try:
                batch = json.loads(line)
                if batch == "ready":
                    self._say(self._ready)
                    continue
                paths = [str(path) for path in batch]
            except (ValueError, TypeError):
                self._say(f"the file watcher said: {line.decode('utf-8', 'replace')[:200]}")
                continue
            found = changed_types(paths, self._specs)
            if found:
                self._on_change(found)

    def close(self) -> None:
        """Stop reading (procman is done, or the child has exited)."""
        if self._fd is not None:
            self._readers.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


def main(argv: list[str]) -> int:
    """The watcher child: print each batch of changes under ``argv[0]`` as a JSON list of relative paths."""
    import watchfiles

    root = Path(argv[0])
    ready = False
    for changes in watchfiles.watch(root, debounce=DEBOUNCE_MS, raise_interrupt=False, rust_timeout=IDLE_WAKEUP_MS,
                                    yield_on_timeout=True):
        if not changes:  # a timeout: the watch is on
            if not ready:
                print(json.dumps("ready"), flush=True)
                ready = True
            continue
        paths = sorted({os.path.relpath(path, root) for _, path in changes})
        print(json.dumps(paths), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
