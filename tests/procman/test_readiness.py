"""Start order, readiness checks and shutdown in reverse dependency order, with real processes."""

from __future__ import annotations

import re
import signal
import time

import pytest
from procman_support import clean_env, free_base_port, survivors, system_lines, wait_for, without_pids

# A "database" that starts listening on its port after 0.3 s, then says so, and stops on TERM after a word.
DB = ("python3 -c \"import signal, socket, sys, time; time.sleep(0.3); s = socket.socket(); "
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $PORT)); s.listen(); "
      "signal.signal(signal.SIGTERM, lambda *_: (print('db got TERM', flush=True), sys.exit(0))); "
      "print('accepting connections', flush=True); time.sleep(600)\"")
WEB = "python3 -m http.server $PORT --bind 127.0.0.1"


def test_processes_start_in_dependency_order_and_stop_in_reverse(project) -> None:
    project.procfile(f"web: {WEB}\nmigrate: sleep 0.2; echo migrated\ndb: {DB}\n")
    project.write("pyproject.toml", """
[tool.procman.processes.db]
ready = "tcp:$PORT"
ready_interval = 0.1
[tool.procman.processes.migrate]
depends_on = ["db"]
[tool.procman.processes.web]
depends_on = {db = "ready", migrate = "exited"}
ready = "http://127.0.0.1:$PORT/"
ready_interval = 0.1
""")
    base = free_base_port()
    running = project.start("--no-color", "-p", str(base))
    running.wait_for("web.1 is ready")
    running.signal(signal.SIGINT)
    assert running.wait() == 130
    assert without_pids(system_lines(running.output)) == [
        f"db.1 started with pid N (PORT={base + 200})",
        f"db.1 is ready (tcp:{base + 200}, T s after its start)",
        f"migrate.1 started with pid N (PORT={base + 100})",
        f"migrate.1 exited with code 0, T s after it started with PORT={base + 100}",
        f"web.1 started with pid N (PORT={base})",
        f"web.1 is ready (http://127.0.0.1:{base}/, T s after its start)",
        "SIGINT received; stopping all processes (SIGINT again kills them at once)",
        "web.1 stopped (SIGTERM)",
        "stopping db.1",
        "db.1 stopped (exit 0)",
    ]
    assert running.output.index("web.1 stopped") < running.output.index("db.1      | db got TERM")


def test_a_log_check_matches_a_line_written_in_pieces(project) -> None:
    project.procfile("slow: printf 'Ready to'; sleep 0.3; printf ' accept\\n'; sleep 600\n"
                     "after: echo after up; sleep 600\n")
    project.write("procman.toml", '[processes.slow]\nready = "log:Ready to accept"\n'
                                  '[processes.after]\ndepends_on = ["slow"]\n')
    running = project.start("--no-color")
    running.wait_for("after.1 | after up")
    lines = system_lines(running.output)
    assert lines[1].startswith("slow.1 is ready (log:Ready to accept, 0.")
    assert lines[2].startswith("after.1 started with pid")
    running.signal(signal.SIGTERM)
    assert running.wait() == 143


def test_a_process_never_ready_stops_the_start(project) -> None:
    project.procfile("db: sleep 600\nweb: echo web up; sleep 600\n")
    project.write("pyproject.toml", '[tool.procman.processes.db]\nready = "exec:test -e ready-flag"\n'
                                    'ready_interval = 0.1\nready_timeout = 0.5\n'
                                    '[tool.procman.processes.web]\ndepends_on = ["db"]\n')
    running = project.start("--no-color")
    assert running.wait() == 1
    lines = system_lines(running.output)
    assert lines[1:] == ["db.1 was not ready within 0.5 s (exec:test -e ready-flag: exit code 1); stopping all "
                         "processes", "db.1 stopped (SIGTERM)"]
    assert "web.1" not in running.output


def test_a_dependency_that_can_die_and_dies_stops_what_waits_for_it(project) -> None:
    project.procfile("db: exit 3\nweb: sleep 600\n")
    project.write("pyproject.toml", '[tool.procman.processes.web]\ndepends_on = ["db"]\n'
                                    '[tool.procman.processes.db]\nready = "tcp:1"\n')
    blocked = project.start("--no-color", "--can-die", "db")
    assert blocked.wait() == 3
    assert system_lines(blocked.output)[-1] == ("stopping all processes: web.1 waits for db to be ready, and db.1 has "
                                           "exited")
    assert "web.1 started" not in blocked.output


