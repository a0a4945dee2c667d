"""``max_memory``: an instance whose process tree stays above its ceiling is restarted gracefully, and counted
apart from crashes."""

from __future__ import annotations

import re
import signal

import pytest
from procman_support import system_lines, wait_for, without_pids
from worker_formation import WorkerFormation

# The shell is the leader; the memory is its child's, so only a measure of the whole tree sees it. The first
# run grows to about 80 MiB, the one after the restart stays small.
HOG = ("if [ -e grown ]; then echo small; sleep 600; else touch grown; "
       "python3 -c 'import time; x = b\"x\" * (64 << 20); print(\"big\", flush=True); time.sleep(600)'; fi")


def test_a_process_tree_above_its_ceiling_is_restarted_and_counted_apart(project) -> None:
    project.procfile(f"hog: {HOG}\nother: echo other up; sleep 600\n")
    project.write("procman.toml", '[processes.hog]\nmax_memory = "40MB"\n')
    running = project.start("--no-color", "-t", "2")
    running.wait_for("hog.1   | small")
    lines = without_pids(system_lines(running.output))
    over = next(line for line in lines if "max_memory" in line)
    assert re.fullmatch(r"hog\.1 uses (\d+) MiB, above its max_memory of 40 MiB; restarting it \(memory restart 1\)",
                        over)
    assert int(re.findall(r"\d+", over)[1]) >= 64
    assert lines[lines.index(over) + 1:] == ["hog.1 stopped (SIGTERM)", "hog.1 started with pid N (PORT=5000)"]
    status = project.run("status")
    row = re.search(r"│ hog\.1 +│ running +│ \d+ +│ 5000 +│ \d+s +│ (\d+) +│ (\d+) +│", status.stdout)
    assert row is not None, status.stdout
    assert row.groups() == ("0", "1")  # no crash restart, one memory restart
    assert "other.1 stopped" not in running.output
    running.signal(signal.SIGINT)
    assert running.wait() == 130


def test_max_memory_must_be_a_size(project) -> None:
    project.procfile("hog: true\n")
    project.write("procman.toml", '[processes.hog]\nmax_memory = "lots"\n')
    result = project.run("check")
    assert result.returncode == 2
    assert result.stderr == (f"procman: error: {project.root / 'procman.toml'} [processes.hog] max_memory: expected a "
                             "size such as \"512MB\" or \"2GB\" (KB, MB, GB: powers of 1024), got 'lots'\n")


@pytest.mark.slow
def test_a_worker_over_its_ceiling_is_restarted_gracefully_and_loses_no_job(project) -> None:
    formation = WorkerFormation(project, 2, 'max_memory = "20MB"\n')  # a workerkit worker needs more
    with formation.load():
        old = {p["pid"] for p in formation.workers()}
        wait_for(lambda: all(p["memory_restarts"] and p["state"] == "running" and p["pid"] not in old
                             for p in formation.workers()), what="both workers restarted for their memory",
                 detail=lambda: formation.running.output)
    runs = formation.runs()
    assert sorted(n for n, _ in runs) == list(range(formation.pushed))  # none lost, none twice
    assert [p["restarts"] for p in formation.workers()] == [0, 0]  # not counted as crashes
    output = formation.running.output
    assert "worker.1 still running 1 s after SIGTSTP; sending SIGTERM" in output  # quiet first, then TERM
    assert "worker.1 was killed by SIGKILL" not in output
    formation.running.signal(signal.SIGINT)
    assert formation.running.wait() == 130
