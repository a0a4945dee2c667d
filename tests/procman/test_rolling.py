"""``procman restart NAME --rolling``: one instance at a time, quiet signal first, the next once it is ready."""

from __future__ import annotations

import signal

import pytest
from procman_support import system_lines, wait_for, without_pids
from worker_formation import WorkerFormation


def test_a_rolling_restart_quiets_then_stops_each_in_turn_and_refuses_a_second(project) -> None:
    project.procfile("w: trap 'echo quiet' TSTP; trap 'echo bye; exit 0' TERM; echo up; "
                     "while true; do sleep 0.1; done\n")
    project.write("procman.toml", '[processes.w]\nquiet_signal = "TSTP"\nready = "log:^up$"\n')
    running = project.start("--no-color", "-c", "w=2", "-t", "0.5")
    wait_for(lambda: running.output.count("is ready") == 2, what="both instances ready")
    result = project.run("restart", "w", "--rolling")
    assert (result.returncode, result.stdout) == (0, "restarting w.1, w.2 one at a time\n")
    again = project.run("restart", "w.2", "--rolling")
    assert (again.returncode, again.stderr) == (1, "procman: a rolling restart is under way (left: w.1, w.2)\n")
    running.wait_for("rolling restart done: w.1, w.2")
    steps = without_pids(system_lines(running.output)[4:])
    assert steps == [
        step
        for label, port in (("w.1", 5000), ("w.2", 5001))
        for step in (f"rolling restart: restarting {label}",
                     f"{label} still running 0.5 s after SIGTSTP; sending SIGTERM",
                     f"{label} stopped (exit 0)",
                     f"{label} started with pid N (PORT={port})",
                     f"{label} is ready (log:^up$, T s after its start)")
    ] + ["rolling restart done: w.1, w.2"]
    assert running.output.count("| quiet") == 2
    running.signal(signal.SIGINT)
    assert running.wait() == 130


@pytest.mark.slow
def test_a_rolling_restart_of_workers_under_load_loses_no_job_and_keeps_n_minus_1_working(project) -> None:
    workers = 3
    formation = WorkerFormation(project, workers)
    fewest = [workers]

    def sample() -> None:
        fewest[0] = min(fewest[0], [p["state"] for p in formation.workers()].count("running"))

    with formation.load(sample):
        old = {p["pid"] for p in formation.workers()}
        result = project.run("restart", "worker", "--rolling", env=formation.env)
        assert result.stdout == "restarting worker.1, worker.2, worker.3 one at a time\n", result.stderr
        formation.running.wait_for("rolling restart done: worker.1, worker.2, worker.3")
        new = {p["pid"] for p in formation.workers()}
        done_at = formation.pushed
        wait_for(lambda: formation.pushed > done_at + 30, what="more jobs after the restart")
    runs = formation.runs()
    assert sorted(n for n, _ in runs) == list(range(formation.pushed))  # none lost, none twice
    runners = {pid for _, pid in runs}
    assert old & runners and new & runners and not old & new
    assert fewest[0] == workers - 1  # one at a time: never fewer, and the sampler saw each step
    assert formation.running.output.count("sending SIGTERM") == workers  # each was quiet until its timeout
    formation.running.signal(signal.SIGINT)
    assert formation.running.wait() == 130
