"""``Job.delay_on_commit`` / ``perform_async_on_commit`` (and on ``@job`` functions and ``.set(...)``): the
arguments are checked at the call, the jid is known at once, and the job reaches Redis only when the
transaction commits (never when it rolls back)."""

from __future__ import annotations

import json

import pytest
import redis

from workerkit import job
from workerkit.keys import Keys

pytest.importorskip("django", minversion="5.2")

from django.db import transaction

QUEUE = Keys("djtest").queue("default")


@job
def notify(user_id: int, channel: str = "mail") -> None:
    """A function job pushed on commit."""


def queued(conn: redis.Redis) -> list[tuple[str, list[object]]]:
    return [(payload["jid"], payload["args"])
            for payload in (json.loads(raw) for raw in reversed(conn.lrange(QUEUE, 0, -1)))]


def test_every_form_pushes_after_the_commit_with_the_jid_it_returned(site: redis.Redis) -> None:
    from wkdj_app.jobs import RecordEntry

    with transaction.atomic():
        jids = [
            RecordEntry.delay_on_commit("class"),
            RecordEntry.set(queue="default").perform_async_on_commit(label="setter"),
            notify.delay_on_commit(7, channel="sms"),
            notify.perform_async_on_commit(8),
        ]
        assert queued(site) == []
    assert queued(site) == list(zip(jids, [["class"], ["setter"], [7, "sms"], [8]], strict=True))


def test_a_rollback_pushes_nothing_and_bad_arguments_fail_at_the_call(site: redis.Redis) -> None:
    from wkdj_app.jobs import RecordEntry

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        RecordEntry.delay_on_commit("rolled back")
        raise ZeroDivisionError
    with transaction.atomic():
        with pytest.raises(TypeError, match=r"^test_dj_delay_on_commit\.notify"):
            notify.delay_on_commit(1, 2, 3)  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="is a set"):
            RecordEntry.delay_on_commit({1})
    assert queued(site) == [] and site.dbsize() == 0
