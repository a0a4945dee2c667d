"""``on_commit_push``: the job reaches Redis once the transaction commits, never when it rolls back."""

from __future__ import annotations

import json

import pytest
import redis

from workerkit.keys import Keys

pytest.importorskip("django", minversion="5.2")

from django.db import transaction

from workerkit.contrib.django.transactions import on_commit_push

QUEUE = Keys("djtest").queue("default")


class Rollback(Exception):
    """Raised to leave a transaction.atomic block by rolling it back."""


def pushed(conn: redis.Redis) -> list[str]:
    """The labels of the jobs in the queue, oldest first."""
    return [json.loads(raw)["args"][0] for raw in reversed(conn.lrange(QUEUE, 0, -1))]


def test_a_push_waits_for_the_commit(site: redis.Redis) -> None:
    from wkdj_app.jobs import RecordEntry
    from wkdj_app.models import Entry

    with transaction.atomic():
        Entry.objects.create(label="row", pid=0, thread=0, connection="")
        on_commit_push(RecordEntry.perform_async, "committed")
        on_commit_push(RecordEntry.set(queue="default").perform_in, 3600, "in an hour")
        assert pushed(site) == []
        assert site.zcard(Keys("djtest").schedule) == 0
    assert pushed(site) == ["committed"]
    assert site.zcard(Keys("djtest").schedule) == 1


def test_a_rolled_back_transaction_pushes_nothing(site: redis.Redis) -> None:
    from wkdj_app.jobs import RecordEntry

    with pytest.raises(Rollback), transaction.atomic():
        on_commit_push(RecordEntry.perform_async, "rolled back")
        raise Rollback
    with transaction.atomic():
        with pytest.raises(Rollback), transaction.atomic():  # a savepoint rolled back, its outer block kept
            on_commit_push(RecordEntry.perform_async, "in the savepoint")
            raise Rollback
        on_commit_push(RecordEntry.perform_async, "in the outer block")
    assert pushed(site) == ["in the outer block"]


def test_outside_a_transaction_the_push_is_immediate(site: redis.Redis) -> None:
    import workerkit

    on_commit_push(workerkit.push, "wkdj_app.jobs.RecordEntry", ["by name"], queue="default")
    assert pushed(site) == ["by name"]


def test_the_push_follows_the_transaction_of_the_database_named(site: redis.Redis) -> None:
    from wkdj_app.jobs import RecordEntry

    with transaction.atomic(using="other"):
        on_commit_push(RecordEntry.perform_async, "default is not in a transaction")
        on_commit_push(RecordEntry.perform_async, "other commits", using="other")
        assert pushed(site) == ["default is not in a transaction"]
    assert pushed(site) == ["default is not in a transaction", "other commits"]


def test_with_testing_fake_the_pushes_are_collected_on_commit(site: redis.Redis) -> None:
    from wkdj_app.jobs import RecordEntry

    from workerkit import testing

    with testing.fake() as jobs:
        with transaction.atomic():
            on_commit_push(RecordEntry.perform_async, "faked")
            assert jobs.jobs_for(RecordEntry) == []
        assert [job["args"] for job in jobs.jobs_for(RecordEntry)] == [["faked"]]
    assert pushed(site) == []
