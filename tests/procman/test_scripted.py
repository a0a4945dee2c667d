"""Scripted histories, replayed in milliseconds: the supervisor and the relay run on a clock the test advances,
and the supervisor's processes are scripted. This is the one place without real processes: it replaces
sleeping through back-offs and deadlines, while tests/procman/test_lifecycle.py does the same for real."""

from __future__ import annotations

import heapq
import io
import itertools
import signal

from procman.formation import AutoRange, build_formation
from procman.loop import Callback, Timer
from procman.output import LineStream, Output, Style
from procman.processconfig import ProcessConfig, parse_processes
from procman.procfile import parse_procfile
from procman.slots import Policy, State
from procman.supervisor import Supervisor


class ScriptedClock:
    """Time stands still until ``advance`` runs the timers that fall due, in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(self.now + delay, callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._timers and self._timers[0][0] <= end:
            when, _, timer = heapq.heappop(self._timers)
            self.now = when
            if not timer.cancelled:
                timer.callback()
        self.now = end


class ScriptedProcess:
    def __init__(self, pid: int, label: str) -> None:
        self.pid = pid
        self.label = label
        self.started_at = 0.0
        self.signals: list[int] = []

    def signal_group(self, signum: int) -> bool:
        self.signals.append(signum)
        return True

    def drain(self) -> None:
        pass

    def close_output(self) -> None:
        pass


class ScriptedCommand:
    """A readiness check or autoscale command: ``ScriptedProcesses.finish`` scripts its exit and output."""

    def __init__(self, pid: int, command: str) -> None:
        self.pid = pid
        self.command = command
        self.output = b""

    def signal_group(self, signum: int) -> bool:
        return True

    def read_output(self) -> bytes:
        return self.output


class ScriptedProcesses:
    """The process factory: ``exit(label, code)`` scripts an exit, which the next ``reap`` reports."""

    def __init__(self) -> None:
        self._pids = itertools.count(100)
        self.running: dict[str, ScriptedProcess] = {}
        self.spawned: list[str] = []
        self.broadcast: list[int] = []
        self.commands: list[ScriptedCommand] = []
        self._exited: list[tuple[int, int]] = []

    def spawn(self, instance, env, stream):  # type: ignore[no-untyped-def]
        process = ScriptedProcess(next(self._pids), instance.label)
        self.running[instance.label] = process
        self.spawned.append(instance.label)
        return process

    def exit(self, label: str, code: int) -> None:
        self._exited.append((self.running.pop(label).pid, code))

    def run_check(self, command: str, env: dict[str, str], capture: bool = False) -> ScriptedCommand:
        self.commands.append(ScriptedCommand(next(self._pids), command))
        return self.commands[-1]

    def finish(self, command: ScriptedCommand, code: int, output: bytes = b"") -> None:
        command.output = output
        self._exited.append((command.pid, code))

    def reap(self) -> list[tuple[int, int]]:
        exited, self._exited = self._exited, []
        return exited

    def lingering(self) -> bool:
        return False

    def forget_gone(self) -> None:
        pass

    def signal_all(self, signum: int) -> None:
        self.broadcast.append(signum)

    def signal_leftovers(self, signum: int) -> None:
        self.broadcast.append(signum)  # with each instance's own signal_group: all of procman's processes

    def anything_left(self) -> bool:
        return bool(self.running or self._exited)


def _supervisor(procfile: str, policy: Policy) -> tuple[Supervisor, ScriptedClock, ScriptedProcesses, io.BytesIO]:
    clock, processes, sink = ScriptedClock(), ScriptedProcesses(), io.BytesIO()
    instances = build_formation(parse_procfile(procfile), {}, 5000)
    output = Output(sink, Style(color=False, timestamps=False), [i.label for i in instances], clock)  # type: ignore[arg-type]
    supervisor = Supervisor(instances, lambda instance: {}, output, policy, clock, processes)
    supervisor.start()
    return supervisor, clock, processes, sink


def _lines(sink: io.BytesIO) -> list[str]:
    return [line.split("| ", 1)[1] for line in sink.getvalue().decode().splitlines()]


def test_restart_backoff_doubles_then_gives_up_at_the_limit() -> None:
    supervisor, clock, processes, sink = _supervisor("flaky: x\nweb: y\n", Policy(restart=frozenset({"flaky"})))
    for delay in (0.25, 0.5, 1, 2, 4):
        clock.advance(10)
        processes.exit("flaky.1", 7)
        supervisor.reap()
        clock.advance(delay - 0.001)
        assert "flaky.1" not in processes.running
        clock.advance(0.001)
        assert "flaky.1" in processes.running
    processes.exit("flaky.1", 7)
    supervisor.reap()
    assert "flaky.1 was restarted 5 times in 10 minutes; giving up, stopping all" in _lines(sink)
    assert processes.broadcast == [signal.SIGTERM]
    processes.exit("web.1", 143)
    supervisor.reap()
    assert supervisor.finished and supervisor.exit_code == 7


def test_restart_limit_and_window_are_the_policys_and_old_restarts_expire() -> None:
    policy = Policy(restart=frozenset({"flaky"}), restart_limit=2, restart_window=60)
    supervisor, clock, processes, sink = _supervisor("flaky: x\n", policy)
    for _ in range(2):
        clock.advance(5)
        processes.exit("flaky.1", 1)
        supervisor.reap()
        clock.advance(1)
    assert processes.spawned == ["flaky.1"] * 3
    clock.advance(60)  # both restarts are now older than the window: the budget is whole again
    processes.exit("flaky.1", 1)
    supervisor.reap()
    assert "restarting flaky.1 in 0.25 s (restart 1 of 2)" in _lines(sink)[-1]
    clock.advance(1)
    processes.exit("flaky.1", 1)
    supervisor.reap()
    clock.advance(1)
    processes.exit("flaky.1", 1)
    supervisor.reap()
    assert _lines(sink)[-1] == "flaky.1 was restarted 2 times in 1 minute; giving up, stopping all"
    assert supervisor.finished and supervisor.exit_code == 1


def test_shutdown_waits_one_deadline_then_kills_and_reports_each_stop() -> None:
    supervisor, clock, processes, sink = _supervisor("web: a\nstubborn: b\n", Policy(timeout=5))
    clock.advance(3)
    supervisor.stop(signal.SIGTERM)
    assert processes.broadcast == [signal.SIGTERM]
    processes.exit("web.1", 0)
    supervisor.reap()
    clock.advance(4.9)
    assert processes.broadcast == [signal.SIGTERM] and not supervisor.finished
    clock.advance(0.2)
    assert _lines(sink)[-1] == "timeout of 5 s reached; sending SIGKILL to stubborn.1"
    assert processes.broadcast[1] == signal.SIGKILL
    processes.exit("stubborn.1", 137)
    supervisor.reap()
    assert supervisor.finished and supervisor.exit_code == 143
    assert "web.1 stopped (exit 0)" in _lines(sink)
    assert "stubborn.1 was killed by SIGKILL" in _lines(sink)


def test_a_second_stop_signal_kills_at_once() -> None:
    supervisor, clock, processes, sink = _supervisor("stubborn: b\n", Policy(timeout=600))
    supervisor.stop(signal.SIGINT)
    clock.advance(1)
    supervisor.stop(signal.SIGINT)
    assert _lines(sink)[-1] == "SIGINT received again: killing all processes now"
    assert processes.broadcast == [signal.SIGTERM, signal.SIGKILL]
    processes.exit("stubborn.1", 137)
    supervisor.reap()
    assert supervisor.finished and supervisor.exit_code == 130


def test_a_quick_exit_names_the_port_and_a_stop_by_hand_is_not_an_exit() -> None:
    supervisor, clock, processes, sink = _supervisor("web: a\nworker: b\n", Policy(can_die=frozenset({"worker"})))
    clock.advance(0.3)
    processes.exit("worker.1", 1)
    supervisor.reap()
    assert _lines(sink)[-1] == "worker.1 exited with code 1, 0.3 s after it started with PORT=5100"
    assert supervisor.control("stop", ["web"]) == {"ok": True, "message": "stopping web.1"}
    assert processes.running["web.1"].signals == [signal.SIGTERM]
    processes.exit("web.1", 143)
    supervisor.reap()
    assert "web.1 stopped (SIGTERM)" in _lines(sink)
    assert [p["state"] for p in supervisor.control("status", [])["processes"]] == [State.STOPPED.value,
                                                                                  State.DEAD.value]


def _config(procfile: str, tables: dict[str, object]) -> ProcessConfig:
    return parse_processes(tables, "pyproject.toml", "[tool.procman.processes", parse_procfile(procfile))


def test_shutdown_stops_dependents_first_each_stage_with_its_own_deadline_and_signal() -> None:
    procfile = "db: a\nweb: b\nworker: c\n"
    config = _config(procfile, {"web": {"depends_on": ["db"]}, "worker": {"depends_on": ["db"], "stop_signal": "INT"}})
    supervisor, clock, processes, sink = _supervisor(procfile, Policy(timeout=5, processes=config))
    assert processes.spawned == ["db.1", "web.1", "worker.1"]
    db, web, worker = (processes.running[label] for label in ("db.1", "web.1", "worker.1"))
    supervisor.stop(signal.SIGTERM)
    assert (db.signals, web.signals, worker.signals, processes.broadcast) == ([], [signal.SIGTERM], [signal.SIGINT], [])
    processes.exit("web.1", 0)
    supervisor.reap()
    clock.advance(4.9)
    assert db.signals == []
    clock.advance(0.1)
    assert worker.signals == [signal.SIGINT, signal.SIGKILL]
    assert (db.signals, processes.broadcast) == ([signal.SIGTERM], [signal.SIGTERM])
    assert _lines(sink)[-2:] == ["timeout of 5 s reached; sending SIGKILL to worker.1", "stopping db.1"]
    processes.exit("worker.1", 137)
    processes.exit("db.1", 0)
    supervisor.reap()
    assert supervisor.finished and supervisor.exit_code == 143
    assert _lines(sink)[-2:] == ["worker.1 was killed by SIGKILL", "db.1 stopped (exit 0)"]


def test_a_one_off_that_exits_successfully_is_not_restarted_and_lets_its_dependents_start() -> None:
    procfile = "migrate: a\nweb: b\n"
    config = _config(procfile, {"web": {"depends_on": {"migrate": "exited"}}})
    supervisor, clock, processes, _ = _supervisor(procfile, Policy(restart=frozenset({"migrate", "web"}),
                                                                      processes=config))
    assert processes.spawned == ["migrate.1"]
    assert [p["state"] for p in supervisor.control("status", [])["processes"]] == ["running", "pending"]
    processes.exit("migrate.1", 1)  # a failed migration is restarted as usual
    supervisor.reap()
    clock.advance(0.25)
    assert processes.spawned == ["migrate.1", "migrate.1"]
    processes.exit("migrate.1", 0)
    supervisor.reap()
    clock.advance(60)
    assert processes.spawned == ["migrate.1", "migrate.1", "web.1"]
    assert [p["state"] for p in supervisor.control("status", [])["processes"]] == ["dead", "running"]
    assert not supervisor.finished


def test_a_dependency_outside_the_formation_is_not_waited_for() -> None:
    procfile = "redis: a\nweb: b\n"
    config = _config(procfile, {"web": {"depends_on": ["redis"]}})
    clock, processes, sink = ScriptedClock(), ScriptedProcesses(), io.BytesIO()
    instances = build_formation(parse_procfile(procfile), {}, 5000, selected=["web"])
    output = Output(sink, Style(color=False, timestamps=False), ["web.1"], clock)  # type: ignore[arg-type]
    Supervisor(instances, lambda instance: {}, output, Policy(processes=config), clock, processes).start()
    assert processes.spawned == ["web.1"]
    assert _lines(sink)[0] == "web does not wait for redis: not in this formation"


def test_autoscaled_instances_wait_for_their_dependencies_like_the_first() -> None:
    procfile = "db: a\nworker: b\n"
    config = _config(procfile, {"db": {"ready": "exec:db-ready"},
                                "worker": {"depends_on": ["db"], "autoscale": "wanted", "autoscale_interval": 1}})
    clock, processes, sink = ScriptedClock(), ScriptedProcesses(), io.BytesIO()
    instances = build_formation(parse_procfile(procfile), {"worker": AutoRange(1, 3)}, 5000)
    output = Output(sink, Style(color=False, timestamps=False), [i.label for i in instances], clock)  # type: ignore[arg-type]
    policy = Policy(processes=config, autoscale={"worker": AutoRange(1, 3)})
    supervisor = Supervisor(instances, lambda instance: {}, output, policy, clock, processes)
    supervisor.start()
    db_check = processes.commands[0]
    assert (processes.spawned, db_check.command) == (["db.1"], "db-ready")
    clock.advance(1)
    processes.finish(processes.commands[1], 0, b"3\n")
    supervisor.reap()
    assert _lines(sink)[-1] == "autoscaling worker: 1 -> 3 instances"
    assert processes.spawned == ["db.1"]  # db is not ready yet
    assert [p["state"] for p in supervisor.control("status", [])["processes"]] == ["starting"] + ["pending"] * 3
    processes.finish(db_check, 0)
    supervisor.reap()
    assert processes.spawned == ["db.1", "worker.1", "worker.2", "worker.3"]


def _stream(clock: ScriptedClock) -> tuple[LineStream, io.BytesIO]:
    sink = io.BytesIO()
    output = Output(sink, Style(color=False, timestamps=False), ["p.1"], clock)  # type: ignore[arg-type]
    return output.line_stream("p.1", 0), sink


def test_a_partial_line_waits_for_its_end_then_is_flushed_after_a_pause() -> None:
    clock = ScriptedClock()
    stream, sink = _stream(clock)
    stream.feed(b"Password: ")
    clock.advance(0.09)
    assert sink.getvalue() == b""
    clock.advance(0.02)
    assert sink.getvalue() == b"p.1    | Password: \n"
    clock.advance(1)
    stream.feed(b"par")
    clock.advance(0.05)
    stream.feed(b"tial\nnext")
    assert sink.getvalue().endswith(b"p.1    | partial\n")


def test_a_partial_line_ending_a_burst_gets_the_longer_wait() -> None:
    clock = ScriptedClock()
    stream, sink = _stream(clock)
    stream.feed(b"one\n")
    clock.advance(0.01)
    stream.feed(b"two\nthr")  # a read that stopped mid-line, in a burst
    clock.advance(0.5)
    assert sink.getvalue() == b"p.1    | one\np.1    | two\n"
    clock.advance(0.51)
    assert sink.getvalue().endswith(b"p.1    | thr\n")
