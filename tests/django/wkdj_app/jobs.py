"""The test project's jobs (``settings.WORKERKIT['JOB_MODULES']``) and a server middleware.

Every database connection this process opens gets a serial number (``connection_created``), so a row says
whether its job ran on a connection of its own or on one an earlier job left open.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.backends.signals import connection_created

from wkdj_app.models import Entry
from workerkit import Job

_serials = itertools.count(1)


def _number_connection(sender: object, connection: Any, **kwargs: Any) -> None:
    connection.workerkit_serial = f"{os.getpid()}-{next(_serials)}"


connection_created.connect(_number_connection)


def stamp(job: Job, payload: dict[str, Any], call_next: Callable[[], None]) -> None:
    """``settings.WORKERKIT['SERVER_MIDDLEWARE']``: marks the payload, which the job copies into its row."""
    payload["stamp"] = "stamped by the middleware"
    call_next()


class RecordEntry(Job):
    """Insert a row describing this run."""

    def perform(self, label: str) -> None:
        connection.ensure_connection()
        Entry.objects.create(label=label, stamp=self.payload.get("stamp", ""), pid=os.getpid(),
                             thread=threading.get_ident(), connection=connection.workerkit_serial)
