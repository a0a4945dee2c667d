"""The scheduled, retry and dead sets as resources, Sidekiq-style (its ``SortedSet`` and ``SortedEntry``):
page through a set, find entries, and retry, kill or delete them. Every move goes through the lifecycle
(``move_entry.lua``, whose ``ZREM`` decides), so an entry the poller or another click takes at the same
moment is never moved twice or lost."""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Iterable, Iterator
from typing import cast

import redis

from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, stamped
from workerkit.payload import Payload, encode
from workerkit.views import JobView, Page, as_float

MAX_PER_PAGE = 500
CHUNK = 500
"""Entries read per round trip when scanning a list or a set."""
MATCH_CHUNK = 5000
"""Entries one ``ZSCAN MATCH`` call looks at: Redis skips most of them, so fewer, larger calls (each a few ms
of the server's time)."""
Rows = list[tuple[bytes, float]]


class JobSet(enum.Enum):
    """The three sorted sets of jobs, by the name the dashboard's URLs use."""

    SCHEDULED = "scheduled"
    RETRIES = "retries"
    DEAD = "dead"

    def key(self, keys: Keys) -> str:
        """The Redis key of this set."""
        return {JobSet.SCHEDULED: keys.schedule, JobSet.RETRIES: keys.retry, JobSet.DEAD: keys.dead}[self]


class NotFound(LookupError):
    """The job, queue, process or periodic job named is not there (any more)."""


def parse_key(key: str) -> tuple[float, str]:
    """Split a ``<score>-<jid>`` job key; raise NotFound when it is malformed."""
    score_text, _, jid = key.rpartition("-")
    score = as_float(score_text, math.nan)
    if not jid or math.isnan(score):
        raise NotFound(f"no job {key!r}")
    return score, jid


class SortedJobSet:
    """One of the three sorted sets of jobs in one Redis under one namespace."""

    def __init__(self, conn: redis.Redis, keys: Keys, which: JobSet, lifecycle: Lifecycle) -> None:
        self.conn = conn
        self.keys = keys
        self.which = which
        self.key = which.key(keys)
        self.lifecycle = lifecycle

    def size(self) -> int:
        """How many entries the set holds."""
        return int(self.conn.zcard(self.key))

    def page(
        self,
        page: int = 1,
        per_page: int = 25,
        *,
        sort: str = "at",
        descending: bool = False,
        text: str = "",
    ) -> Page:
        """A page of the set, sorted by time (``at``), ``class`` or ``queue``, filtered by ``text``."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        page = max(1, page)
        start = (page - 1) * per_page
        if sort == "at" and not text:
            key = self.key
            total = self.size()
            rows = cast(Rows, self.conn.zrange(key, start, start + per_page - 1, desc=descending, withscores=True))
            return Page([JobView.parse(raw, score) for raw, score in rows], page, per_page, total)
        jobs = list(self.matching(text))
        sort_key = {"class": lambda job: job.class_name, "queue": lambda job: job.queue}.get(
            sort, lambda job: job.score or 0.0
        )
        jobs.sort(key=sort_key, reverse=descending)
        return Page(jobs[start : start + per_page], page, per_page, len(jobs))

    def matching(self, text: str = "") -> Iterator[JobView]:
        """Every job of the set whose class, args, error or jid contains ``text`` (any case). Redis itself skips
        the entries whose bytes cannot hold it (``ZSCAN MATCH``) when ``text`` reads the same in raw JSON."""
        needle = text.lower()
        glob = _glob(needle)
        for entry in self.conn.zscan_iter(self.key, match=glob, count=CHUNK if glob is None else MATCH_CHUNK):
            raw, score = cast(tuple[bytes, float], entry)
            job = JobView.parse(raw, score)
            if job.matches(needle):
                yield job

    def find(self, key: str) -> JobView:
        """The job with key ``<score>-<jid>`` in the set; raise NotFound when it is gone."""
        score, jid = parse_key(key)
        rows = cast(Rows, self.conn.zrange(self.key, score, score, byscore=True, withscores=True))
        for raw, row_score in rows:
            job = JobView.parse(raw, row_score)
            if job.jid == jid:
                return job
        raise NotFound(f"no job {key!r} in {self.which.value}")

    def find_all(self, keys: Iterable[str]) -> list[JobView]:
        """The jobs with these keys that are still in the set (the others are skipped)."""
        found = []
        for key in keys:
            try:
                found.append(self.find(key))
            except NotFound:
                continue
        return found

    def retry(self, jobs: Iterable[JobView]) -> int:
        """Move jobs from the set to their queues now (scheduled: run now; retries and dead: retry now)."""
        moved = 0
        now = time.time()
        for job in jobs:
            original = job.quarantined_bytes()
            if original is not None:  # an entry that was not a job: its exact bytes go back, to be tried again
                moved += int(self.lifecycle.move_entry(self.key, job.raw, original, "queue", job.queue))
                continue
            payload = stamped(dict(job.payload), now)
            if self.which is not JobSet.SCHEDULED and isinstance(payload.get("retry_count"), int):
                payload["retry_count"] -= 1  # the next failure counts this attempt again
            moved += self._move_one(job, payload, "queue", job.queue)
        return moved

    def kill(self, jobs: Iterable[JobView]) -> int:
        """Move jobs from the scheduled or retry set to the dead set."""
        now = time.time()
        return sum(self._move_one(job, dict(job.payload), "dead", now) for job in jobs)

    def _move_one(self, job: JobView, payload: Payload, to: str, where: str | float) -> int:
        new_raw = encode(payload) if job.readable else job.raw
        return int(self.lifecycle.move_entry(self.key, job.raw, new_raw, to, where))

    def delete(self, jobs: Iterable[JobView]) -> int:
        """Delete jobs from the set; returns how many were still there."""
        return self.lifecycle.delete_entries(self.key, [job.raw for job in jobs])

    def retry_all(self, text: str = "") -> int:
        """Run now / retry now every job of the set that matches ``text``."""
        return self.retry(list(self.matching(text)))

    def kill_all(self, text: str = "") -> int:
        """Send to the dead set every job of the set that matches ``text``."""
        return self.kill(list(self.matching(text)))

    def delete_all(self, text: str = "") -> int:
        """Delete every job of the set that matches ``text`` (all of them when ``text`` is empty)."""
        if not text:
            pipe = self.conn.pipeline(transaction=True)
            pipe.zcard(self.key)
            pipe.unlink(self.key)
            size: int = pipe.execute()[0]
            return size
        return self.delete(list(self.matching(text)))


_GLOB_SPECIAL = frozenset("*?[]")


def _glob(needle: str) -> str | None:
    """A case-insensitive Redis glob that finds ``needle`` in a payload's raw JSON, or None (scan every entry)
    when JSON may spell it otherwise: empty, or holding whitespace (the fields are searched joined by
    spaces), quotes, backslashes, control or non-ASCII characters (a producer may escape them) or ``+``
    (an exponent). A number a producer wrote in another form than Python's (``1.0e-05``) is found as written."""
    if not needle or any(not " " < char < "\x7f" or char in '"\\+' for char in needle):
        return None
    parts = [f"[{char}{char.upper()}]" if char.isalpha() else "\\" + char if char in _GLOB_SPECIAL else char
             for char in needle]
    return "*" + "".join(parts) + "*"
