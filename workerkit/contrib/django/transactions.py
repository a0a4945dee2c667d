"""Push a job only once the database transaction around the push has committed.

A job pushed inside a transaction may start before the transaction commits: it then reads the rows as
they were (a ``DoesNotExist`` for the row just created), or runs for a change that is rolled back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import transaction


def on_commit_push(push: Callable[..., object], *args: Any, using: str | None = None, **kwargs: Any) -> None:
    """Call ``push(*args, **kwargs)`` when the transaction of database ``using`` (default: the default
    database) commits; never when it rolls back; at once outside a transaction.

    ``push`` is any push: ``on_commit_push(Welcome.perform_async, user.pk)``,
    ``on_commit_push(send_mail.delay_for, 60, user.pk)``, ``on_commit_push(workerkit.push, "app.Job", [1])``.
    Nothing is pushed yet inside the transaction, so there is no jid to return, and a bad argument raises
    when the transaction commits (in ``transaction.atomic``'s exit), not here.
    """
    transaction.on_commit(functools.partial(push, *args, **kwargs), using=using)
