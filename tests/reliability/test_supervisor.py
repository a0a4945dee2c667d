"""procman under fire: SIGKILL with eight process trees (grandchildren, double-forked daemons, a TERM
ignorer, a process that left the group, nohup), the SIGTERM ignorer SIGKILLed at the deadline, and
children that flood output or print megabytes without a newline: the others' lines keep coming and
procman's memory stays bounded (measured with psutil)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import procman_support as helpers
import psutil
import pytest
import reliability_kit as kit

PY = sys.executable


def _trees(token: str) -> str:
    """Eight Procfile entries, each leaving ``sleep TOKEN`` processes in a different shape of tree."""
    sleep = f"sleep {token}"
    double_fork = (f"{PY} -c \"import os; os.fork() and os._exit(0); os.setsid(); os.fork() and os._exit(0); "
                   f"os.execvp('sleep', ['sleep', '{token}'])\"")
    own_group = f"{PY} -c \"import os; os.setpgid(0, 0); os.execvp('sleep', ['sleep', '{token}'])\""
    return (
        f"plain: {sleep}\n"
        f"grandchildren: sh -c '{sleep} & {sleep}; wait' & {sleep}; wait\n"
        f"doublefork: {double_fork}; {sleep}\n"
        f"stubborn: trap '' TERM INT HUP; {sleep}\n"
        f"nohup: nohup {sleep} >/dev/null 2>&1 & {sleep}\n"
        f"owngroup: {own_group} & {sleep}\n"
        f"deep: sh -c \"sh -c 'sh -c \\\"{sleep}\\\"'\"\n"
        f"many: for i in 1 2 3 4 5; do {sleep} & done; wait\n"
    )


def _sleepers(token: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.info["cmdline"] == ["sleep", token] and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_no_survivor_of_eight_process_trees(tmp_path: Path, signum: int) -> None:
    token = f"{time.monotonic_ns() % 10**7}.{signum}"
    project = helpers.Project(tmp_path)
    project.procfile(_trees(token))
    running = project.start("--no-color", "-t", "2")
    try:
        try:
            kit.wait_until(lambda: len(_sleepers(token)) >= 17, helpers.DEADLINE, "all 17 sleeps to start")
        except TimeoutError as error:
            pytest.fail(f"{error}: {len(_sleepers(token))} running\n{running.output}")
        running.signal(signum)
        running.wait()
        helpers.wait_for(lambda: not _sleepers(token), what=f"no survivors after {signal.Signals(signum).name}")
        if signum == signal.SIGTERM:
            assert "timeout of 2 s reached; sending SIGKILL to stubborn.1" in running.output
    finally:
        project.stop_all()
        for process in _sleepers(token):
            process.kill()


FLOOD_MIB = 150
FLOODERS = {  # each writes FLOOD_MIB MiB as fast as it can, then waits
    "noline": f"import sys, time\nfor _ in range({FLOOD_MIB * 16}):\n    sys.stdout.buffer.write(b'x' * 65536)\n"
              "sys.stdout.flush()\ntime.sleep(600)\n",
    "flood": f"import sys, time\nlines = (b'y' * 127 + b'\\n') * 512\nfor _ in range({FLOOD_MIB * 16}):\n"
             "    sys.stdout.buffer.write(lines)\nsys.stdout.flush()\ntime.sleep(600)\n",
}


def test_floods_and_endless_lines_do_not_stall_others_or_grow_procman(tmp_path: Path) -> None:
    project = helpers.Project(tmp_path)
    for name, code in FLOODERS.items():
        project.write(f"{name}.py", code)
    project.procfile(
        f"noline: {PY} noline.py\n"
        f"flood: {PY} flood.py\n"
        f"ticker: i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done\n"
    )
    running = project.start("--no-color")
    try:
        running.wait_for("ticker.1 | tick 2")
        samples: list[float] = []
        deadline = time.monotonic() + 120
        with running.out_path.open("rb") as relayed:
            rest, found = b"", False
            while not (found and running.out_path.stat().st_size > 2 * FLOOD_MIB * 2**20):
                samples.append(kit.procman_rss_mib(running.process.pid))
                assert time.monotonic() < deadline, "the ticker's lines or the floods stalled"
                time.sleep(0.1)
                lines = (rest + relayed.read()).split(b"\n")
                rest = lines.pop()
                found = found or any(line.endswith(b"ticker.1 | tick 20") for line in lines)
        size = running.out_path.stat().st_size
        print(f"procman RSS MiB: first {samples[0]:.1f}, max {max(samples):.1f}; {size / 2**20:.0f} MiB relayed")
        assert max(samples) < samples[0] + 64, samples
        running.signal(signal.SIGTERM)
        assert running.wait() == 143
        with running.out_path.open("rb") as relayed:
            ticks = [int(line.rsplit(b" ", 1)[1]) for line in relayed if b" ticker.1 | tick " in line]
        assert ticks[:20] == list(range(1, 21))
    finally:
        project.stop_all()
        running.out_path.unlink(missing_ok=True)
