"""What the rest of workerkit needs from a job class: a protocol in a leaf module, so the runtime's modules
(config, registry, client, failure, runner) name job classes without importing ``workerkit.job``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

Backoff = Callable[[int, BaseException], float]
"""``backoff(retry_count, exception) -> seconds`` until the next attempt."""


class JobLike(Protocol):
    """A job (``workerkit.Job`` and its subclasses): its options, what the worker sets before ``perform``,
    and its hooks."""

    jid: str
    payload: dict[str, Any]

    queue: ClassVar[str]
    retry: ClassVar[bool | int]
    tags: ClassVar[list[str] | None]
    timeout: ClassVar[float | None]
    result_ttl: ClassVar[float | None]
    backoff: ClassVar[Backoff | None]

    def perform(self, *args: Any) -> Any:
        """The job's work."""
        ...

    @classmethod
    def job_name(cls) -> str:
        """The name payloads carry."""
        ...

    @classmethod
    def retries_exhausted(cls, payload: dict[str, Any], exc: BaseException | None) -> None:
        """Called once the job failed its last retry."""
        ...


JobClass = type[JobLike]
"""A job class."""
