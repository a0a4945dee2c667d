"""Relay throughput: 4 processes x 200,000 lines of 80 bytes into a file, procman vs Honcho vs Foreman.

Each writer prints its lines in large writes, then a ``DONE`` line, then sleeps, so the supervisors
(which stop everything when one process exits) relay every line. A round runs each tool once, in turn,
and measures from start until the output file holds all four ``DONE`` lines; then the tool is stopped
and the lines of each process are counted (lost lines are reported). Rounds interleave the tools so
the load of this shared machine hits them alike; the figures are medians and ratios.

    python3 bench/relay.py [--rounds 3] [--lines 200000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procman_peers import all_tools, load_note, stop

WRITER = """\
import sys, time
name, count = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer
batch = []
for number in range(count):
    batch.append(b"%s %07d %s\\n" % (name.encode(), number, b"x" * 66))  # 80 bytes with the newline
    if len(batch) == 1000:
        out.write(b"".join(batch))
        batch = []
out.write(b"".join(batch) + b"%s DONE\\n" % name.encode())
out.flush()
time.sleep(600)
"""
NAMES = ("p1", "p2", "p3", "p4")
WHOLE_LINE = re.compile(rb"\| p\d \d{7} x{66}\n")


def run_once(command: list[str], env: dict[str, str] | None, folder: Path, lines: int) -> tuple[float, int]:
    """Seconds until every DONE line is in the output, and how many of the 4 x lines arrived."""
    output = folder / "out.txt"
    with output.open("wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen([*command, "start"], cwd=folder, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL)
        done, tail = 0, b""
        with output.open("rb") as reader:
            while done < len(NAMES):
                chunk = reader.read()
                if not chunk:
                    if process.poll() is not None or time.perf_counter() - start > 300:
                        break
                    time.sleep(0.005)
                    continue
                data = tail + chunk
                done += data.count(b" DONE\n") - tail.count(b" DONE\n")
                tail = data[-16:]
        elapsed = time.perf_counter() - start
        stop(process)
    return elapsed, len(WHOLE_LINE.findall(output.read_bytes()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    tools = all_tools()
    times: dict[str, list[float]] = {name: [] for name in tools}
    total = args.lines * len(NAMES)
    print(load_note())
    with tempfile.TemporaryDirectory(prefix="procman-relay-") as name:
        folder = Path(name)
        (folder / "writer.py").write_text(WRITER)
        (folder / "Procfile").write_text(
            "".join(f"{proc}: {sys.executable} writer.py {proc} {args.lines}\n" for proc in NAMES))
        for round_number in range(1, args.rounds + 1):
            for tool, (command, env) in tools.items():
                elapsed, arrived = run_once(command, env, folder, args.lines)
                times[tool].append(elapsed)
                lost = total - arrived
                print(f"round {round_number} {tool:8} {elapsed:7.2f} s  {total / elapsed:12,.0f} lines/s  lost {lost}")
    print(load_note())
    median = {tool: statistics.median(values) for tool, values in times.items()}
    print(f"\nmedian of {args.rounds} rounds, {len(NAMES)} x {args.lines:,} lines of 80 bytes:")
    for tool, seconds in median.items():
        ratio = seconds / median["procman"]
        print(f"  {tool:8} {seconds:7.2f} s  {total / seconds:12,.0f} lines/s  procman is {ratio:5.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
