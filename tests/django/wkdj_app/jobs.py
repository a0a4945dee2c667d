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

from asgiref.sync import sync_to_async
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


def _this_connection() -> tuple[int, str]:
    """This thread's id and the serial of its database connection (opened if need be)."""
    connection.ensure_connection()
    return threading.get_ident(), connection.workerkit_serial


class RecordEntryAsync(Job):
    """An ``async def`` job inserting its row with the async ORM (``acreate``, in asgiref's thread for
    thread-sensitive code), then naming the thread and connection that query ran on."""

    async def perform(self, label: str) -> None:
        entry = await Entry.objects.acreate(label=label, stamp=self.payload.get("stamp", ""), pid=os.getpid(),
                                            thread=0, connection="")
        entry.thread, entry.connection = await sync_to_async(_this_connection)()
        await entry.asave(update_fields=["thread", "connection"])
