"""Foreman's and Honcho's documented behaviour, and the edges where procman used to differ or fall over."""

from __future__ import annotations

import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest
from procman_support import clean_env


def test_root_option_finds_the_procfile_and_env_in_that_folder(project) -> None:
    project.write("app/Procfile", "web: echo PORT=$PORT V=$V\n")
    project.write("app/.env", "V=from-app\n")
    result = project.run("check", "-d", "app")
    assert result.returncode == 0, result.stderr
    assert f"valid Procfile detected (web): {project.root / 'app' / 'Procfile'}" in result.stdout
    running = project.start("--no-color", "-d", "app")
    assert running.wait() == 0
    assert "web.1  | PORT=5000 V=from-app" in running.output


@pytest.mark.parametrize("name", ["-foo", "A.B", "été", "1A", "A-B"])
def test_env_names_that_are_not_portable_are_rejected_with_file_and_line(project, name: str) -> None:
    project.procfile("web: true\n")
    project.write(".env", f"GOOD=1\n{name}=x\n")
    result = project.run("check")
    assert result.returncode == 2
    assert f"{project.root / '.env'}:2: invalid variable name {name!r}" in result.stderr


def test_check_prints_commands_with_markup_as_written_and_one_summary_line(project) -> None:
    project.procfile("web: echo '[/x]' [bold]\nvery-long-process-name-number-one: true\nanother-long-name-two: true\n")
    result = project.run("check")
    assert result.returncode == 0, result.stderr
    assert "echo '[/x]' [bold]" in result.stdout
    summary = result.stdout.splitlines()[0]
    assert summary == (f"valid Procfile detected (web, very-long-process-name-number-one, another-long-name-two): "
                       f"{project.root / 'Procfile'}")


def test_names_giving_one_port_variable_are_rejected(project) -> None:
    project.procfile("foo_bar: true\nfoo-bar: true\n")
    result = project.run("check")
    assert result.returncode == 2
    assert (f"{project.root / 'Procfile'}:2: process names 'foo_bar' (line 1) and 'foo-bar' both give "
            "PROCMAN_PORT_FOO_BAR; rename one") in result.stderr


@pytest.mark.parametrize(("value", "message"), [
    ("0", "got '0'"), ("x", "got 'x'"), ("5/0", "got '5/0'"), ("5/nan", "got '5/nan'"), ("-1/60", "got '-1/60'"),
])
def test_restart_limit_is_validated_everywhere(project, value: str, message: str) -> None:
    project.procfile("web: true\n")
    flag = project.run("start", f"--restart-limit={value}")
    assert flag.returncode == 2
    assert "argument --restart-limit: expected COUNT or COUNT/SECONDS" in flag.stderr and message in flag.stderr
    variable = project.run("start", env=clean_env(PROCMAN_RESTART_LIMIT=value))
    assert variable.returncode == 2
    assert variable.stderr.startswith("procman: error: PROCMAN_RESTART_LIMIT: expected COUNT or COUNT/SECONDS")
    project.write("pyproject.toml", f'[tool.procman]\nrestart-limit = "{value}"\n')
    table = project.run("start")
    assert table.returncode == 2
    assert "[tool.procman] restart-limit: expected COUNT or COUNT/SECONDS" in table.stderr


def test_restart_limit_from_the_flag_and_from_pyproject(project) -> None:
    project.procfile("flaky: echo run; exit 7\nweb: sleep 600\n")
    running = project.start("--no-color", "-r", "flaky", "--restart-limit", "2/30")
    assert running.wait() == 7
    assert running.output.count("flaky.1 | run") == 3
    assert "flaky.1 was restarted 2 times in 30 s; giving up, stopping all" in running.output
    project.write("pyproject.toml", "[tool.procman]\nrestart-limit = 1\n")
    running = project.start("--no-color", "-r", "flaky")
    assert running.wait() == 7
    assert "flaky.1 was restarted 1 time in 10 minutes; giving up, stopping all" in running.output


def test_a_stale_socket_of_another_user_is_reported_not_a_crash() -> None:
    """A real socket file owned by root, probed by a process that really runs as another user."""
    from procman import control
    from procman.loop import Loop

    if os.geteuid() != 0:
        pytest.skip("needs root to run the probe as another user")
    folder = Path(tempfile.mkdtemp(prefix="procman-other-user-"))
    folder.chmod(0o1777)
    path = folder / ".procman.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))
    path.chmod(0o600)
    assert stat.S_ISSOCK(path.lstat().st_mode)
    read_fd, write_fd = os.pipe()
    loop = Loop()
    pid = os.fork()
    if pid == 0:  # the other user: report what serve() raised, then leave without cleanup
        os.close(read_fd)
        try:
            os.setgid(65534)
            os.setuid(65534)
            control.serve(path, lambda command, names: {}, loop)
            outcome = "served"
        except control.SocketUnavailable as error:
            outcome = f"unavailable: {error}"
        except BaseException as error:  # anything else is the bug this test is about
            outcome = f"crash: {type(error).__name__}: {error}"
        os.write(write_fd, outcome.encode())
        os._exit(0)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as pipe:
            outcome = pipe.read().decode()
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        loop.close()
        path.unlink()
        folder.rmdir()
    assert outcome.startswith(f"unavailable: {path}: a control socket here belongs to another user"), outcome

