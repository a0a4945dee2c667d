"""``procman start``'s wiring: the real loop, process groups, guardian, signals and control socket around a
:class:`~procman.supervisor.Supervisor`."""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from procman import control
from procman.child import become_subreaper
from procman.formation import Instance
from procman.groups import ProcessGroups
from procman.loop import Loop
from procman.output import Output
from procman.slots import Policy
from procman.supervisor import Supervisor

if TYPE_CHECKING:
    from procman.watch import WatchSpec

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FORWARDED_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


def run_formation(
    instances: Sequence[Instance],
    env_for: Callable[[Instance], dict[str, str]],
    cwd: Path,
    output: Output,
    loop: Loop,
    policy: Policy,
    tty: bool = False,
    control_path: Path | None = None,
    watch: Sequence[WatchSpec] = (),
) -> int:
    """Run the formation until it stops; return procman's exit code."""
    server = None
    if control_path is not None:
        try:
            server = control.serve(control_path, lambda *request: supervisor.control(*request), loop)
        except control.SocketUnavailable as error:
            output.system(f"no control socket (status/restart/stop will not reach this procman): {error}")
    become_subreaper()
    marker = f"{os.getpid()}-{os.urandom(8).hex()}"
    processes = ProcessGroups(str(cwd), tty, loop, marker)
    supervisor = Supervisor(instances, env_for, output, policy, loop, processes)
    loop.add_signal_handler(signal.SIGCHLD, supervisor.reap)
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, functools.partial(supervisor.stop, signum))
    for signum in FORWARDED_SIGNALS:
        loop.add_signal_handler(signum, functools.partial(supervisor.forward, signum))
    watcher = None
    try:
        supervisor.start()
        if watch and not supervisor.finished:
            from procman.watch import Watcher  # only now: development

            watcher = Watcher(cwd, watch, os.environ, processes, loop, supervisor.files_changed, output.system,
                              lambda: supervisor.stopping)
        loop.run(lambda: supervisor.finished)
        return supervisor.exit_code
    finally:
        if watcher is not None:
            watcher.close()
        if server is not None:
            server.close()
        supervisor.close()
        loop.close()
