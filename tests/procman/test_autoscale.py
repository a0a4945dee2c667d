"""``-c worker=auto:LOW..HIGH`` with an ``autoscale`` command: the count follows the command, within the range,
scaling down only after the cool-down, and gracefully."""

from __future__ import annotations

import signal
import time

import pytest
from procman_support import wait_for

from procman.control import request


def _states(project, name: str) -> list[str]:
    processes = request(project.root / ".procman.sock", "status", [])["processes"]
    return [process["state"] for process in processes if process["name"].startswith(f"{name}.")]


def test_the_count_follows_the_command_within_the_range_and_scales_down_after_the_cooldown(project) -> None:
    project.procfile("web: echo web up; sleep 600\nworker: echo worker up; sleep 600\n")
    project.write("procman.toml", '[processes.worker]\nautoscale = "echo >> runs; cat backlog"\n'
                                  'autoscale_interval = 0.1\nautoscale_cooldown = 1\n')
    project.write("backlog", "3\n")
    running = project.start("--no-color", "-c", "worker=auto:1..4", "-t", "2")
    running.wait_for("autoscaling worker: 1 -> 3 instances")
    wait_for(lambda: _states(project, "worker") == ["running"] * 3 + ["scaled-down"], what="three workers")
    project.write("backlog", "50\n")
    running.wait_for("autoscaling worker: 3 -> 4 instances (the command asked for 50)")
    grown = time.monotonic()
    project.write("backlog", "0\n")
    running.wait_for("autoscaling worker: 4 -> 1 instances (the command asked for 0)")
    assert time.monotonic() - grown > 0.9  # the cool-down since the last change
    wait_for(lambda: _states(project, "worker") == ["running"] + ["scaled-down"] * 3, what="one worker")
    assert [f"worker.{n} stopped (SIGTERM)" in running.output for n in (1, 2, 3, 4)] == [False, True, True, True]
    project.write("backlog", "junk\n")
    failure = ("autoscale worker: the command exited with code 0 and printed 'junk', not a number of instances; "
               "keeping the count")
    running.wait_for(failure)
    runs = (project.root / "runs").read_text().count("\n")
    wait_for(lambda: (project.root / "runs").read_text().count("\n") >= runs + 3, what="three more runs")
    project.write("backlog", "2\n")
    running.wait_for("autoscaling worker: 1 -> 2 instances")
    assert running.output.count(failure) == 1  # said once, not at every interval
    wait_for(lambda: running.output.count("worker.2 | worker up") == 2,  # the lowest free number starts again
             what="worker.2 started a second time")
    restarted = project.run("restart", "worker.4")
    assert (restarted.returncode, restarted.stderr) == (1, "procman: every process matched is scaled down (the "
                                                           "autoscaler has not started it)\n")
    running.signal(signal.SIGINT)
    assert running.wait() == 130


def test_check_shows_the_range_and_the_command(project) -> None:
    project.procfile("worker: true\n")
    project.write("procman.toml", '[processes.worker]\nautoscale = "echo 2"\nautoscale_cooldown = 10\n')
    result = project.run("check", "-c", "worker=auto:2..5")
    assert result.returncode == 0, result.stderr
    assert "│ worker  │ auto 2..5 │ 5000, 5001, 5002, 5003, 5004 │ true    │" in result.stdout
    assert result.stdout.splitlines()[-2:] == ["worker autoscale: echo 2 (every 5 s, cool-down 10 s)",
                                               "shutdown order: worker"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "-c", "worker=auto:1..3"],
         "-c/--concurrency: worker=auto:1..3 needs autoscale = \"COMMAND\" in its process options "
         "([tool.procman.processes.worker], or [processes.worker] in procman.toml)"),
        (["start", "-c", "worker=auto:3..1"], "-c/--concurrency: expected auto:LOW..HIGH with 1 <= LOW <= HIGH, got "
                                              "'auto:3..1' for worker"),
        (["check", "-c", "all=auto:1..2"], "-c/--concurrency: all=auto is not supported: name the process to "
                                           "autoscale"),
        (["export", "systemd", "out", "-c", "worker=auto:1..2"],
         "-c/--concurrency: an autoscaled count (auto:LOW..HIGH) cannot be exported; give a number"),
    ],
)
def test_bad_autoscale_settings_are_errors(project, args: list[str], message: str) -> None:
    project.procfile("worker: true\n")
    result = project.run(*args)
    assert (result.returncode, result.stderr) == (2, f"procman: error: {message}\n")
