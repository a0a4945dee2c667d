"""Each job's own last log lines, kept with its payload when it fails (``error_log``), so its page in the
retries and dead sets answers "what did it do before it failed?".

:class:`JobLogCapture`, a logging handler on the root logger, keeps a reference to each record logged
while a job runs (its own ``logging`` calls and workerkit's, at the levels the logging configuration
lets through) in a ring of the last :data:`MAX_LINES` records of the run, held in a context variable:
per thread, and per task for ``async def`` jobs, each run of a job its own. Nothing is formatted and
nothing happens at the end of a job that succeeds; only a failure formats the lines
(:func:`lines_of_run`), each cut to :data:`MAX_LINE` characters. ``workerkit worker --no-job-logs``
installs no handler.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from workerkit.logs import current_context
from workerkit.payload import readable

MAX_LINES = 20
"""The most lines kept per job (the last ones)."""
MAX_LINE = 500
"""The most characters kept of one line."""


@dataclass(slots=True)
class _Ring:
    run: tuple[str | None, str | None]
    """The job context of the run it belongs to (compared by identity: each run sets a new one)."""
    records: deque[logging.LogRecord] = field(default_factory=lambda: deque(maxlen=MAX_LINES))


_ring: contextvars.ContextVar[_Ring | None] = contextvars.ContextVar("workerkit_job_log", default=None)


class JobLogCapture(logging.Handler):
    """Keeps the records logged during each job (see the module)."""

    def handle(self, record: logging.LogRecord) -> bool:
        run = current_context()
        if run[0]:
            ring = _ring.get()
            if ring is None or ring.run is not run:
                ring = _Ring(run)
                _ring.set(ring)
            ring.records.append(record)
        return True


def format_line(record: logging.LogRecord) -> str:
    """``12:00:01.042 WARNING app.mail: retrying the SMTP server`` (time in UTC), at most :data:`MAX_LINE`
    characters, lone surrogates and the like replaced."""
    try:
        message = record.getMessage()
    except Exception as exc:  # a bad format string: keep what was logged
        message = f"{record.msg!r} {record.args!r} ({type(exc).__name__})"
    if record.exc_info and record.exc_info[1] is not None:
        message += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
    stamp = time.strftime("%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}"
    return readable(f"{stamp} {record.levelname} {record.name}: {message}"[:MAX_LINE])


def lines_of_run() -> list[str]:
    """The last lines the job running in this thread or task logged in this run, formatted; [] when none."""
    ring = _ring.get()
    if ring is None or ring.run is not current_context():
        return []
    return [format_line(record) for record in ring.records]


def install() -> JobLogCapture:
    """Add the capture to the root logger (once) and return it."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, JobLogCapture):
            return handler
    capture = JobLogCapture()
    root.addHandler(capture)
    return capture
