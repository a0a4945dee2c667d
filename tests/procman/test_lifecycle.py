"""Signals, shutdown, restart policy, exit codes, and no descendant left behind."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from procman_support import DEADLINE, PROCMAN, clean_env, survivors, wait_for

LONG = "sleep 600"


@pytest.mark.parametrize(
    ("command", "code", "message"),
    [
        ("exit 3", 3, "a.1 exited with code 3"),
        ("kill -9 $$", 137, "a.1 was killed by SIGKILL"),
        ("kill -TERM $$", 143, "a.1 was killed by SIGTERM"),
        ("true", 0, "a.1 exited with code 0"),
        ("no-such-command-procman", 127, "a.1 exited with code 127: command not found (Procfile line 1"),
    ],
)
def test_exit_code_is_the_first_exiting_childs(project, command: str, code: int, message: str) -> None:
    project.procfile(f"a: {command}\nb: {LONG}\n")
    running = project.start("--no-color")
    assert running.wait() == code, running.output
    assert message in running.output
    assert "b.1 stopped (SIGTERM)" in running.output


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_to_procman_stops_everything(project, signum: int, code: int) -> None:
    project.procfile(f"a: echo ready; {LONG}\nb: {LONG}\n")
    running = project.start("--no-color")
    running.wait_for("a.1    | ready")
    running.signal(signum)
    assert running.wait() == code
    assert f"{signal.Signals(signum).name} received; stopping all processes" in running.output


def test_timeout_then_sigkill_and_a_second_ctrl_c_kills_at_once(project) -> None:
    project.procfile("stubborn: trap 'echo got TERM' TERM; echo ready; while true; do sleep 0.1; done\n")
    running = project.start("--no-color", "-t", "1")
    running.wait_for("| ready")
    running.signal(signal.SIGTERM)
    assert running.wait() == 143
    assert "timeout of 1 s reached; sending SIGKILL to stubborn.1" in running.output
    assert "stubborn.1 was killed by SIGKILL" in running.output
    again = project.start("--no-color", "-t", "600")
    again.wait_for("| ready")
    again.signal(signal.SIGINT)
    again.wait_for("| got TERM")
    again.signal(signal.SIGINT)
    assert again.wait(60) == 130
    assert "SIGINT received again: killing all processes now" in again.output


def test_usr1_and_usr2_are_forwarded(project) -> None:
    project.procfile("a: trap 'echo got USR1' USR1; trap 'echo got USR2' USR2; echo ready; "
                     "while true; do sleep 0.1; done\n")
    running = project.start("--no-color")
    running.wait_for("| ready")
    running.signal(signal.SIGUSR1)
    running.wait_for("| got USR1")
    running.signal(signal.SIGUSR2)
    running.wait_for("| got USR2")
    running.signal(signal.SIGINT)
    assert running.wait() == 130


def test_can_die_keeps_the_others_running(project) -> None:
    project.procfile(f"once: echo migrated; exit 4\nweb: echo up; {LONG}\n")
    running = project.start("--no-color", "--can-die", "once")
    running.wait_for("once.1 exited with code 4")
    running.wait_for("web.1  | up")
    assert running.process.poll() is None
    running.signal(signal.SIGTERM)
    assert running.wait() == 143


def test_every_can_die_process_gone_ends_procman(project) -> None:
    project.procfile("a: exit 0\nb: sleep 0.5; exit 5\n")
    running = project.start("--no-color", "--can-die", "a,b")
    assert running.wait() == 5
    assert "every process has exited" in running.output


def test_restart_respawns_with_backoff_then_gives_up(project) -> None:
    project.procfile(f"flaky: echo run; exit 7\nweb: {LONG}\n")
    running = project.start("--no-color", "-r", "flaky")
    assert running.wait(90) == 7
    output = running.output
    assert output.count("flaky.1 | run") == 6
    delays = re.findall(r"restarting flaky\.1 in ([\d.]+) s \(restart (\d) of 5\)", output)
    assert delays == [("0.25", "1"), ("0.5", "2"), ("1", "3"), ("2", "4"), ("4", "5")]
    assert "flaky.1 was restarted 5 times in 10 minutes; giving up, stopping all" in output


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_no_descendant_survives_procman(project, signum: int) -> None:
    token = f"{time.monotonic_ns() % 10**6}.{signum}"  # a unique sleep argument, e.g. sleep 123456.9
    project.procfile(
        f"group: sh -c 'sleep {token} & sleep {token}; wait' & sleep {token}; wait\n"
        f"stubborn: trap '' TERM INT HUP; sleep {token}\n"
        f"daemon: setsid sh -c 'sleep {token} & sleep {token}' & sleep {token}\n"
    )
    running = project.start("--no-color", "-t", "2")
    wait_for(lambda: len(survivors(token)) >= 7, what="all sleeps to start")
    running.signal(signum)
    running.wait()
    wait_for(lambda: not survivors(token), what=f"no survivors after {signal.Signals(signum).name}")


def test_procman_run_execs_with_the_entry_environment(project) -> None:
    project.procfile("web: echo web\nworker: echo PORT=$PORT PS=$PS V=$V; exit 9\n")
    project.write(".env", "V=from-env\n")
    result = project.run("run", "worker")
    assert result.returncode == 9
    assert result.stdout == "PORT=5100 PS=worker.1 V=from-env\n"
    command = project.run("run", "sh", "-c", "echo $V $PORT; kill -TERM $$")
    assert command.returncode == -signal.SIGTERM  # exec: the signal reaches the caller as if run directly
    assert command.stdout == "from-env 5000\n"
    missing = project.run("run", "no-such-command-procman")
    assert missing.returncode == 127
    assert "no-such-command-procman: command not found" in missing.stderr
    assert project.run("run").returncode == 2


def test_procman_run_replaces_itself(project) -> None:
    project.procfile("web: echo $$\n")
    process = subprocess.Popen([PROCMAN, "run", "web"], cwd=project.root, env=clean_env(), stdout=subprocess.PIPE)
    out, _ = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0
    assert int(out) == process.pid


def test_a_program_that_handles_term_is_reported_with_its_own_exit_code(project) -> None:
    handler = ("import signal, sys, time; "
               "signal.signal(signal.SIGTERM, lambda *_: (print('finishing', flush=True), sys.exit(0))); "
               "print('ready', flush=True); time.sleep(600)")
    project.procfile(f'graceful: python3 -c "{handler}"\nother: {LONG}\n')
    running = project.start("--no-color")
    running.wait_for("graceful.1 | ready")
    running.signal(signal.SIGTERM)
    assert running.wait() == 143
    assert "graceful.1 | finishing" in running.output
    assert "graceful.1 stopped (exit 0)" in running.output
