"""``procman restart NAME --rolling``: one instance at a time, quiet signal first, the next once it is ready."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import redis
from procman_support import clean_env, free_base_port, system_lines, wait_for, without_pids

from procman.control import request
from workerkit import config

HERE = Path(__file__).resolve().parent


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
    port, workers = free_base_port(), 3
    project.procfile(f"redis: workerkit redis --port {port} --dir redis-data\n"
                     "worker: workerkit worker -r rolling_jobs -c 2\n")
    project.write("procman.toml", '[processes.redis]\nready = "log:Ready to accept connections"\n'
                                  '[processes.worker]\ndepends_on = ["redis"]\nquiet_signal = "TSTP"\n'
                                  'ready = "log:workerkit .* starting"\n')
    url = f"redis://127.0.0.1:{port}/0"
    env = clean_env(PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                    WORKERKIT_REDIS_URL=url)
    env = {key: value for key, value in env.items() if key not in ("REDIS_URL", "WORKERKIT_POLL_INTERVAL")}
    running = project.start("--no-color", "-c", f"worker={workers}", "-t", "1", "-p", str(port + 100), env=env)
    wait_for(lambda: running.output.count("is ready") == 1 + workers or running.process.poll() is not None,
             what="Redis and the workers to be ready", detail=lambda: running.output)
    socket_file = project.root / ".procman.sock"
    config.reset()
    config.configure(redis_url=url)
    from rolling_jobs import Tick

    pushed, stop, fewest = [0], threading.Event(), [workers]

    def push() -> None:
        while not stop.wait(0.01):
            Tick.perform_async(pushed[0])
            pushed[0] += 1

    def sample() -> None:
        while not stop.wait(0.02):
            states = [p["state"] for p in request(socket_file, "status", [])["processes"] if p["name"] != "redis.1"]
            fewest[0] = min(fewest[0], states.count("running"))

    threads = [threading.Thread(target=push), threading.Thread(target=sample)]
    client = redis.Redis.from_url(url)
    try:
        for thread in threads:
            thread.start()
        wait_for(lambda: client.llen("rolling:runs") > 20, what="jobs to run")
        old = {p["pid"] for p in request(socket_file, "status", [])["processes"] if p["name"] != "redis.1"}
        result = project.run("restart", "worker", "--rolling", env=env)
        assert result.stdout == "restarting worker.1, worker.2, worker.3 one at a time\n", result.stderr
        running.wait_for("rolling restart done: worker.1, worker.2, worker.3")
        new = {p["pid"] for p in request(socket_file, "status", [])["processes"] if p["name"] != "redis.1"}
        done_at = pushed[0]
        wait_for(lambda: pushed[0] > done_at + 30, what="more jobs after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    wait_for(lambda: client.llen("rolling:runs") >= pushed[0], what="every job to run",
             detail=lambda: f"{client.llen('rolling:runs')} of {pushed[0]}")
    runs = [entry.decode().split(":") for entry in client.lrange("rolling:runs", 0, -1)]
    client.close()
    config.reset()
    assert sorted(int(n) for n, _ in runs) == list(range(pushed[0]))  # none lost, none twice
    runners = {int(pid) for _, pid in runs}
    assert old & runners and new & runners and not old & new
    assert fewest[0] == workers - 1  # one at a time: never fewer, and the sampler saw each step
    assert running.output.count("sending SIGTERM") == workers  # each was quiet until its timeout
    running.signal(signal.SIGINT)
    assert running.wait() == 130
