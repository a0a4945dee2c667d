"""The event loop: start every instance, relay output, react to exits and signals, shut down in time.

Policy when an instance exits on its own: everything stops (Foreman's default) and procman exits with that
instance's code, unless its process type is ``--can-die`` (it stays down) or ``--restart`` (respawned
with exponential backoff, at most ``RESTART_LIMIT`` times within ``RESTART_WINDOW`` seconds). Shutdown
signals every process group at once, waits one shared deadline, then SIGKILLs whatever is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from procman import control
from procman.child import Child, become_subreaper
from procman.formation import Instance
from procman.guardian import MARKER_VARIABLE, Guardian, marked_processes
from procman.output import LineStream, Output

RESTART_LIMIT = 5
RESTART_WINDOW = 600.0
BACKOFF_FIRST = 0.25
POLL_INTERVAL = 0.05
COMMAND_NOT_FOUND = 127


@dataclass(frozen=True)
class Policy:
    """What happens when a process type exits, and how long shutdown waits before SIGKILL."""

    timeout: float = 5.0
    can_die: frozenset[str] = frozenset()
    restart: frozenset[str] = frozenset()


@dataclass(eq=False)
class Slot:
    """One instance of the formation and its current child (if any)."""

    instance: Instance
    stream: LineStream
    child: Child | None = None
    state: str = "starting"
    restarts: deque[float] = field(default_factory=deque)
    after_exit: str | None = None
    timer: asyncio.TimerHandle | None = None


def exit_code_of(status: int) -> int:
    """The shell's convention: the exit code, or 128+N for a process killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def describe_exit(code: int) -> str:
    """``exited with code 3`` / ``was killed by SIGKILL`` (for codes above 128)."""
    if code > 128:
        try:
            return f"was killed by {signal.Signals(code - 128).name}"
        except ValueError:
            pass
    if code == COMMAND_NOT_FOUND:
        return "exited with code 127: command not found"
    return f"exited with code {code}"


