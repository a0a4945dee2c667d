"""Jobs the browser tests' real worker runs (loaded with ``-r browser_jobs``)."""

from __future__ import annotations

from workerkit import Job

LATER = 3600.0


def much_later(count: int, exc: BaseException) -> float:
    """Keep failed jobs in the retry set until a click retries them."""
    return LATER


class Quick(Job):
    def perform(self, number: int) -> None:
        pass


class FailsOnce(Job):
    """Fails on its first run; succeeds once retried."""

    backoff = staticmethod(much_later)

    def perform(self) -> None:
        if "retry_count" not in self.payload:
            raise RuntimeError("first attempt fails")


class Hostile(Job):
    """Always fails with markup in its error message."""

    backoff = staticmethod(much_later)

    def perform(self, text: str) -> None:
        raise ValueError("<img src=x onerror=\"document.title='pwned'\">" + text)
