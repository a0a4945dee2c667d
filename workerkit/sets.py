"""The scheduled, retry and dead sets as resources, Sidekiq-style (its ``SortedSet`` and ``SortedEntry``):
page through a set, find entries, and retry, kill or delete them. Every move goes through the lifecycle
(``move_entry.lua``, whose ``ZREM`` decides), so an entry the poller or another click takes at the same
moment is never moved twice or lost."""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import cast

import redis

from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, stamped
from workerkit.payload import Payload, encode
from workerkit.views import JobView, Page, as_float

MAX_PER_PAGE = 500
CHUNK = 5000
"""Entries one ``ZSCAN`` call looks at when a set is too big to read at once (each a few ms of the server's
time)."""
SNAPSHOT_LIMIT = 200_000
"""Up to this many entries, a scan reads the whole set with one ``ZRANGE`` without scores: an atomic snapshot,
and the cheapest read Redis has (100,000 entries of 300 bytes: 17 ms of the server's time, ~45 ms to the
client, where ``ZSCAN`` spends ~150 ms in the server alone, formatting every score). Past it, ``ZSCAN`` in
chunks, so that no one call holds the server long."""
SORT_LIMIT = 10_000
"""Sorting by class or queue decodes every entry it sorts (~8 µs each). Up to this many entries (in the set,
or matching the filter), the whole of them is sorted; past it, each page is sorted within itself and the
pages keep the set's time order (Sidekiq's Web UI does not sort by class at all: it pages by ``ZRANGE``
with offsets)."""
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
        """A page of the set, sorted by time (``at``), ``class`` or ``queue``, filtered by ``text``.

        By time, a page is a ``ZRANGE`` with offsets. By class or queue, the whole set (or every match of
        ``text``) is sorted when it holds at most :data:`SORT_LIMIT` entries; past that, the page is the one
        at the same place in time order (the set's default direction), sorted within itself
        (``Page.sorted_within``), so that a request's work stays bounded whatever the size of the set."""
        per_page = max(1, min(per_page, MAX_PER_PAGE))
        page = max(1, page)
        window = slice((page - 1) * per_page, page * per_page)
        by_time = sort not in _SORT_KEYS
        sort_key = _SORT_KEYS.get(sort, _SORT_KEYS["class"])
        if not text:
            total = self.size()
            if by_time or total > SORT_LIMIT:
                rows = cast(Rows, self.conn.zrange(self.key, window.start, window.stop - 1, withscores=True,
                                                   desc=descending if by_time else self.which is JobSet.DEAD))
                jobs = [JobView.parse(raw, score) for raw, score in rows]
                if by_time:
                    return Page(jobs, page, per_page, total)
                jobs.sort(key=sort_key, reverse=descending)
                return Page(jobs, page, per_page, total, sorted_within=True)
        found = self._scan(text)
        if by_time:
            shown = (found[::-1] if descending else found)[window]
            return Page(self._scored(shown), page, per_page, len(found))
        if len(found) > SORT_LIMIT:
            shown = (found[::-1] if self.which is JobSet.DEAD else found)[window]
            return Page(sorted(self._scored(shown), key=sort_key, reverse=descending), page, per_page, len(found),
                        sorted_within=True)
        shown = sorted(found, key=lambda item: sort_key(item[1]), reverse=descending)[window]
        return Page(self._scored(shown), page, per_page, len(found))

    def matching(self, text: str = "") -> list[JobView]:
        """Every job of the set whose class, args, error or jid contains ``text`` (any case), in time order.

        The entries come from one snapshot of the set (``ZRANGE``; ``ZSCAN`` past :data:`SNAPSHOT_LIMIT`
        entries) and only those whose raw bytes can hold ``text`` are decoded, when ``text`` reads the same
        in raw JSON. A job's ``score`` is None when the snapshot did not read it (:meth:`page` reads the
        scores of the jobs it shows)."""
        return [job for _, job in self._scan(text)]

    def _scan(self, text: str) -> list[tuple[bytes, JobView]]:
        """The jobs matching ``text``, in time order, each with the exact bytes of its entry."""
        needle = text.lower()
        prefilter = _Prefilter(needle)
        admits = prefilter.admits
        found = []
        for raw, score in self._entries():
            if admits(raw):
                job = JobView.parse(raw, score)
                if job.matches(needle):
                    found.append((raw, job))
        return found

    def _entries(self) -> Iterator[tuple[bytes, float | None]]:
        """Every entry of the set, in time order, with its score when the read gave it."""
        if self.size() <= SNAPSHOT_LIMIT:
            for raw in cast(list[bytes], self.conn.zrange(self.key, 0, -1)):
                yield raw, None
            return
        rows = [cast(tuple[bytes, float], entry) for entry in self.conn.zscan_iter(self.key, count=CHUNK)]
        rows.sort(key=lambda row: (row[1], row[0]))  # ZRANGE's order: by score, then by the bytes
        yield from rows

    def _scored(self, found: list[tuple[bytes, JobView]]) -> list[JobView]:
        """The jobs of ``found`` with their scores (``ZMSCORE``); those that left the set meanwhile are dropped."""
        missing = [raw for raw, job in found if job.score is None]
        read = self.conn.zmscore(self.key, cast(list[str], missing)) if missing else []  # redis-py takes bytes too
        scores = dict(zip(missing, read, strict=True))
        jobs = []
        for raw, job in found:
            score = job.score if job.score is not None else scores[raw]
            if score is not None:
                jobs.append(job if job.score is not None else dataclasses.replace(job, score=score))
        return jobs

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


_SORT_KEYS: dict[str, Callable[[JobView], str]] = {  # besides "at", the time
    "class": lambda job: job.class_name,
    "queue": lambda job: job.queue,
}


_RAW_RUN = re.compile(r'[^\x00-\x20"\\+/<>&\x7f-\U0010ffff]+')
"""A run of characters that JSON writes as they are: printable ASCII but space, quote, backslash and ``+``."""
_LOWERS_TO_ASCII = b"ik"
"""What ``İ`` (U+0130) and the Kelvin sign (U+212A) lower-case to: the two characters beyond ASCII that do."""


class _Prefilter:
    """Which raw entries can hold a (lower-case) filter text, read from their bytes without decoding them.

    Each run of the text's characters that JSON writes as they are (:data:`_RAW_RUN`) lies inside one field
    of the searched text, whose raw JSON then holds it too, in any case: the fields are joined by spaces,
    and a producer may escape quotes, backslashes, control and non-ASCII characters or write an exponent's
    ``+``, so those are left out of the runs. A text with no run (empty, or all of it such characters) lets
    every entry through. A number a producer wrote in another form than Python's (``1.0e-05``) is found as
    written, and ASCII letters are taken to be written as themselves (no ``\\u0061``), as every JSON
    encoder does."""

    def __init__(self, needle: str) -> None:
        self.runs = [run.encode("ascii") for run in _RAW_RUN.findall(needle)]
        self.lowers = any(char in run for run in self.runs for char in _LOWERS_TO_ASCII)

    def admits(self, raw: bytes) -> bool:
        """Whether ``raw`` may hold the text (True for every entry when the text has no run)."""
        lowered = raw.lower()
        for run in self.runs:  # a loop, not all(): this runs for every entry of the set
            if run not in lowered:
                return self.lowers and (not raw.isascii() or b"\\u" in raw)  # İ or K, as is or escaped
        return True
