"""Path convertors of the dashboard's routes."""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

QUEUE_NAME = "workerkit_queue"
"""The convertor of a queue name in a path: any text without ``/``, the empty name too (Starlette's ``str``
refuses to build a path for it, and another client may well push to a queue named ``""``)."""


class QueueNameConvertor(Convertor[str]):
    """A path segment that may be empty: ``/queues/`` is the queue named ``""``."""

    regex = "[^/]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        if "/" in value:
            raise ValueError(f"a queue name in a path cannot contain '/': {value!r}")
        return value


register_url_convertor(QUEUE_NAME, QueueNameConvertor())