def test_ctrl_c_stays_responsive_and_nothing_survives_a_staged_shutdown(project) -> None:
    token = f"{time.monotonic_ns() % 10**6}.7"
    project.procfile(f"db: trap '' TERM; echo db up; sleep {token}\n"
                     f"web: trap '' TERM; echo web up; sleep {token}\n"
                     f"late: sleep {token}\n")
    project.write("pyproject.toml", '[tool.procman.processes.web]\ndepends_on = ["db"]\nready = "exec:sleep 600"\n'
                                    '[tool.procman.processes.late]\ndepends_on = ["web"]\n')
    running = project.start("--no-color", "-t", "600")
    running.wait_for("web.1  | web up")
    wait_for(lambda: len(survivors(token)) == 4, what="db and web to run (a shell and a sleep each)")
    started = time.monotonic()
    running.signal(signal.SIGINT)
    running.wait_for("SIGINT received; stopping all processes")
    running.signal(signal.SIGINT)
    assert running.wait() == 130
    assert time.monotonic() - started < 10
    assert "SIGINT received again: killing all processes now" in running.output
    assert "late.1" not in running.output  # web never became ready
    assert "stopping db.1" not in running.output  # the second Ctrl-C came while web was still stopping
    wait_for(lambda: not survivors(token) and not survivors("sleep 600"), what="no survivors")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[tool.procman.processes.web]\ndepends_on = ["nope"]\n',
         "pyproject.toml [tool.procman.processes.web] depends_on: unknown process 'nope' (the Procfile defines: "
         "web, db)"),
        ('[tool.procman.processes.web]\ndepends_on = ["db"]\n[tool.procman.processes.db]\ndepends_on = ["web"]\n',
         "pyproject.toml [tool.procman.processes.web] depends_on: dependency cycle: web -> db -> web"),
        ('[tool.procman.processes.web]\ndepends_on = ["web"]\n',
         "pyproject.toml [tool.procman.processes.web] depends_on: dependency cycle: web -> web"),
        ('[tool.procman.processes.web]\ndepends_on = {db = "up"}\n',
         "pyproject.toml [tool.procman.processes.web] depends_on: db = 'up': expected one of 'ready', 'exited', "
         "'started'"),
        ('[tool.procman.processes.api]\nready = "tcp:1"\n[tool.procman.processes.api2]\nready = "tcp"\n',
         "pyproject.toml [tool.procman.processes.api2] ready: expected \"tcp:PORT\", \"tcp:HOST:PORT\", "
         "\"http://HOST:PORT/PATH\", \"log:REGEX\" or \"exec:COMMAND\", got 'tcp'"),
        ('[tool.procman.processes.web]\nreddy = "tcp:1"\n',
         "pyproject.toml [tool.procman.processes.web]: unknown key 'reddy' (known: depends_on, ready, "
         "ready_interval, ready_timeout, stop_signal, quiet_signal, max_memory, autoscale, autoscale_interval, "
         "autoscale_cooldown)"),
        ('[tool.procman.processes.web]\nready = "ping:1"\n',
         "pyproject.toml [tool.procman.processes.web] ready: expected \"tcp:PORT\", \"tcp:HOST:PORT\", "
         "\"http://HOST:PORT/PATH\", \"log:REGEX\" or \"exec:COMMAND\", got 'ping:1'"),
        ('[tool.procman.processes.web]\nready = "log:(unclosed"\n',
         "pyproject.toml [tool.procman.processes.web] ready: invalid regex in 'log:(unclosed': missing ), "
         "unterminated subpattern at position 0"),
        ('[tool.procman.processes.web]\nready_timeout = 0\n',
         "pyproject.toml [tool.procman.processes.web] ready_timeout: expected a number of seconds above 0, got 0"),
        ('[tool.procman.processes.web]\nstop_signal = "KILL"\n',
         "pyproject.toml [tool.procman.processes.web] stop_signal: expected a signal name such as \"TERM\", "
         "\"INT\" or \"TSTP\" (not KILL), got 'KILL'"),
        ('[tool.procman.processes]\nweb = 1\n',
         "pyproject.toml [tool.procman.processes.web]: expected a table of options, got 1"),
    ],
)
def test_bad_process_options_are_errors_naming_file_and_key(project, table: str, message: str) -> None:
    project.procfile("web: true\ndb: true\n")
    project.write("pyproject.toml", table)
    result = project.run("check")
    assert result.returncode == 2
    assert result.stderr == f"procman: error: {message}\n"
    assert project.run("start").stderr == result.stderr


def test_procman_toml_beside_the_procfile_and_check_prints_the_options(project) -> None:
    project.procfile("web: true\nworker: true\nredis: true\n")
    project.write("procman.toml", '[processes.redis]\nready = "tcp:$PORT"\n'
                                  '[processes.web]\ndepends_on = ["redis"]\nstop_signal = "INT"\nmax_memory = "2GB"\n'
                                  '[processes.worker]\ndepends_on = {redis = "started"}\nquiet_signal = "TSTP"\n')
    result = project.run("check", env=clean_env(COLUMNS="200"))  # table rows unwrapped
    assert result.returncode == 0, result.stderr
    assert "process options: " + str(project.root / "procman.toml") + " [processes]" in result.stdout
    assert re.search(r"│ redis +│ - +│ tcp:\$PORT \(every 0\.5 s, up to 60 s\) +│ SIGTERM +│ - +│ - +│", result.stdout)
    assert re.search(r"│ web +│ redis \(ready\) +│ - +│ SIGINT +│ - +│ 2048 MiB +│", result.stdout)
    assert re.search(r"│ worker +│ redis \(started\) +│ - +│ SIGTERM +│ SIGTSTP +│ - +│", result.stdout)
    assert result.stdout.endswith("shutdown order: web, worker, then redis\n")
    project.write("procman.toml", '[processes.api]\nready = "tcp:1"\n')  # for another Procfile, say
    assert project.run("check").stdout.splitlines()[-1] == (f"ignored (not in this Procfile): api in "
                                                           f"{project.root / 'procman.toml'} [processes]")
    project.write("pyproject.toml", '[tool.procman.processes.web]\nready = "tcp:1"\n')
    both = project.run("check")
    assert both.returncode == 2
    assert both.stderr == (f"procman: error: {project.root / 'procman.toml'}: processes are configured in "
                           "pyproject.toml too; keep one of the two\n")
    project.write("pyproject.toml", "")
    project.write("procman.toml", "timeout = 3\n")
    assert project.run("check").stderr == (
        f"procman: error: {project.root / 'procman.toml'}: unknown key 'timeout': procman.toml holds only "
        "[processes.NAME] tables (other settings go in [tool.procman] of pyproject.toml or PROCMAN_* variables)\n")
