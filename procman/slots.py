"""What the supervisor works with: the processes it starts (as protocols), each instance's slot and state,
and the policy; plus how exits are described."""

from __future__ import annotations

import enum
import signal
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol

from procman.formation import AutoRange, Instance
from procman.loop import Timer
from procman.output import LineStream
from procman.processconfig import NO_CONFIG, ProcessConfig

if TYPE_CHECKING:
    from procman.readiness import Probe

RESTART_LIMIT = 5
RESTART_WINDOW = 600.0
COMMAND_NOT_FOUND = 127


class Process(Protocol):
    """A spawned instance, as the supervisor sees it; ``pid`` is also its process group id."""

    pid: int
    started_at: float

    def signal_group(self, signum: int) -> bool:
        """Signal the whole group; False when it is empty."""
        ...

    def drain(self) -> None:
        """Relay what the process has written so far."""
        ...

    def close_output(self) -> None:
        """Stop reading its output."""
        ...


class Command(Protocol):
    """A readiness check or autoscale command started by the factory; ``pid`` is its process group id."""

    pid: int

    def signal_group(self, signum: int) -> bool:
        """Signal its group."""
        ...

    def read_output(self) -> bytes:
        """What it wrote, when captured (once it has exited)."""
        ...


class ProcessFactory(Protocol):
    """How the supervisor starts, reaps and signals processes (the real one: ``procman.groups.ProcessGroups``)."""

    def spawn(self, instance: Instance, env: dict[str, str], stream: LineStream) -> Process:
        """Start ``instance`` in a process group of its own (raises ``OSError`` when it cannot)."""
        ...

    def reap(self) -> list[tuple[int, int]]:
        """Every process that exited since the last call: ``(pid, exit code)``."""
        ...

    def lingering(self) -> bool:
        """Whether a process group outlives its leader."""
        ...

    def forget_gone(self) -> None:
        """Forget groups that are empty or no longer verifiably procman's."""
        ...

    def run_check(self, command: str, env: dict[str, str], capture: bool = False) -> Command:
        """Start an ``exec:`` readiness check (output discarded) or an autoscale command (output captured);
        ``reap`` reports its exit."""
        ...

    def signal_all(self, signum: int) -> None:
        """Signal every process of procman's."""
        ...

    def signal_leftovers(self, signum: int) -> None:
        """Signal what is procman's besides the unreaped leaders: groups that outlive theirs, and strays."""
        ...

    def anything_left(self) -> bool:
        """Whether any process of procman's is still there."""
        ...


class State(enum.Enum):
    """Where a slot is in its life; ``status`` shows the value."""

    PENDING = "pending"  # waiting for its dependencies
    STARTING = "starting"  # started, its ready check has not passed yet
    RUNNING = "running"
    WAITING = "waiting"  # for its restart
    STOPPING = "stopping"
    STOPPED = "stopped"
    DEAD = "dead"
    SCALED_DOWN = "scaled-down"  # an autoscaled type's instance that is not wanted now


class Then(enum.Enum):
    """What a control command asked to happen once the process has exited."""

    STOP = "stop"
    RESTART = "restart"
    SCALE_DOWN = "scale-down"


class Policy(NamedTuple):
    """What happens when a process type exits, and how long shutdown waits before SIGKILL."""

    timeout: float = 5.0
    can_die: frozenset[str] = frozenset()
    restart: frozenset[str] = frozenset()
    restart_limit: int = RESTART_LIMIT
    restart_window: float = RESTART_WINDOW
    processes: ProcessConfig = NO_CONFIG
    autoscale: Mapping[str, AutoRange] = {}


class Slot:
    """One instance of the formation and its current process (if any)."""

    __slots__ = ("instance", "memory_restarts", "probe", "process", "reached", "restarts", "started", "state",
                 "stream", "then", "timer")

    def __init__(self, instance: Instance, stream: LineStream) -> None:
        self.instance = instance
        self.stream = stream
        self.process: Process | None = None
        self.state = State.PENDING
        self.started = 0.0
        self.restarts: deque[float] = deque()
        self.then: Then | None = None
        self.timer: Timer | None = None
        self.probe: Probe | None = None
        self.reached: set[str] = set()  # conditions met at least once: started, ready, exited
        self.memory_restarts = 0


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


def describe_stop(code: int) -> str:
    """How a process that procman asked to stop ended: ``stopped (exit 0)``, ``stopped (SIGTERM)``, or
    ``was killed by SIGKILL`` (procman's, at the deadline)."""
    if code == 128 + signal.SIGKILL:
        return "was killed by SIGKILL"
    if code > 128:
        try:
            return f"stopped ({signal.Signals(code - 128).name})"
        except ValueError:
            pass
    return f"stopped (exit {code})"


def describe_window(seconds: float) -> str:
    """``10 minutes``, ``1 minute``, ``90 s``."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} s"
