"""Procfile parsing: Foreman's syntax, and a clear error naming file and line for anything else."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from procman.errors import ConfigError
from procman.procfile import ProcfileEntry, parse_procfile, shell_command


def test_entries_keep_order_and_skip_comments_blank_lines_and_crlf() -> None:
    text = "# comment\r\nweb: python -m http.server $PORT\r\n\r\n  \nworker-2:bundle exec sidekiq\n# end\n"
    assert parse_procfile(text, "P") == [
        ProcfileEntry("web", "python -m http.server $PORT", 0, 2),
        ProcfileEntry("worker-2", "bundle exec sidekiq", 1, 5),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web: a\nweb: b\n", "P:2: duplicate process name 'web' (first defined on line 1)"),
        ("web: a\nnot a process line\n", "P:2: expected 'name: command'"),
        ("web.1: a\n", "P:1: expected 'name: command'"),
        ("web:\n", "P:1: process 'web' has no command"),
        ("web: echo \0\n", "P:1: the command of 'web' contains a NUL byte"),
        ("# only a comment\n\n", "P: no processes defined"),
        ("", "P: no processes defined"),
    ],
)
def test_bad_procfiles_name_file_and_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_procfile(text, "P")
    assert str(caught.value).startswith(message)


_LOCATED = re.compile(r"^P(:(\d+))?: \S")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("web: #\r\n\t-_.:aZ9$é\x00"), max_size=80))
def test_any_text_parses_or_gives_a_located_error(text: str) -> None:
    try:
        entries = parse_procfile(text, "P")
    except ConfigError as error:
        match = _LOCATED.match(str(error))
        assert match, str(error)
        if match.group(2):
            assert 1 <= int(match.group(2)) <= len(text.splitlines())
    else:
        assert entries
        assert len({entry.name for entry in entries}) == len(entries)
        assert all(entry.command.strip() == entry.command and entry.command for entry in entries)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"web: a\nweb: b\n", "Procfile:2: duplicate process name 'web'"),
        (b"", "Procfile: no processes defined"),
        (b"web: a\n!!\n", "Procfile:2: expected 'name: command'"),
        (b"web: a\n\xff\xfe: b\n", "Procfile:2: not valid UTF-8"),
    ],
)
def test_cli_reports_bad_procfile_with_exit_2(project, content: bytes, expected: str) -> None:
    (project.root / "Procfile").write_bytes(content)
    for command in (["check"], ["start"]):
        result = project.run(*command)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


def test_missing_procfile_is_a_usage_error(project) -> None:
    result = project.run("start", "-f", "nope/Procfile")
    assert result.returncode == 2
    assert "Procfile not found" in result.stderr


@pytest.mark.parametrize(
    ("command", "run_as"),
    [
        ("workerkit worker -r app.jobs -q critical,2", "exec workerkit worker -r app.jobs -q critical,2"),
        ("python -c 'print(1); print(2)'", "exec python -c 'print(1); print(2)'"),
        ("server --port $PORT > log 2>&1", "exec server --port $PORT > log 2>&1"),
        ("migrate && serve", "migrate && serve"),
        ("a; b", "a; b"),
        ("producer | consumer", "producer | consumer"),
        ("daemon &", "daemon &"),
        ("(cd sub && run)", "(cd sub && run)"),
        ("FOO=1 serve", "FOO=1 serve"),
        ("exit 3", "exit 3"),
        ("exec serve", "exec serve"),
        ("if true; then serve; fi", "if true; then serve; fi"),
        ("unbalanced 'quote", "unbalanced 'quote"),
    ],
)
def test_one_simple_command_is_execed_so_the_program_gets_the_signals(command: str, run_as: str) -> None:
    assert shell_command(command) == run_as
