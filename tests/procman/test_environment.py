"""Env files (python-dotenv semantics) and each child's environment: PORT, PS, PROCMAN_PORT_<NAME>."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procman.environment import load_env_files, parse_env_text
from procman.errors import ConfigError


def test_dotenv_syntax_export_quotes_multiline_and_expansion() -> None:
    text = 'export A=1\nB="two words"\nC=\'${A} raw\'\nD="${A}-${HOME_X}"\nE="line1\nline2"\nF=x # comment\nG\n'
    assert parse_env_text(text, ".env", {"HOME_X": "h"}) == {
        "A": "1", "B": "two words", "C": "1 raw", "D": "1-h", "E": "line1\nline2", "F": "x",
    }


def test_comment_lines_anywhere_are_skipped() -> None:
    text = "# database\nA=1\n\n  # indented comment\nB=2 # trailing\n#last"
    assert parse_env_text(text, ".env", {}) == {"A": "1", "B": "2"}


def test_later_files_win_and_expand_from_earlier_ones(tmp_path: Path) -> None:
    (tmp_path / "a.env").write_text("A=1\nB=a\n")
    (tmp_path / "b.env").write_text("B=${A}b\n")
    assert load_env_files([tmp_path / "a.env", tmp_path / "b.env"], {}, required=True) == {"A": "1", "B": "1b"}


def test_missing_default_env_is_fine_but_a_named_one_is_an_error(tmp_path: Path) -> None:
    assert load_env_files([tmp_path / ".env"], {}, required=False) == {}
    with pytest.raises(ConfigError, match=r"x\.env: env file not found"):
        load_env_files([tmp_path / "x.env"], {}, required=True)


@pytest.mark.parametrize(
    ("text", "line"),
    [("A=1\nB='unterminated\n", 2), ("A=1\n\nnot an assignment\n", 3), ('=x\n', 1), ("A B=1\n", 1)],
)
def test_bad_lines_are_located(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_env_text(text, "f.env", {})
    assert str(caught.value).startswith(f"f.env:{line}: ")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("AB_=x \"'\\\n#${}:-\x00é"), max_size=60))
def test_any_env_text_parses_or_gives_a_located_error(text: str) -> None:
    try:
        values = parse_env_text(text, "f.env", {"X": "1"})
    except ConfigError as error:
        match = re.match(r"^f\.env:(\d+): \S", str(error))
        assert match, str(error)
        assert 1 <= int(match.group(1)) <= max(1, text.count("\n") + 1)
    else:
        assert all(isinstance(value, str) and "\0" not in value for value in values.values())


def test_cli_reports_a_bad_env_file_with_exit_2(project) -> None:
    project.procfile("web: true\n")
    project.write(".env", "OK=1\nBROKEN='x\n")
    for command in (["check"], ["start"], ["run", "web"]):
        result = project.run(*command)
        assert result.returncode == 2, (command, result.stderr)
        assert ".env:2: cannot parse this statement" in result.stderr
        assert "Traceback" not in result.stderr


def _instance_env(project, *args: str, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Start procman with children that print their variables; return them per instance label."""
    running = project.start("--no-color", *args, env=env)
    assert running.wait() == 0, running.output
    found: dict[str, dict[str, str]] = {}
    for label, key, value in re.findall(r"^\S+ (\S+)\s+\| (\w+)=(.*)$", running.output, re.M):
        found.setdefault(label, {})[key] = value
    return found


SHOW = "echo PORT=$PORT; echo PS=$PS; echo WEB=$PROCMAN_PORT_WEB; echo WORKER=$PROCMAN_PORT_WORKER; echo V=$V"


def test_ports_follow_foremans_rule_for_start_and_start_worker(project) -> None:
    project.procfile(f"web: {SHOW}\nworker: {SHOW}\nclock: {SHOW}\n")
    everything = _instance_env(project, "--can-die", "web,worker,clock", "-c", "web=2,worker=3")
    assert {label: values["PORT"] for label, values in everything.items()} == {
        "web.1": "5000", "web.2": "5001", "worker.1": "5100", "worker.2": "5101", "worker.3": "5102",
        "clock.1": "5200",
    }
    assert everything["worker.2"]["PS"] == "worker.2"
    assert everything["clock.1"]["WEB"] == "5000"
    assert everything["clock.1"]["WORKER"] == "5100"
    assert everything["web.1"]["WEB"] == ""  # a process's own port is in PORT
    only_worker = _instance_env(project, "worker", "--can-die", "worker")
    assert list(only_worker) == ["worker.1"]
    assert only_worker["worker.1"]["PORT"] == "5100"


def test_base_port_precedence_flag_then_env_file_then_shell(project) -> None:
    from procman_support import clean_env

    project.procfile(f"web: {SHOW}\n")
    shell = clean_env(PORT="7000", V="shell")
    assert _instance_env(project, "--can-die", "web", env=shell)["web.1"]["PORT"] == "7000"
    project.write(".env", "PORT=8000\nV=dotenv\n")
    from_file = _instance_env(project, "--can-die", "web", env=shell)["web.1"]
    assert from_file["PORT"] == "8000"
    assert from_file["V"] == "dotenv"  # the env file overrides the shell for the children
    assert _instance_env(project, "--can-die", "web", "-p", "9000", env=shell)["web.1"]["PORT"] == "9000"


def test_env_option_takes_several_files_later_wins(project) -> None:
    project.procfile(f"web: {SHOW}\n")
    project.write("a.env", "V=a\n")
    project.write("b.env", "V=b\n")
    assert _instance_env(project, "--can-die", "web", "-e", "a.env,b.env")["web.1"]["V"] == "b"
    assert _instance_env(project, "--can-die", "web", "-e", "b.env", "-e", "a.env")["web.1"]["V"] == "a"


def test_command_text_is_not_pre_substituted(project) -> None:
    project.procfile("web: echo V=$FOOBAR\n")
    project.write(".env", "FOO=1\nFOOBAR=2\n")
    assert _instance_env(project, "--can-die", "web")["web.1"]["V"] == "2"
