"""Start-up latency and weight of the supervisor, procman vs Honcho vs Foreman.

Two measures, each round running every tool once, in turn (interleaved, so the shared machine's load hits
them alike); the figures are medians over ``--rounds``:

- **start → first relayed line**: from spawning ``TOOL start`` until its stdout (a pipe) carries the line
  that the first process prints at once (``echo ready``);
- **RSS of the supervisor's processes** with two ``sleep`` children: the tool's process tree minus the
  sleeps (procman's guardian included, Honcho's per-child Python processes included), 1 s after both
  children are up.

    python3 bench/procman_start.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from procman_peers import Tool, all_tools, load_note, stop

READY = b"ready"


def first_line_seconds(tool: Tool, folder: Path) -> float:
    """Seconds from spawning ``start`` until the first process's ``ready`` line is relayed."""
    command, env = tool
    start = time.perf_counter()
    process = subprocess.Popen([*command, "start", "-f", str(folder / "Procfile.ready")], cwd=folder, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    seen = b""
    fd = process.stdout.fileno()
    try:
        while READY not in seen:
            readable, _, _ = select.select([fd], [], [], 30)
            chunk = os.read(fd, 65536) if readable else b""
            if not chunk:
                raise RuntimeError(f"{command} ended or stalled before relaying a line: {seen[-300:]!r}")
            seen = seen[-100:] + chunk
        return time.perf_counter() - start
    finally:
        stop(process)
        process.stdout.close()


def _sleeps(root: psutil.Process) -> int:
    return sum(child.name() == "sleep" for child in root.children(recursive=True))


def supervisor_rss_mib(tool: Tool, folder: Path) -> float:
    """RSS (MiB) summed over the supervisor's own processes while two ``sleep`` children run."""
    command, env = tool
    process = subprocess.Popen([*command, "start", "-f", str(folder / "Procfile.sleep")], cwd=folder, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        root = psutil.Process(process.pid)
        deadline = time.monotonic() + 30
        while _sleeps(root) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start two sleeps")
            time.sleep(0.05)
        time.sleep(1)
        tree = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in tree if p.name() != "sleep") / 2**20
    finally:
        stop(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    tools = all_tools()
    latency: dict[str, list[float]] = {name: [] for name in tools}
    rss: dict[str, list[float]] = {name: [] for name in tools}
    print(load_note())
    with tempfile.TemporaryDirectory(prefix="procman-start-") as name:
        folder = Path(name)
        (folder / "Procfile.ready").write_text("web: echo ready; sleep 1000\nworker: sleep 1000\n")
        (folder / "Procfile.sleep").write_text("web: sleep 1000\nworker: sleep 1000\n")
        for _ in range(args.rounds):
            for tool, command in tools.items():
                latency[tool].append(first_line_seconds(command, folder))
                rss[tool].append(supervisor_rss_mib(command, folder))
    print(load_note())
    first = statistics.median(latency["procman"])
    for tool in tools:
        median = statistics.median(latency[tool])
        spread = f"{min(latency[tool]) * 1000:.0f}-{max(latency[tool]) * 1000:.0f}"
        print(f"{tool:8} start -> first line: median {median * 1000:6.1f} ms (range {spread} ms; "
              f"procman takes {first / median:4.2f}x of it)   RSS of its processes: median "
              f"{statistics.median(rss[tool]):5.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
