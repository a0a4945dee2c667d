"""The supervisor: start every instance in order, react to exits, signals and control commands, shut down in time.

Policy when an instance exits on its own: everything stops (Foreman's default) and procman exits with that
instance's code, unless its process type is ``--can-die`` (it stays down) or ``--restart`` (respawned
with exponential backoff, at most ``Policy.restart_limit`` times within ``Policy.restart_window``
seconds), or another type waits for its successful exit (``depends_on = {migrate = "exited"}``).

Start order: an instance whose type ``depends_on`` others starts once they have started, are ready (their
``ready`` check passed, see :mod:`procman.readiness`) or have exited successfully; an instance never ready
in time stops everything. Shutdown runs in stages, in reverse dependency order (one stage without
dependencies): each stage signals its process groups at once (each type's ``stop_signal``), waits one
deadline, then SIGKILLs what is left of it; the last stage also signals whatever else is procman's.

The supervisor consumes events (``start``, ``reap``, ``stop``, ``forward``, ``control``) and acts through two
parameters: a :class:`~procman.loop.Clock` for time and timers, and a :class:`~procman.slots.ProcessFactory`
that spawns, reaps and signals processes. ``procman.runner`` wires in the real ones; tests replay scripted histories.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from procman.control import select
from procman.dependencies import missing, one_off_types, stop_stages, waits_for
from procman.formation import AutoRange, Instance
from procman.loop import Clock, Timer
from procman.output import Output
from procman.slots import (
    COMMAND_NOT_FOUND,
    Command,
    Policy,
    Process,
    ProcessFactory,
    Slot,
    State,
    Then,
    describe_exit,
    describe_stop,
    describe_window,
)

if TYPE_CHECKING:  # the modules of the process options are imported when a formation uses them
    from procman.autoscale import Autoscaler, Captured
    from procman.memory import MemoryWatch, Target
    from procman.rolling import RollingRestart

BACKOFF_FIRST = 0.25
BACKOFF_MAX = 30.0
POLL_INTERVAL = 0.05
GROUP_CHECK_INTERVAL = 1.0
QUICK_EXIT = 1.0
WAITS_TO = {"ready": "be ready", "exited": "exit successfully", "started": "start"}


class Supervisor:
    """Runs a formation until it stops: ``finished`` turns true and ``exit_code`` is procman's exit code."""

    def __init__(
        self,
        instances: Sequence[Instance],
        env_for: Callable[[Instance], dict[str, str]],
        output: Output,
        policy: Policy,
        clock: Clock,
        processes: ProcessFactory,
    ) -> None:
        self._env_for = env_for
        self._output = output
        self._policy = policy
        self._clock = clock
        self._processes = processes
        colors: dict[str, int] = {}
        self._slots = [
            Slot(instance, output.line_stream(instance.label, colors.setdefault(instance.name, len(colors))))
            for instance in instances
        ]
        self._by_pid: dict[int, Slot] = {}
        self._check_exits: dict[int, Callable[[int], None]] = {}
        self._rolling: RollingRestart[Slot] | None = None
        self._to_roll: set[str] = set()  # process types whose files changed (--watch), for the next rolling restart
        names = list(dict.fromkeys(instance.name for instance in instances))
        self._memory: MemoryWatch | None = None
        if any(policy.processes.of(name).max_memory for name in names):
            from procman.memory import MemoryWatch

            self._memory = MemoryWatch(clock, self._memory_targets, self._over_memory)
        self._autoscalers = [self._autoscaler(name, scale) for name, scale in policy.autoscale.items()
                             if name in names]
        self._waits = {name: waits_for(name, policy.processes, names) for name in names}
        self._one_off = one_off_types(names, policy.processes)
        self._stages: list[list[Slot]] = []
        self._stage: list[Slot] = []
        self._stopping = False
        self._killing = False
        self._group_check: Timer | None = None
        self._poll: Timer | None = None
        self._deadline: Timer | None = None
        self.finished = False
        self.exit_code = 0

    @property
    def stopping(self) -> bool:
        """Whether the shutdown has begun."""
        return self._stopping

    # --- events ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn every instance whose dependencies allow it, in Procfile order (stops early if one cannot be
        started); the others start as their dependencies are met."""
        for name, others in missing(list(self._waits), self._policy.processes).items():
            self._output.system(f"{name} does not wait for {', '.join(others)}: not in this formation")
        for name, scale in self._policy.autoscale.items():
            for slot in self._of_type(name)[scale.low:]:
                slot.state = State.SCALED_DOWN
        self._start_pending()
        if self._memory is not None:
            self._memory.start()
        for autoscaler in self._autoscalers:
            autoscaler.start()

    def reap(self) -> None:
        """Collect exited processes (on SIGCHLD) and react to each."""
        self._collect()
        self._arm_group_check()
        if self._stopping and not self.finished:
            self._advance_stage()
            if not self._anything_left():
                self._finish()

    def stop(self, signum: int) -> None:
        """SIGINT, SIGTERM or SIGHUP to procman: stop everything; the same again kills at once."""
        name = signal.Signals(signum).name
        if self._stopping:
            if not self._killing:
                self._output.system(f"{name} received again: killing all processes now")
                self._kill()
            return
        self._stop_all(128 + signum, f"{name} received; stopping all processes ({name} again kills them at once)")

    def forward(self, signum: int) -> None:
        """USR1/USR2 to procman: pass it to every running process group."""
        for slot in self._slots:
            if slot.process is not None:
                slot.process.signal_group(signum)
        self._output.system(f"{signal.Signals(signum).name} forwarded to every process")

    def control(self, command: str, patterns: list[str], rolling: bool = False) -> dict[str, Any]:
        """A control-socket command: ``status``, or ``restart``/``stop`` of the instances ``patterns`` match
        (``rolling``: restart them one at a time, see :meth:`_roll`)."""
        if command == "status":
            return {"ok": True, "processes": [self._status_of(slot) for slot in self._slots]}
        if self._stopping:
            return {"ok": False, "error": "procman is shutting down"}
        indexes = select([slot.instance.label for slot in self._slots], patterns)
        if isinstance(indexes, str):
            return {"ok": False, "error": indexes}
        chosen = [self._slots[index] for index in indexes if self._slots[index].state is not State.SCALED_DOWN]
        if not chosen:
            return {"ok": False, "error": "every process matched is scaled down (the autoscaler has not started it)"}
        labels = ", ".join(slot.instance.label for slot in chosen)
        if rolling:
            if self._rolling is not None and not self._rolling.finished:
                return {"ok": False, "error": f"a rolling restart is under way (left: {self._rolling.labels()})"}
            self._start_rolling(chosen)
            return {"ok": True, "message": f"restarting {labels} one at a time"}
        for slot in chosen:
            self._act(slot, Then(command))
        return {"ok": True, "message": f"{'restarting' if command == 'restart' else 'stopping'} {labels}"}

    def files_changed(self, changed: Mapping[str, list[str]]) -> None:
        """``--watch``: files of these process types changed; restart them one instance at a time (after the
        rolling restart under way, if any)."""
        if self._stopping:
            return
        files = sorted({path for paths in changed.values() for path in paths})
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        self._output.system(f"changed: {shown}; restarting {', '.join(changed)} one instance at a time")
        self._to_roll.update(changed)
        self._roll_changed()

    def _roll_changed(self) -> None:
        if self._stopping or (self._rolling is not None and not self._rolling.finished):
            return
        chosen = [slot for slot in self._slots
                  if slot.instance.name in self._to_roll and slot.state is not State.SCALED_DOWN]
        self._to_roll.clear()
        if chosen:
            self._start_rolling(chosen)

    def _start_rolling(self, chosen: list[Slot]) -> None:
        """Restart ``chosen`` one at a time (:meth:`_roll`); files changed meanwhile are restarted after."""
        from procman.rolling import RollingRestart

        self._rolling = RollingRestart(chosen, lambda slot: slot.instance.label, self._roll, self._output.system,
                                       self._roll_changed)
        self._rolling.next()

    def close(self) -> None:
        """Stop reading every process's output (procman is done)."""
        for slot in self._slots:
            if slot.process is not None:
                slot.process.close_output()

    # --- starting and exits ---------------------------------------------------------------------------

    def _start_pending(self) -> None:
        """Spawn every pending instance whose dependencies are met (until none is left that can start)."""
        started = True
        while started and not self._stopping:
            started = False
            for slot in self._slots:
                if slot.state is State.PENDING and self._can_start(slot):
                    self._spawn(slot)
                    started = True
                    if self._stopping:
                        return

    def _can_start(self, slot: Slot) -> bool:
        return all(self._met(name, condition) for name, condition in self._waits[slot.instance.name].items())

    def _met(self, name: str, condition: str) -> bool:
        return all(condition in slot.reached for slot in self._of_type(name) if slot.state is not State.SCALED_DOWN)

    def _of_type(self, name: str) -> list[Slot]:
        return [slot for slot in self._slots if slot.instance.name == name]

    def _spawn(self, slot: Slot) -> None:
        slot.timer = None
        env = self._env_for(slot.instance)
        try:
            process = self._processes.spawn(slot.instance, dict(env), slot.stream)
        except OSError as error:
            self._stop_all(1, f"cannot start {slot.instance.label}: {error.strerror or error}")
            return
        slot.process = process
        slot.started = self._clock.time()
        self._by_pid[process.pid] = slot
        self._output.system(f"{slot.instance.label} started with pid {process.pid} (PORT={slot.instance.port})")
        slot.reached.add("started")
        options = self._policy.processes.of(slot.instance.name)
        if options.ready is None:
            slot.state = State.RUNNING
            slot.reached.add("ready")
            if self._rolling is not None:
                self._rolling.ready(slot)
            return
        slot.state = State.STARTING
        from procman.readiness import Probe

        try:
            slot.probe = Probe(options.ready, env, options.ready_interval, options.ready_timeout, self._clock,
                               slot.stream, self._run_check, lambda text: self._on_ready(slot, text),
                               lambda text, why: self._on_not_ready(slot, text, why))
        except (ValueError, OSError) as error:
            self._stop_all(1, f"{slot.instance.label}: ready = {options.ready.text!r}: {error}; stopping all processes")
            return
        slot.probe.start()

    def _run_check(self, command: str, env: dict[str, str], on_exit: Callable[[int], None],
                   capture: bool = False) -> Command:
        process = self._processes.run_check(command, env, capture)
        self._check_exits[process.pid] = on_exit
        return process

    # --- autoscaling ----------------------------------------------------------------------------------

    def _autoscaler(self, name: str, scale: AutoRange) -> Autoscaler:
        from procman.autoscale import Autoscaler

        options = self._policy.processes.of(name)
        assert options.autoscale is not None, "the command line checks that an auto count has a command"
        env = self._env_for(self._of_type(name)[0].instance)

        def run(command: str, on_exit: Callable[[int], None]) -> Captured:
            return self._run_check(command, dict(env), on_exit, capture=True)

        return Autoscaler(name, options.autoscale, scale, options.autoscale_interval, options.autoscale_cooldown,
                          self._clock, run, lambda: len(self._active(name)),
                          lambda count, wanted: self._scale(name, count, wanted), self._output.system)

    def _active(self, name: str) -> list[Slot]:
        """The instances of ``name`` that count: neither scaled down nor being scaled down."""
        return [slot for slot in self._of_type(name)
                if slot.state is not State.SCALED_DOWN and slot.then is not Then.SCALE_DOWN]

    def _scale(self, name: str, count: int, wanted: int) -> None:
        """Start scaled-down instances (the lowest numbers first, once their dependencies allow), or stop the
        highest-numbered ones."""
        active = self._active(name)
        asked = "" if wanted == count else f" (the command asked for {wanted})"
        self._output.system(f"autoscaling {name}: {len(active)} -> {count} instances{asked}")
        if count > len(active):
            idle = [slot for slot in self._of_type(name) if slot.state is State.SCALED_DOWN]
            for slot in idle[: count - len(active)]:
                slot.state = State.PENDING
            self._start_pending()
        else:
            for slot in active[count:]:
                self._act(slot, Then.SCALE_DOWN)

    def _on_ready(self, slot: Slot, check: str) -> None:
        slot.probe = None
        slot.state = State.RUNNING
        slot.reached.add("ready")
        self._output.system(f"{slot.instance.label} is ready ({check}, "
                            f"{self._clock.time() - slot.started:.1f} s after its start)")
        self._start_pending()
        if self._rolling is not None:
            self._rolling.ready(slot)

    def _on_not_ready(self, slot: Slot, check: str, reason: str) -> None:
        slot.probe = None
        options = self._policy.processes.of(slot.instance.name)
        message = f"{slot.instance.label} was not ready within {options.ready_timeout:g} s ({check}: {reason})"
        if "ready" in slot.reached:  # it was ready before this restart: tell, and leave it running
            self._output.system(message)
            if self._rolling is not None:
                self._rolling.abort(slot, f"{slot.instance.label} was not ready in time")
        else:
            self._stop_all(1, f"{message}; stopping all processes")

    def _collect(self) -> None:
        for pid, code in self._processes.reap():
            slot = self._by_pid.pop(pid, None)
            if slot is not None:
                self._on_exit(slot, code)
            elif pid in self._check_exits:
                self._check_exits.pop(pid)(code)

    def _exit_message(self, slot: Slot, code: int, asked_to_stop: bool) -> str:
        label = slot.instance.label
        message = f"{label} {describe_stop(code) if asked_to_stop else describe_exit(code)}"
        if code == COMMAND_NOT_FOUND:
            entry = slot.instance.entry
            message += f" (Procfile line {entry.line}: {entry.command})"
        lived = self._clock.time() - slot.started
        if lived < QUICK_EXIT and not asked_to_stop:
            message += f", {lived:.1f} s after it started with PORT={slot.instance.port}"
        return message

    def _on_exit(self, slot: Slot, code: int) -> None:
        process = slot.process
        assert process is not None
        process.drain()
        slot.process = None
        if slot.probe is not None:
            slot.probe.cancel()
            slot.probe = None
        then, slot.then = slot.then, None
        self._output.system(self._exit_message(slot, code, self._stopping or then is not None))
        if self._rolling is not None and then is None:
            self._rolling.abort(slot, f"{slot.instance.label} {describe_exit(code)}")
        if self._stopping or then is Then.STOP:
            slot.state = State.STOPPED
        elif then is Then.SCALE_DOWN:
            slot.state = State.SCALED_DOWN
        elif then is Then.RESTART:
            self._spawn(slot)
        elif code == 0 and slot.instance.name in self._one_off:
            slot.reached.add("exited")
            self._gone(slot, code)
            self._start_pending()
        elif slot.instance.name in self._policy.restart:
            self._schedule_restart(slot, code)
        elif slot.instance.name in self._policy.can_die:
            self._gone(slot, code)
        else:
            self._stop_all(code, f"stopping all processes because {slot.instance.label} exited")

    def _gone(self, slot: Slot, code: int) -> None:
        """The instance stays down: stop everything when nothing is left, or when an instance waits for what it
        will now never do."""
        slot.state = State.DEAD
        if all(other.state in (State.DEAD, State.STOPPED, State.SCALED_DOWN) for other in self._slots):
            self._stop_all(code, "every process has exited")
            return
        for waiting in self._slots:
            if waiting.state is not State.PENDING:
                continue
            for name, condition in self._waits[waiting.instance.name].items():
                if name == slot.instance.name and condition not in slot.reached:
                    self._stop_all(code, f"stopping all processes: {waiting.instance.label} waits for {name} to "
                                   f"{WAITS_TO[condition]}, and {slot.instance.label} has exited")
                    return

    def _schedule_restart(self, slot: Slot, code: int) -> None:
        now = self._clock.time()
        limit, window = self._policy.restart_limit, self._policy.restart_window
        while slot.restarts and now - slot.restarts[0] > window:
            slot.restarts.popleft()
        label = slot.instance.label
        if len(slot.restarts) >= limit:
            self._stop_all(
                code, f"{label} was restarted {limit} time{'s' if limit != 1 else ''} in {describe_window(window)}; "
                "giving up, stopping all"
            )
            return
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** len(slot.restarts))
        slot.restarts.append(now)
        slot.state = State.WAITING
        self._output.system(f"restarting {label} in {delay:g} s (restart {len(slot.restarts)} of {limit})")
        slot.timer = self._clock.call_later(delay, lambda: self._spawn(slot))

    def _arm_group_check(self) -> None:
        """While a group outlives its leader, check now and then whether it is gone (and forget it)."""
        if self._group_check is None and self._processes.lingering() and not self.finished:
            self._group_check = self._clock.call_later(GROUP_CHECK_INTERVAL, self._check_groups)

    def _check_groups(self) -> None:
        self._group_check = None
        self._processes.forget_gone()
        self._arm_group_check()

    # --- control --------------------------------------------------------------------------------------

    def _roll(self, slot: Slot) -> None:
        """One step of a rolling restart: quiet signal (if the type has one), stop signal, SIGKILL, each after
        the timeout; then the new process, and the next step once it is ready."""
        self._output.system(f"rolling restart: restarting {slot.instance.label}")
        self._act(slot, Then.RESTART, quiet=True)

    def _act(self, slot: Slot, then: Then, quiet: bool = False) -> None:
        if slot.timer is not None:
            slot.timer.cancel()
            slot.timer = None
        process = slot.process
        if process is None:
            slot.state = State.SCALED_DOWN if then is Then.SCALE_DOWN else State.STOPPED
            if then is Then.RESTART:
                self._spawn(slot)
            return
        slot.then = then
        slot.state = State.STOPPING
        if slot.probe is not None:
            slot.probe.cancel()
            slot.probe = None
        options = self._policy.processes.of(slot.instance.name)
        signals = [options.stop_signal, signal.SIGKILL]
        if quiet and options.quiet_signal is not None:
            signals.insert(0, options.quiet_signal)
        self._escalate(slot, process, signals)

    def _escalate(self, slot: Slot, process: Process, signals: list[signal.Signals]) -> None:
        """Send the first signal; while the process is still there after the timeout, the next."""
        process.signal_group(signals[0])
        if len(signals) < 2:
            return

        def next_if_still_there() -> None:
            if slot.process is process:
                self._output.system(f"{slot.instance.label} still running {self._policy.timeout:g} s after "
                                    f"{signals[0].name}; sending {signals[1].name}")
                self._escalate(slot, process, signals[1:])

        self._clock.call_later(self._policy.timeout, next_if_still_there)

    def _memory_targets(self) -> list[Target]:
        """The running instances that have a ``max_memory``."""
        targets: list[Target] = []
        for slot in self._slots:
            ceiling = self._policy.processes.of(slot.instance.name).max_memory
            if ceiling and slot.process is not None and slot.state in (State.STARTING, State.RUNNING):
                targets.append((slot, slot.process.pid, ceiling))
        return targets

    def _over_memory(self, slot: Slot, rss: int) -> None:
        """Restart an instance that stayed above its ceiling, gracefully (quiet signal first); not a crash."""
        if self._stopping or slot.state not in (State.STARTING, State.RUNNING):
            return
        slot.memory_restarts += 1
        ceiling = self._policy.processes.of(slot.instance.name).max_memory or 0
        from procman.memory import describe_size

        self._output.system(f"{slot.instance.label} uses {describe_size(rss)}, above its max_memory of "
                            f"{describe_size(ceiling)}; restarting it (memory restart {slot.memory_restarts})")
        self._act(slot, Then.RESTART, quiet=True)

    def _status_of(self, slot: Slot) -> dict[str, Any]:
        process = slot.process
        return {
            "name": slot.instance.label,
            "state": slot.state.value,
            "pid": process.pid if process else None,
            "port": slot.instance.port,
            "uptime": round(self._clock.time() - slot.started, 1) if process else None,
            "restarts": len(slot.restarts),
            "memory_restarts": slot.memory_restarts,
        }

    # --- shutdown -------------------------------------------------------------------------------------

    def _stop_all(self, code: int, reason: str) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.exit_code = code
        self._rolling = None
        if self._memory is not None:
            self._memory.stop()
        for autoscaler in self._autoscalers:
            autoscaler.stop()
        self._output.system(reason)
        for slot in self._slots:
            if slot.timer is not None:
                slot.timer.cancel()
                slot.timer = None
            if slot.probe is not None:
                slot.probe.cancel()
                slot.probe = None
        by_name = stop_stages(list(self._waits), self._policy.processes)
        self._stages = [[slot for slot in self._slots if slot.instance.name in names] for names in by_name]
        self._next_stage(first=True)
        self._poll_shutdown()

    def _next_stage(self, first: bool = False) -> None:
        """Signal the next stage's groups (each its type's stop signal), the last one with everything else."""
        while True:
            self._stage = self._stages.pop(0)
            running = [slot for slot in self._stage if slot.process is not None]
            if running or not self._stages:
                break
        if running and not first:
            self._output.system(f"stopping {', '.join(slot.instance.label for slot in running)}")
        for slot in running:
            assert slot.process is not None
            slot.process.signal_group(self._policy.processes.of(slot.instance.name).stop_signal)
        if not self._stages:
            self._processes.signal_leftovers(signal.SIGTERM)
        self._deadline = self._clock.call_later(self._policy.timeout, self._on_deadline)

    def _advance_stage(self) -> None:
        """Once every process of an earlier stage is gone, stop the next stage."""
        if self._stages and not self._killing and all(slot.process is None for slot in self._stage):
            if self._deadline is not None:
                self._deadline.cancel()
            self._next_stage()

    def _on_deadline(self) -> None:
        self._deadline = None
        stage = self._stage if self._stages else self._slots
        left = [slot.instance.label for slot in stage if slot.process is not None] or ["leftover processes"]
        self._output.system(f"timeout of {self._policy.timeout:g} s reached; sending SIGKILL to {', '.join(left)}")
        if not self._stages:
            self._kill()
            return
        for slot in self._stage:
            if slot.process is not None:
                slot.process.signal_group(signal.SIGKILL)
        self._next_stage()

    def _kill(self) -> None:
        self._killing = True
        self._stages = []
        self._processes.signal_all(signal.SIGKILL)
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self._clock.call_later(max(self._policy.timeout, 5.0), self._finish)

    def _anything_left(self) -> bool:
        self._collect()
        return bool(self._by_pid) or self._processes.anything_left()

    def _poll_shutdown(self) -> None:
        """While stopping: finish once nothing is left, else look again shortly (strays are not our children)."""
        self._poll = None
        if self.finished:
            return
        if not self._anything_left():
            self._finish()
            return
        self._advance_stage()  # _anything_left has reaped what exited: an earlier stage may be done
        if self._killing:
            self._processes.signal_all(signal.SIGKILL)
        self._poll = self._clock.call_later(POLL_INTERVAL, self._poll_shutdown)

    def _finish(self) -> None:
        self.finished = True
        for timer in (self._poll, self._deadline, self._group_check):
            if timer is not None:
                timer.cancel()
