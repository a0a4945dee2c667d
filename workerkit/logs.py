"""Logging: Sidekiq-style lines with the running job's context (jid, class) on every line, text or JSON.

``2026-11-23T02:50:01.123Z pid=4242 tid=7f3a class=app.jobs.Cleanup jid=3f... INFO: done: 0.012 sec``
Lines a job logs itself carry the same context, because it is kept per thread and added by a filter.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

LogFormat = Literal["text", "json"]

logger = logging.getLogger("workerkit")
_context = threading.local()


@contextmanager
def job_context(jid: str, class_name: str) -> Iterator[None]:
    """Tag every log line of this thread with ``jid`` and ``class`` while the block runs."""
    _context.jid, _context.job_class = jid, class_name
    try:
        yield
    finally:
        _context.jid = _context.job_class = None


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.jid = getattr(_context, "jid", None)
        record.job_class = getattr(_context, "job_class", None)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """Sidekiq's line format: time, pid, tid, class and jid when running a job, level, message."""

    def format(self, record: logging.LogRecord) -> str:
        context = f" class={record.job_class} jid={record.jid}" if getattr(record, "jid", None) else ""
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
        if getattr(record, "jid", None):
            entry["ctx"] = {"class": record.job_class, "jid": record.jid}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(log_format: LogFormat = "text", level: int = logging.INFO) -> None:
    """Send workerkit's and the jobs' log lines to stdout in ``log_format`` (root logger, so jobs' loggers too)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
