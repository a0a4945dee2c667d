"""Jobs for the lifecycle regression tests (loaded with ``-r lifecycle_jobs`` beside ``wk_jobs``).

They report through files as well as Redis, because some tests take Redis away while the job runs. Loading
this module also installs a server middleware that stores a datetime in every payload, as a tracing
middleware might: nothing in the worker may depend on the payload dict staying JSON.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workerkit import Job, config


def _stamp_payload(job: Job, payload: dict[str, Any], call_next: Callable[[], None]) -> None:
    payload["traced_at"] = datetime.datetime.now(datetime.UTC)  # not JSON: the heartbeat must not care
    call_next()


def _report(folder: str, name: str, text: str) -> None:
    """Write ``folder/name`` whole at once (a test that sees the file also sees its text)."""
    partial = Path(folder) / f".{name}.partial"
    partial.write_text(text)
    partial.replace(Path(folder) / name)


def _count_error(exc: BaseException, payload: dict[str, Any]) -> None:
    folder = payload["args"][0] if payload.get("args") else None
    if isinstance(folder, str) and Path(folder).is_dir():
        with (Path(folder) / "errors").open("a") as out:
            out.write(f"{type(exc).__name__}\n")


config.configure(server_middleware=[_stamp_payload], error_handlers=[_count_error])


def _wait_for_file(path: Path, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


class FailWhenTold(Job):
    """Writes ``started`` in ``folder``, waits for ``go`` to appear there, then fails (no retry delay)."""

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return 3600.0

    def perform(self, folder: str) -> None:
        _report(folder, "started", self.jid)
        _wait_for_file(Path(folder) / "go")
        raise RuntimeError("failing as told")


class SleepThenDone(Job):
    """Writes ``started`` in ``folder``, sleeps ``seconds``, then writes ``done``."""

    def perform(self, folder: str, seconds: float) -> None:
        _report(folder, "started", self.jid)
        time.sleep(seconds)
        _report(folder, "done", self.jid)


class BadBackoff(Job):
    """Fails; its backoff answers ``answer`` (None, NaN, negative) or raises."""

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        raise ZeroDivisionError("backoff bug")

    def perform(self, folder: str) -> None:
        raise RuntimeError("fails")


class NoneBackoff(BadBackoff):
    """Fails; its backoff returns None."""

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return None  # type: ignore[return-value]


class NanBackoff(BadBackoff):
    """Fails; its backoff returns NaN."""

    @staticmethod
    def backoff(count: int, exc: BaseException) -> float:
        return float("nan")
