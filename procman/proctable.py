"""The process table, read only: who is in a process group, who descends from procman, who carries its marker.

Every process procman starts carries ``PROCMAN_SUPERVISOR_ID=<marker>`` in its environment, and (on Linux,
where procman is a subreaper) stays a descendant of procman. Either fact makes a process verifiably
procman's; a process group number alone does not, since the kernel reuses it once the group is empty.

On Linux the table is read from ``/proc`` directly; elsewhere through psutil (imported only then).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

MARKER_VARIABLE = "PROCMAN_SUPERVISOR_ID"
_PROC = Path("/proc")
_USE_PROC = sys.platform.startswith("linux") and _PROC.is_dir()


def _linux_table() -> Iterator[tuple[int, int, int]]:
    for entry in os.scandir(_PROC):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                stat = file.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        yield int(entry.name), int(fields[1]), int(fields[2])


def _psutil_table() -> Iterator[tuple[int, int, int]]:
    import psutil

    for process in psutil.process_iter(["ppid"]):
        try:
            yield process.pid, process.info["ppid"] or 0, os.getpgid(process.pid)
        except (OSError, psutil.Error):
            continue


def table() -> dict[int, tuple[int, int]]:
    """Every live process: pid -> (parent pid, process group id)."""
    rows = _linux_table() if _USE_PROC else _psutil_table()
    return {pid: (ppid, pgid) for pid, ppid, pgid in rows}


def carries_marker(pid: int, marker: str) -> bool:
    """Whether ``pid``'s environment holds ``PROCMAN_SUPERVISOR_ID=marker`` (False when it cannot be read)."""
    wanted = f"{MARKER_VARIABLE}={marker}"
    if not _USE_PROC:
        import psutil

        try:
            return bool(psutil.Process(pid).environ().get(MARKER_VARIABLE) == marker)
        except (OSError, psutil.Error):
            return False
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            return wanted.encode() in file.read().split(b"\0")
    except OSError:
        return False


def descends_from(pid: int, ancestor: int, processes: dict[int, tuple[int, int]]) -> bool:
    """Whether ``ancestor`` is a parent, grandparent... of ``pid`` in ``processes``."""
    seen = 0
    while pid in processes and seen < len(processes):
        pid = processes[pid][0]
        if pid == ancestor:
            return True
        seen += 1
    return False


def marked_pids(marker: str, processes: dict[int, tuple[int, int]]) -> list[int]:
    """The processes of ``processes`` (but this one) that carry ``marker``."""
    me = os.getpid()
    return [pid for pid in processes if pid != me and carries_marker(pid, marker)]


def group_is_ours(pgid: int, marker: str, processes: dict[int, tuple[int, int]]) -> bool:
    """Whether group ``pgid`` has a member that descends from this process or carries ``marker``."""
    me = os.getpid()
    members = [pid for pid, (_, group) in processes.items() if group == pgid and pid != me]
    return any(descends_from(pid, me, processes) or carries_marker(pid, marker) for pid in members)
