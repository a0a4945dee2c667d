"""Idle CPU of the supervisor with 4 sleeping children, procman vs Honcho vs Foreman.

For each tool: start it on a Procfile of four ``sleep`` processes, let it settle for 2 s, then measure the
CPU time (user + system) of the supervisor's own processes (its process tree minus the sleeps; for
procman that includes its guardian) over ``--seconds``, as a percentage of one core.

    python3 bench/procman_idle.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from procman_peers import all_tools, load_note


def _supervisor_tree(root: psutil.Process) -> list[psutil.Process]:
    return [process for process in [root, *root.children(recursive=True)] if process.name() != "sleep"]


def _cpu(processes: list[psutil.Process]) -> float:
    """CPU seconds used so far: nanosecond schedstat on Linux (psutil's 10 ms ticks are too coarse here)."""
    total = 0.0
    for process in processes:
        try:
            tasks = Path(f"/proc/{process.pid}/task")
            if tasks.is_dir():
                total += sum(int((task / "schedstat").read_text().split()[0]) for task in tasks.iterdir()) / 1e9
            else:
                times = process.cpu_times()
                total += times.user + times.system
        except (psutil.Error, OSError):
            continue
    return total


def idle_percent(command: list[str], env: dict[str, str] | None, folder: Path, seconds: float) -> float:
    """Percent of one core used by the supervisor while its four children sleep."""
    process = subprocess.Popen([*command, "start"], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        root = psutil.Process(process.pid)
        deadline = time.monotonic() + 30
        while sum(child.name() == "sleep" for child in root.children(recursive=True)) < 4:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start four sleeps")
            time.sleep(0.1)
        time.sleep(2)
        tree = _supervisor_tree(root)
        before, start = _cpu(tree), time.monotonic()
        time.sleep(seconds)
        used, elapsed = _cpu(tree) - before, time.monotonic() - start
        return 100 * used / elapsed
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    tools = all_tools()
    print(load_note())
    with tempfile.TemporaryDirectory(prefix="procman-idle-") as name:
        folder = Path(name)
        (folder / "Procfile").write_text("".join(f"s{index}: sleep 10000\n" for index in range(1, 5)))
        for tool, (command, env) in tools.items():
            percent = idle_percent(command, env, folder, args.seconds)
            print(f"{tool:8} {percent:7.4f} % of one core over {args.seconds:g} s with 4 sleeping children")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
