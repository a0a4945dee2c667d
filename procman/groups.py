"""The real process factory: spawn each instance as the leader of its own group, reap, and signal only what
is verifiably procman's.

A group's number is safe to signal while its leader is unreaped (alive or a zombie, it holds the
number). Once the leader is reaped, the number is reused by the kernel as soon as the group is empty, so a
group that outlives its leader (``sh -c 'server &'``) is *lingering*: it is checked after every reap
(the zombie of its last member holds the number until procman reaps it, so the check that follows the
reap is exact) and by the supervisor's periodic check, forgotten (and unregistered from the guardian)
when it is empty or holds no process that descends from procman or carries its marker, and verified again
right before it is signalled.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from procman import proctable
from procman.child import Child, Readers, Silent, exit_code_of, signal_leader
from procman.formation import Instance
from procman.guardian import Guardian
from procman.output import LineStream
from procman.procfile import shell_argv


def _alive(send: Callable[[int, int], None], target: int) -> bool:
    """Whether ``send(target, 0)`` (``os.kill`` or ``os.killpg``) still finds a process."""
    try:
        send(target, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class ProcessGroups:
    """Spawns children, tracks their groups (telling the guardian), reaps and signals them."""

    def __init__(self, cwd: str, tty: bool, readers: Readers, marker: str) -> None:
        self._cwd = cwd
        self._tty = tty
        self._readers = readers
        self._marker = marker
        self._guardian = Guardian(marker)
        self._leaders: set[int] = set()
        self._lingering: set[int] = set()
        self._strays: set[int] = set()
        self._helpers: set[int] = set()  # leaders that are no instance: checks, autoscale commands, the watcher

    def spawn(self, instance: Instance, env: dict[str, str], stream: LineStream) -> Child:
        """Start ``instance``; its pid is its group's id, registered with the guardian before anything else."""
        env[proctable.MARKER_VARIABLE] = self._marker
        child = Child(instance, env, self._cwd, self._tty, stream, self._readers)
        self._track(child.pid)
        return child

    def run_check(self, command: str, env: dict[str, str], capture: bool = False) -> Silent:
        """Start a helper (a readiness check, an autoscale command, the file watcher) in a group of its own like
        an instance, its output discarded or (``capture``) kept in a pipe. ``signal_leftovers`` reaches it."""
        env[proctable.MARKER_VARIABLE] = self._marker
        check = Silent(shell_argv(command), env, self._cwd, capture)
        self._track(check.pid)
        self._helpers.add(check.pid)
        return check

    def _track(self, pid: int) -> None:
        self._leaders.add(pid)
        self._guardian.register(pid)

    def reap(self) -> list[tuple[int, int]]:
        """Reap every exited child (reparented orphans too): ``(pid, exit code)``; then re-check lingering groups."""
        reaped = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped.append((pid, exit_code_of(status)))
            if pid in self._leaders:
                self._leaders.discard(pid)
                self._helpers.discard(pid)
                self._lingering.add(pid)
        if reaped:
            self.forget_gone()
        return reaped

    def lingering(self) -> bool:
        """Whether a group outlives its leader (the supervisor then checks it now and then)."""
        return bool(self._lingering)

    def forget_gone(self) -> None:
        """Forget every lingering group that is empty or no longer verifiably procman's."""
        for pgid in [pgid for pgid in self._lingering if not _alive(os.killpg, pgid)]:
            self._forget(pgid)
        if self._lingering:
            processes = proctable.table()
            for pgid in list(self._lingering):
                if not proctable.group_is_ours(pgid, self._marker, processes):
                    self._forget(pgid)

    def signal_all(self, signum: int) -> None:
        """Signal every group of procman's at once, then any marked descendant that left its group (setsid)."""
        for leader in self._leaders:
            signal_leader(leader, signum)
        self.signal_leftovers(signum)

    def signal_leftovers(self, signum: int) -> None:
        """Signal the helpers, the groups that outlive their leaders, then any marked descendant that left its
        group."""
        for helper in self._helpers:
            signal_leader(helper, signum)
        self.forget_gone()
        groups = self._leaders | self._lingering
        for pgid in self._lingering:
            try:
                os.killpg(pgid, signum)
            except (ProcessLookupError, PermissionError):
                continue
        processes = proctable.table()
        for pid in proctable.marked_pids(self._marker, processes):
            if processes[pid][1] not in groups:
                self._strays.add(pid)
                try:
                    os.kill(pid, signum)
                except (ProcessLookupError, PermissionError):
                    continue

    def anything_left(self) -> bool:
        """Whether any of procman's processes is still there (unreaped leaders, lingering groups, strays)."""
        self.forget_gone()
        self._strays = {pid for pid in self._strays if _alive(os.kill, pid)}
        return bool(self._leaders or self._lingering or self._strays)

    def _forget(self, pgid: int) -> None:
        self._lingering.discard(pgid)
        self._guardian.unregister(pgid)