class Supervisor:
    """Runs a formation until it stops; ``run`` returns procman's exit code."""

    def __init__(
        self,
        instances: Sequence[Instance],
        env_for: Callable[[Instance], dict[str, str]],
        cwd: Path,
        output: Output,
        policy: Policy,
        tty: bool = False,
        control_path: Path | None = None,
    ) -> None:
        self._env_for = env_for
        self._cwd = str(cwd)
        self._output = output
        self._policy = policy
        self._tty = tty
        self._control_path = control_path
        colors: dict[str, int] = {}
        self._slots = [
            Slot(instance, output.line_stream(instance.label, colors.setdefault(instance.name, len(colors))))
            for instance in instances
        ]
        self._by_pid: dict[int, Slot] = {}
        self._groups: set[int] = set()
        self._strays: set[int] = set()
        self._marker = f"{os.getpid()}-{secrets.token_hex(8)}"
        self._stopping = False
        self._kill_now: asyncio.Event | None = None
        self._exit_code = 0

    def run(self) -> int:
        """Start the guardian, then the event loop; return when everything has stopped."""
        become_subreaper()
        self._guardian = Guardian(self._marker)
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._kill_now = asyncio.Event()
        self._finished: asyncio.Future[int] = loop.create_future()
        loop.add_signal_handler(signal.SIGCHLD, self._reap)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        for signum in (signal.SIGUSR1, signal.SIGUSR2):
            loop.add_signal_handler(signum, self._forward, signum)
        server = None
        if self._control_path is not None:
            try:
                server = await control.serve(self._control_path, self._on_control)
            except control.SocketUnavailable as error:
                self._output.system(f"no control socket (status/restart/stop will not reach this procman): {error}")
        try:
            for slot in self._slots:
                self._spawn(slot)
                if self._stopping:
                    break
            return await self._finished
        finally:
            if server is not None:
                await control.close(server, self._control_path)
            for slot in self._slots:
                if slot.child is not None:
                    slot.child.close_output()

    # --- starting and reaping -------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        slot.timer = None
        env = self._env_for(slot.instance)
        env[MARKER_VARIABLE] = self._marker
        try:
            child = Child(slot.instance, env, self._cwd, self._tty, slot.stream)
        except OSError as error:
            self._stop_all(1, f"cannot start {slot.instance.label}: {error.strerror or error}")
            return
        slot.child = child
        slot.state = "running"
        self._by_pid[child.pid] = slot
        self._groups.add(child.pid)
        self._guardian.register(child.pid)
        self._output.system(f"{slot.instance.label} started with pid {child.pid} (PORT={slot.instance.port})")

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self._by_pid.pop(pid, None)
            if slot is not None:
                self._on_exit(slot, exit_code_of(status))

    def _on_exit(self, slot: Slot, code: int) -> None:
        child = slot.child
        assert child is not None
        child.drain()
        slot.child = None
        label = slot.instance.label
        message = f"{label} {describe_exit(code)}"
        if code == COMMAND_NOT_FOUND:
            entry = slot.instance.entry
            message += f" (Procfile line {entry.line}: {entry.command})"
        self._output.system(message)
        if not child.group_alive():
            self._groups.discard(child.pid)
            self._guardian.unregister(child.pid)
        if self._stopping:
            slot.state = "stopped"
            return
        after, slot.after_exit = slot.after_exit, None
        if after == "stop":
            slot.state = "stopped"
        elif after == "restart":
            self._spawn(slot)
        elif slot.instance.name in self._policy.restart:
            self._schedule_restart(slot, code)
        elif slot.instance.name in self._policy.can_die:
            slot.state = "dead"
            if all(other.state in ("dead", "stopped") for other in self._slots):
                self._stop_all(code, "every process has exited")
        else:
            self._stop_all(code, f"stopping all processes because {label} exited")

    def _schedule_restart(self, slot: Slot, code: int) -> None:
        now = time.monotonic()
        while slot.restarts and now - slot.restarts[0] > RESTART_WINDOW:
            slot.restarts.popleft()
        label = slot.instance.label
        if len(slot.restarts) >= RESTART_LIMIT:
            minutes = int(RESTART_WINDOW // 60)
            self._stop_all(
                code, f"{label} was restarted {RESTART_LIMIT} times in {minutes} minutes; giving up, stopping all"
            )
            return
        delay = BACKOFF_FIRST * 2 ** len(slot.restarts)
        slot.restarts.append(now)
        slot.state = "waiting"
        self._output.system(f"restarting {label} in {delay:g} s (restart {len(slot.restarts)} of {RESTART_LIMIT})")
        slot.timer = asyncio.get_running_loop().call_later(delay, self._spawn, slot)

    # --- signals --------------------------------------------------------------------------------------

    def _on_stop_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stopping:
            assert self._kill_now is not None
            self._output.system(f"{name} received again: killing all processes now")
            self._kill_now.set()
            return
        self._stop_all(128 + signum, f"{name} received; stopping all processes ({name} again kills them at once)")

    def _forward(self, signum: int) -> None:
        name = signal.Signals(signum).name
        for slot in self._slots:
            if slot.child is not None:
                slot.child.signal_group(signum)
        self._output.system(f"{name} forwarded to every process")

    # --- shutdown -------------------------------------------------------------------------------------

    def _stop_all(self, code: int, reason: str) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._exit_code = code
        self._output.system(reason)
        for slot in self._slots:
            if slot.timer is not None:
                slot.timer.cancel()
                slot.timer = None
        asyncio.get_running_loop().create_task(self._shutdown())

    async def _shutdown(self) -> None:
        assert self._kill_now is not None
        loop = asyncio.get_running_loop()
        self._signal_everything(signal.SIGTERM)
        deadline = loop.time() + self._policy.timeout
        while self._anything_left() and loop.time() < deadline and not self._kill_now.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kill_now.wait(), POLL_INTERVAL)
        if self._anything_left():
            left = [slot.instance.label for slot in self._slots if slot.child is not None] or ["leftover processes"]
            if not self._kill_now.is_set():
                timeout = self._policy.timeout
                self._output.system(f"timeout of {timeout:g} s reached; sending SIGKILL to {', '.join(left)}")
            self._signal_everything(signal.SIGKILL)
        kill_deadline = loop.time() + max(self._policy.timeout, 5.0)
        while self._anything_left() and loop.time() < kill_deadline:
            self._signal_everything(signal.SIGKILL)
            await asyncio.sleep(POLL_INTERVAL)
        self._finished.set_result(self._exit_code)

    def _signal_everything(self, signum: int) -> None:
        """Signal every live group at once, then any marked descendant that left its group (setsid)."""
        for pgid in list(self._groups):
            try:
                os.killpg(pgid, signum)
            except (ProcessLookupError, PermissionError):
                self._groups.discard(pgid)
        for process in marked_processes(self._marker):
            try:
                if os.getpgid(process.pid) not in self._groups:
                    self._strays.add(process.pid)
                    process.send_signal(signum)
            except (OSError, psutil.Error):
                continue

    def _anything_left(self) -> bool:
        self._reap()
        self._groups = {pgid for pgid in self._groups if _alive(os.killpg, pgid)}
        self._strays = {pid for pid in self._strays if _alive(os.kill, pid)}
        return bool(self._by_pid or self._groups or self._strays)

    # --- control socket -------------------------------------------------------------------------------

    def _on_control(self, command: str, patterns: list[str]) -> dict[str, Any]:
        if command == "status":
            return {"ok": True, "processes": [self._status_of(slot) for slot in self._slots]}
        if self._stopping:
            return {"ok": False, "error": "procman is shutting down"}
        slots = control.select([slot.instance.label for slot in self._slots], patterns)
        if isinstance(slots, str):
            return {"ok": False, "error": slots}
        chosen = [self._slots[index] for index in slots]
        for slot in chosen:
            self._act(slot, command)
        verb = "restarting" if command == "restart" else "stopping"
        return {"ok": True, "message": f"{verb} {', '.join(slot.instance.label for slot in chosen)}"}

    def _act(self, slot: Slot, command: str) -> None:
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        child = slot.child
        if child is None:
            slot.state = "stopped"
            if command == "restart":
                self._spawn(slot)
            return
        slot.after_exit = command
        slot.state = "stopping"
        child.signal_group(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        loop.call_later(self._policy.timeout, lambda: slot.child is child and child.signal_group(signal.SIGKILL))

    def _status_of(self, slot: Slot) -> dict[str, Any]:
        child = slot.child
        return {
            "name": slot.instance.label,
            "state": slot.state,
            "pid": child.pid if child else None,
            "port": slot.instance.port,
            "uptime": round(time.time() - child.started_at, 1) if child else None,
            "restarts": len(slot.restarts),
        }


def _alive(send: Callable[[int, int], None], target: int) -> bool:
    """Whether ``send(target, 0)`` (``os.kill`` or ``os.killpg``) still finds a process."""
    try:
        send(target, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
