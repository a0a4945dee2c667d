"""The command line: version, help, usage errors, and defaults from pyproject.toml and PROCMAN_*."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from procman_support import clean_env

from procman import __version__


def test_version_and_help(project) -> None:
    assert project.run("version").stdout == f"procman {__version__}\n"
    assert project.run("--version").stdout == f"procman {__version__}\n"
    help_text = project.run("--help").stdout
    for command in ("start", "run", "check", "export", "restart", "stop", "status", "version", "examples:"):
        assert command in help_text
    assert "procman start -c web=2,worker=4" in project.run("start", "--help").stdout


def test_usage_errors_exit_2_without_traceback(project) -> None:
    project.procfile("web: true\n")
    for args in ([], ["nope"], ["start", "--bogus"], ["start", "-p", "x"], ["start", "-t", "soon"],
                 ["start", "-d", "missing-folder"], ["start", "-e", "missing.env"]):
        result = project.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["-5", "nan", "inf"])
def test_timeout_must_be_a_finite_number_of_seconds(project, value: str) -> None:
    project.procfile("web: true\n")
    result = project.run("start", "-t", value)
    assert result.returncode == 2
    assert f"argument -t/--timeout: expected a number of seconds, 0 or more, got '{value}'" in result.stderr
    result = project.run("start", env=clean_env(PROCMAN_TIMEOUT=value))
    assert (result.returncode, result.stderr) == (
        2, f"procman: error: PROCMAN_TIMEOUT: expected a number of seconds, 0 or more, got '{value}'\n")


def _ports(project, *args: str, env: dict[str, str] | None = None) -> dict[str, str]:
    result = project.run("check", *args, env=env)
    assert result.returncode == 0, result.stderr
    return dict(re.findall(r"│ (\w+)\s+│ \d+\s+│ ([-\d, ]+?)\s+│", result.stdout))


def test_check_prints_processes_and_formation_ports(project) -> None:
    project.procfile("web: a\nworker: b\n")
    result = project.run("check", "-c", "worker=2")
    assert "valid Procfile detected (web, worker)" in result.stdout
    assert _ports(project, "-c", "worker=2") == {"web": "5000", "worker": "5100, 5101"}


def test_flags_win_over_procman_variables_over_pyproject(project) -> None:
    project.procfile("web: a\nworker: b\n")
    project.write("pyproject.toml", '[tool.procman]\nport = 6000\nconcurrency = {worker = 2}\n')
    assert _ports(project) == {"web": "6000", "worker": "6100, 6101"}
    variables = clean_env(PROCMAN_PORT="7000", PROCMAN_CONCURRENCY="web=0")
    assert _ports(project, env=variables) == {"web": "-", "worker": "7100"}
    assert _ports(project, "-p", "8000", "-c", "web=1", env=variables) == {"web": "8000", "worker": "8100"}


def test_bad_configuration_names_its_source(project) -> None:
    project.procfile("web: a\n")
    project.write("pyproject.toml", "[tool.procman]\ncolour = true\n")
    result = project.run("check")
    assert result.returncode == 2
    assert "pyproject.toml: unknown key 'colour' in [tool.procman]" in result.stderr
    project.write("pyproject.toml", "[tool.procman]\ntimeout = 'soon'\n")
    assert "[tool.procman] timeout: could not convert" in project.run("check").stderr
    project.write("pyproject.toml", "")
    result = project.run("check", env=clean_env(PROCMAN_TTY="maybe"))
    assert result.returncode == 2
    assert "PROCMAN_TTY: expected true or false, got 'maybe'" in result.stderr


PROCFILE_PIECES = [b"web: echo $PORT", b"web: again", b"worker-1:x", b"# note", b"", b"  ", b"bad line", b"a.b: c",
                   b"w:", b"\xff\xfe: x", b"\r", b"\x00"]
ENV_PIECES = [b"A=1", b"export B='two'", b'C="multi', b'line"', b"D=${A}", b"=x", b"E F=1", b"# c", b"G", b"\xff",
              b"H='open", b"\x00=1"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    procfile=st.lists(st.sampled_from(PROCFILE_PIECES), max_size=5).map(b"\n".join),
    env=st.lists(st.sampled_from(ENV_PIECES), max_size=5).map(b"\n".join),
)
def test_any_procfile_and_env_give_success_or_a_located_error(project, procfile: bytes, env: bytes) -> None:
    (project.root / "Procfile").write_bytes(procfile)
    (project.root / ".env").write_bytes(env)
    result = project.run("check")
    assert "Traceback" not in result.stderr
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        assert re.match(r"procman: error: \S*/(Procfile|\.env)(:\d+)?: \S", result.stderr), result.stderr


def test_configuration_is_read_beside_the_procfile_not_in_the_working_folder(project) -> None:
    """As Foreman takes the Procfile's folder for the root: ``-f app/Procfile`` (or ``-d app``) reads
    app/pyproject.toml, not the one where procman was started."""
    project.write("pyproject.toml", "[tool.procman]\ncolour = true\n")  # the working folder's: broken
    project.write("app/Procfile", "web: a\nworker: b\n")
    project.write("app/pyproject.toml", "[tool.procman]\nport = 6000\n[tool.procman.processes.worker]\n"
                  "depends_on = ['web']\n")
    for flags in (["-f", "app/Procfile"], ["-d", "app"]):
        result = project.run("check", *flags)
        assert result.returncode == 0, (flags, result.stderr)
        assert dict(re.findall(r"│ (\w+)\s+│ \d+\s+│ ([-\d, ]+?)\s+│", result.stdout)) == {"web": "6000",
                                                                                          "worker": "6100"}
        assert "depends_on" in result.stdout or "web" in result.stdout
    result = project.run("check")  # no Procfile here, and the working folder's configuration is read
    assert result.returncode == 2 and "unknown key 'colour'" in result.stderr
