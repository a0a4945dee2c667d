"""Formation syntax (``-c web=2,worker=4,all=1``) and its validation."""

from __future__ import annotations

import pytest

from procman.errors import ConfigError
from procman.formation import build_formation, parse_concurrency
from procman.procfile import parse_procfile

ENTRIES = parse_procfile("web: a\nworker: b\nclock: c\n", "P")


def labels(concurrency: str, selected: tuple[str, ...] = (), ignored: tuple[str, ...] = ()) -> list[str]:
    return [i.label for i in build_formation(ENTRIES, parse_concurrency(concurrency), 5000, selected, ignored)]


def test_counts_all_and_zero() -> None:
    assert labels("") == ["web.1", "worker.1", "clock.1"]
    assert labels("web=2, worker=0") == ["web.1", "web.2", "clock.1"]
    assert labels("all=2,clock=0") == ["web.1", "web.2", "worker.1", "worker.2"]
    assert labels("", ignored=("web",)) == ["worker.1", "clock.1"]
    assert labels("worker=2", selected=("worker",)) == ["worker.1", "worker.2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web", "expected NAME=COUNT"),
        ("=2", "missing process name"),
        ("web=two", "count must be a whole number"),
        ("web=-1", "must not be negative"),
        ("nope=1", r"unknown process .nope. \(the Procfile defines: web, worker, clock\)"),
    ],
)
def test_bad_formations_are_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        labels(text)


def test_unknown_names_on_the_command_line_exit_2(project) -> None:
    project.procfile("web: sleep 1\n")
    for args in (["start", "nope"], ["start", "-c", "nope=1"], ["start", "-m", "web"], ["start", "-x", "nope"],
                 ["start", "--can-die", "nope"], ["start", "-r", "nope"], ["start", "-c", "web=0"]):
        result = project.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("procman: error: "), result.stderr
