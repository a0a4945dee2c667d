"""Logging: Sidekiq-style lines with the running job's context (jid, class) on every line, text or JSON.

``2026-11-23T02:50:01.123Z pid=4242 tid=7f3a class=app.jobs.Cleanup jid=3f... INFO: done: 0.012 sec``
Lines a job logs itself carry the same context, because it is kept in a context variable (per thread, and per
task for async jobs) and added by a filter.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, Literal

LogFormat = Literal["text", "json"]
json_fields: list[Callable[[], dict[str, str]]] = []
"""Functions whose fields every JSON line formatted from a log record carries (``workerkit.otel`` adds the
trace and span ids)."""

logger = logging.getLogger("workerkit")
_context: contextvars.ContextVar[tuple[str | None, str | None]] = contextvars.ContextVar(
    "workerkit_job_context", default=(None, None))


def set_job_context(jid: str | None, class_name: str | None) -> None:
    """Tag every log line of this thread (or asyncio task) with ``jid`` and ``class`` (None, None: clear them)."""
    _context.set((jid, class_name))


def current_context() -> tuple[str | None, str | None]:
    """The (jid, class) this thread (or asyncio task) runs, as last set: a new object each time it is set,
    so each run of a job has its own."""
    return _context.get()


@contextmanager
def job_context(jid: str, class_name: str) -> Iterator[None]:
    """Tag every log line of this thread (or asyncio task) with ``jid`` and ``class`` while the block runs."""
    set_job_context(jid, class_name)
    try:
        yield
    finally:
        set_job_context(None, None)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.jid, record.job_class = _context.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(record.msecs):03d}Z"


_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x21), 0x7F)} | {ord("\\"): "\\\\"}


def _escape_char(char: str) -> str:
    escaped = _ESCAPES.get(ord(char))
    if escaped is not None:
        return escaped
    return char if char.isprintable() else char.encode("unicode_escape").decode("ascii")


def escape_field(value: object) -> str:
    """``value`` as one token of a text log line: backslash, space and unprintable characters escaped.

    A job's ``jid`` and ``class`` come from its payload, so whoever pushes a job chooses them; escaped, they
    can neither end the line (and forge the next one) nor add ``key=value`` fields to it.
    """
    text = str(value)
    if text.isprintable() and " " not in text and "\\" not in text:
        return text
    return "".join(map(_escape_char, text))


class TextFormatter(logging.Formatter):
    """Sidekiq's line format: time, pid, tid, class and jid when running a job, level, message."""

    def format(self, record: logging.LogRecord) -> str:
        jid = getattr(record, "jid", None)
        context = f" class={escape_field(getattr(record, 'job_class', None))} jid={escape_field(jid)}" if jid else ""
        line = f"{_timestamp(record)} pid={record.process} tid={record.thread:x}{context} {record.levelname}: "
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, pid, tid, lvl, msg, and ctx {class, jid} when running a job."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "pid": record.process,
            "tid": f"{record.thread:x}",
            "lvl": record.levelname,
            "msg": record.getMessage(),
        }
        jid = getattr(record, "jid", None)
        if jid:
            entry["ctx"] = {"class": getattr(record, "job_class", None), "jid": jid}
        for fields in json_fields:
            entry.update(fields())
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class BufferedLineHandler(logging.Handler):
    """Writes each line with one call to a thread-safe binary buffer, flushed every ``interval`` seconds.

    No Python-level lock per line (the buffer's own C lock keeps lines whole), so job threads do not
    queue behind each other to log, and no system call per line. Warnings and errors flush at once.
    """

    def __init__(self, stream: BinaryIO, interval: float = 0.05) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        threading.Thread(target=self._flush_forever, name="log-flusher", daemon=True).start()

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and emit ``record`` without taking the handler's lock (the buffer's lock keeps lines whole).

        Python 3.13's ``Handler.handle`` holds ``self.lock`` around ``emit``; this handler needs no lock.
        """
        verdict: object = self.filter(record)
        if verdict:
            self.emit(verdict if isinstance(verdict, logging.LogRecord) else record)
        return bool(verdict)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write((self.format(record) + "\n").encode("utf-8", "replace"))
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


class _JobLines:
    """The fast path for the per-job ``start`` / ``done`` lines: formatted directly, no LogRecord."""

    def __init__(self) -> None:
        self.stream: BinaryIO | None = None
        self.json = False
        self.pid = os.getpid()
        self._second = -1
        self._stamp = ""

    def write(self, level: str, message: str, jid: str, class_name: str) -> None:
        """Write one job line (only when :func:`setup` installed a handler and INFO is enabled)."""
        stream = self.stream
        if stream is None:
            logger.log(logging.getLevelName(level), message)
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._stamp}.{int((now - second) * 1000):03d}Z"
        tid = f"{threading.get_ident():x}"
        if self.json:
            entry = {"ts": stamp, "pid": self.pid, "tid": tid, "lvl": level, "msg": message,
                     "ctx": {"class": class_name, "jid": jid}}
            line = json.dumps(entry, ensure_ascii=False)
        else:
            context = f"class={escape_field(class_name)} jid={escape_field(jid)}"
            line = f"{stamp} pid={self.pid} tid={tid} {context} {level}: {message}"
        stream.write((line + "\n").encode("utf-8", "replace"))


job_lines = _JobLines()


def job_info(message: str, jid: str, class_name: str) -> None:
    """Log an INFO line about the running job (``start``, ``done: 0.012 sec``) as cheaply as possible."""
    if logger.isEnabledFor(logging.INFO):
        job_lines.write("INFO", message, jid, class_name)


def setup(log_format: LogFormat = "text", level: int = logging.INFO) -> None:
    """Send workerkit's and the jobs' log lines to stdout in ``log_format`` (root logger, so jobs' loggers too).

    ``WORKERKIT_LOG_LEVEL`` (debug, info, warning, error) overrides the level.
    """
    handler = BufferedLineHandler(sys.stdout.buffer)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    job_lines.stream, job_lines.json = handler.stream, log_format == "json"
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("WORKERKIT_LOG_LEVEL", "").upper() or level)
