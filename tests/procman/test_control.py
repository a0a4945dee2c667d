"""``procman status/restart/stop`` through the unix socket of a running ``procman start``."""

from __future__ import annotations

import re
import signal
import socket
import stat

from procman_support import wait_for


def _pids(project) -> dict[str, tuple[str, str]]:
    result = project.run("status")
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"(?m)^│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│", result.stdout)  # the first three columns
    return {name: (state, pid) for name, state, pid in rows}


def test_status_restart_and_stop_with_wildcards(project) -> None:
    project.procfile("web: echo web up; sleep 600\nworker: echo worker up; sleep 600\n")
    running = project.start("--no-color", "-c", "worker=2")
    running.wait_for("worker.2 | worker up")
    socket_file = project.root / ".procman.sock"
    assert stat.S_ISSOCK(socket_file.stat().st_mode)
    before = _pids(project)
    assert set(before) == {"web.1", "worker.1", "worker.2"}
    assert all(state == "running" for state, _ in before.values())

    restarted = project.run("restart", "worker.*")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout == "restarting worker.1, worker.2\n"
    wait_for(lambda: running.output.count("worker up") == 4, what="workers to come back")
    after = _pids(project)
    assert after["web.1"] == before["web.1"]
    assert after["worker.1"][1] != before["worker.1"][1]

    assert project.run("stop", "web").stdout == "stopping web.1\n"
    wait_for(lambda: _pids(project)["web.1"] == ("stopped", "-"), what="web.1 stopped")
    assert running.process.poll() is None  # a stopped process does not stop the others
    assert project.run("restart", "web.1").returncode == 0
    wait_for(lambda: _pids(project)["web.1"][0] == "running", what="web.1 running again")

    unknown = project.run("restart", "nope*")
    assert unknown.returncode == 1
    assert "no process matches 'nope*'" in unknown.stderr
    running.signal(signal.SIGINT)
    assert running.wait() == 130
    assert not socket_file.exists()


def test_without_a_running_procman_the_client_says_so(project) -> None:
    project.procfile("web: true\n")
    result = project.run("status")
    assert result.returncode == 2
    assert "no procman is running here" in result.stderr


def test_a_stale_socket_is_replaced_and_a_live_one_refused(project) -> None:
    project.procfile("web: echo up; sleep 600\n")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(project.root / ".procman.sock"))
    stale.close()  # the file stays, nobody listens: what a killed procman leaves behind
    running = project.start("--no-color")
    running.wait_for("web.1  | up")
    assert _pids(project)["web.1"][0] == "running"
    second = project.run("start")
    assert second.returncode == 2
    assert "another procman is already running here" in second.stderr
    running.signal(signal.SIGKILL)
    running.wait()
    again = project.start("--no-color")
    again.wait_for("web.1  | up")
    again.signal(signal.SIGTERM)
    assert again.wait() == 143


def test_procman_socket_variable_moves_the_socket(project, tmp_path_factory) -> None:
    from procman_support import clean_env

    elsewhere = tmp_path_factory.mktemp("sock") / "pm.sock"
    project.procfile("web: echo up; sleep 600\n")
    env = clean_env(PROCMAN_SOCKET=str(elsewhere))
    running = project.start("--no-color", env=env)
    running.wait_for("web.1  | up")
    assert stat.S_ISSOCK(elsewhere.stat().st_mode)
    assert not (project.root / ".procman.sock").exists()
    assert "web.1" in project.run("status", env=env).stdout
    running.signal(signal.SIGTERM)
    assert running.wait() == 143
