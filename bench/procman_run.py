"""Start-up cost of ``procman run true`` vs ``honcho run true`` vs ``foreman run true``.

Each round runs every tool once, in turn (interleaved, so the shared machine's load hits them alike),
in a folder with a Procfile and a .env; the figures are medians over ``--rounds``. A bare interpreter start
(``python -c pass``, the same interpreter and site-packages that procman and Honcho start with) is measured
alongside, so the cost of each tool above the interpreter can be compared too.

    python3 bench/procman_run.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procman_peers import all_tools, load_note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    tools = all_tools()
    times: dict[str, list[float]] = {tool: [] for tool in tools}
    print(load_note())
    with tempfile.TemporaryDirectory(prefix="procman-run-") as name:
        folder = Path(name)
        (folder / "Procfile").write_text("web: python -m http.server $PORT\nworker: sleep 1000\n")
        (folder / ".env").write_text("DATABASE_URL=postgres://localhost/app\nDEBUG=1\n")
        baseline: list[float] = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            baseline.append(time.perf_counter() - start)
            for tool, (command, env) in tools.items():
                start = time.perf_counter()
                subprocess.run([*command, "run", "true"], cwd=folder, env=env, check=True)
                times[tool].append(time.perf_counter() - start)
    print(load_note())
    interpreter = statistics.median(baseline)
    print(f"python -c pass     median {interpreter * 1000:6.1f} ms (interpreter start-up, paid by procman and honcho)")
    procman = statistics.median(times["procman"])
    for tool, values in times.items():
        median = statistics.median(values)
        print(f"{tool:8} run true: median {median * 1000:6.1f} ms  ({median / procman:4.2f}x procman's; "
              f"{(median - interpreter) * 1000:6.1f} ms above the interpreter start)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
