"""workerkit's log lines: written on every supported CPython, and a payload cannot forge lines in them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from workerkit import logs

FORGED_CLASS = "app.Job\n2026-01-01T00:00:00.000Z pid=1 tid=1 INFO: forged"
FORGED_JID = "abc\r\x1b[2Kdef ghi"


@pytest.fixture
def pipe_log() -> Iterator[tuple[logging.Logger, logs.BufferedLineHandler, int]]:
    """A logger whose only handler is a :class:`logs.BufferedLineHandler` writing to a real pipe."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    stream = open(write_end, "wb")  # noqa: SIM115 - closed below, after the handler
    handler = logs.BufferedLineHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    handler.addFilter(logs._ContextFilter())
    logger = logging.getLogger(f"test-logs-{id(handler)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler, read_end
    logger.removeHandler(handler)
    stream.close()
    os.close(read_end)


def read_lines(handler: logs.BufferedLineHandler, read_end: int) -> list[str]:
    handler.flush()
    try:
        return os.read(read_end, 65536).decode().splitlines()
    except BlockingIOError:  # nothing was written
        return []


def test_the_buffered_handler_writes_lines_from_many_threads(
    pipe_log: tuple[logging.Logger, logs.BufferedLineHandler, int],
) -> None:
    logger, handler, read_end = pipe_log
    threads = [threading.Thread(target=lambda n=n: [logger.info("t%d line %d", n, i) for i in range(50)])
               for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    lines = read_lines(handler, read_end)
    assert len(lines) == 200
    assert all(line.split(" INFO: ")[1].startswith("t") for line in lines)


def test_a_job_that_logs_runs_to_the_end(tmp_path: Path) -> None:
    """``workerkit run`` of a job that logs: the process logs, runs the job and exits 0 (on 3.13 too)."""
    (tmp_path / "loud_jobs.py").write_text(textwrap.dedent("""
        import logging
        from workerkit import job

        @job
        def hello(name):
            logging.getLogger(__name__).info("hello %s", name)
            print("ran", flush=True)
    """))
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from workerkit.cli import main; sys.exit(main())",
         "run", "loud_jobs.hello", "world"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ran" in result.stdout and " INFO: hello world" in result.stdout
    assert " INFO: done" in result.stdout


def test_a_payload_cannot_forge_a_log_line(pipe_log: tuple[logging.Logger, logs.BufferedLineHandler, int]) -> None:
    logger, handler, read_end = pipe_log
    with logs.job_context(FORGED_JID, FORGED_CLASS):
        logger.info("from the job")
    [line] = read_lines(handler, read_end)
    assert "class=app.Job\\x0a2026-01-01T00:00:00.000Z\\x20pid=1\\x20tid=1\\x20INFO:\\x20forged " in line
    assert "jid=abc\\x0d\\x1b[2Kdef\\x20ghi INFO: from the job" in line


def test_the_fast_job_lines_escape_too() -> None:
    read_end, write_end = os.pipe()
    with open(write_end, "wb") as stream:
        lines = logs._JobLines()
        lines.stream = stream
        lines.write("INFO", "start", FORGED_JID, FORGED_CLASS)
    with open(read_end, "rb") as out:
        [line] = out.read().decode().splitlines()
    assert line.endswith(
        " class=app.Job\\x0a2026-01-01T00:00:00.000Z\\x20pid=1\\x20tid=1\\x20INFO:\\x20forged"
        " jid=abc\\x0d\\x1b[2Kdef\\x20ghi INFO: start"
    )


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("3f2a9c", "3f2a9c"), ("app.jobs.Élan", "app.jobs.Élan"), ("a\\b", "a\\\\b"), ("\u2028\x85", "\\u2028\\x85")],
)
def test_escape_field(value: str, escaped: str) -> None:
    assert logs.escape_field(value) == escaped
