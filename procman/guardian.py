"""Kill whatever procman leaves behind, even when procman itself is killed with SIGKILL.

A process cannot run code after SIGKILL, so ``start`` spawns a guardian before it spawns anything: a
POSIX ``sh`` loop (about 1 MB, no second Python interpreter) in its own process group, ignoring terminal
signals, reading a pipe whose write end only procman holds. procman writes ``+PGID`` for each group it
starts and ``-PGID`` once the group is gone, so the guardian's list holds only live groups. When procman
exits, however it exits, the kernel closes the pipe and the guardian reads end-of-file. On Linux it then
finds every process whose environment carries procman's marker (``PROCMAN_SUPERVISOR_ID``, inherited by
every descendant, so it also finds daemons that left their group with ``setsid``), SIGKILLs the registered
groups that hold such a process (a group is signalled only when verifiably procman's) and the marked
processes themselves, three sweeps for processes forked meanwhile. Without ``/proc`` (macOS) it SIGKILLs
the registered groups. After a normal shutdown there is nothing left to find and it exits at once.
"""

from __future__ import annotations

import contextlib
import os

_SCRIPT = r"""
trap '' INT TERM HUP QUIT TSTP
marker="PROCMAN_SUPERVISOR_ID=$1"
groups=' '
while read -r line; do
  case $line in
    +*) groups="$groups${line#+} " ;;
    -*) id=${line#-}
        case $groups in *" $id "*) groups="${groups%%" $id "*} ${groups#*" $id "}" ;; esac ;;
  esac
done
if [ ! -d /proc/self ]; then
  for id in $groups; do kill -s KILL -- "-$id" 2>/dev/null; done
  exit 0
fi
for sweep in 1 2 3; do
  found=
  for file in $(grep -l -F -e "$marker" /proc/[0-9]*/environ 2>/dev/null); do
    pid=${file#/proc/}; pid=${pid%/environ}
    if read -r stat < "/proc/$pid/stat"; then
      set -- ${stat##*) }
      case $groups in *" $3 "*) kill -s KILL -- "-$3" 2>/dev/null ;; esac
    fi
    kill -s KILL "$pid" 2>/dev/null && found=1
  done
  [ -n "$found" ] || break
done
"""


class Guardian:
    """procman's side of the guardian: spawn it, then register each child's group and forget it when gone."""

    def __init__(self, marker: str) -> None:
        read_fd, self._write_fd = os.pipe()
        try:
            self.pid = os.posix_spawn(
                "/bin/sh", ["procman-guardian", "-c", _SCRIPT, "procman-guardian", marker], dict(os.environ),
                file_actions=[(os.POSIX_SPAWN_DUP2, read_fd, 0),
                              (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                              (os.POSIX_SPAWN_DUP2, 1, 2)],
                setpgroup=0,  # out of the terminal's foreground group: Ctrl-C is procman's business
            )
        finally:
            os.close(read_fd)

    def register(self, pgid: int) -> None:
        """Tell the guardian about a new process group to kill if procman dies."""
        self._send(f"+{pgid}\n")

    def unregister(self, pgid: int) -> None:
        """The group is gone: forget it, so its number can be reused by anyone without risk."""
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._write_fd, line.encode())
