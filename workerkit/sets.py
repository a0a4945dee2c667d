"""The scheduled, retry and dead sets as resources, Sidekiq-style (its ``SortedSet`` and ``SortedEntry``):
page through a set, find entries, and retry, kill or delete them. Every move goes through the lifecycle
(``move_entry.lua``, whose ``ZREM`` decides), so an entry the poller or another click takes at the same
moment is never moved twice or lost."""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import cast

import redis

from workerkit.keys import Keys
from workerkit.lifecycle import Lifecycle, Move, stamped
from workerkit.payload import Payload, PayloadError, decode, encode
from workerkit.views import JobView, Page, as_float, as_text, payload_matches

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
DECODE_BUDGET = 5_000
"""Entries a page with a filter decodes at most (4 to 6 µs each: ~25 ms) once it has found its own matches:
the count of matches stops there (``Page.counted`` is False, the page says "at least"). A filter that many
entries can match (every entry holds ``boom``) would otherwise decode the whole set for each page; one that
matches a tenth of 100,000 entries reads half the set before it stops (at 10,000 such a page took 190 to
201 ms). Bulk actions always look at every entry."""
BULK_STEP = 1_000
"""Entries one step of a bulk action looks at (matches, then moves or deletes in one script call: about 20 ms
for 1,000 matches), so that it can stop between steps (see :meth:`SortedJobSet.act_on_matching`)."""
BULK_ACTIONS = ("run", "kill", "delete")
Rows = list[tuple[bytes, float]]
Entries = list[tuple[bytes, float | None]]
"""Entries of a set as read, each with its score when the read gave it."""


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
    """Split a ``<score>-<name>`` job key (``JobView.key``); raise NotFound when it is malformed. The score is
    the shortest prefix before a ``-`` that reads as a number (a score may hold one, ``1e-05``; a jid too,
    a UUID)."""
    for at in (index for index, char in enumerate(key) if char == "-"):
        score = as_float(key[:at], math.nan)
        if not math.isnan(score) and key[at + 1:]:
            return score, key[at + 1:]
    raise NotFound(f"no job {key!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """How far a bulk action has got, after one of its steps: ``looked_at`` of the ``total`` entries of its
    snapshot, of which it ``acted`` on this many (the others did not match, or had left the set)."""

    looked_at: int
    total: int
    acted: int


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
        (``Page.sorted_within``), so that a request's work stays bounded whatever the size of the set.

        With ``text``, the entries are looked at in the order shown (by time, or the set's time order) until
        the page's matches are found and :data:`DECODE_BUDGET` entries decoded: ``Page.total`` counts every
        match when the whole set was looked at, else those found so far (``Page.counted`` is False, and a
        sort by class or queue is within the page)."""
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
        in_reverse = descending if by_time else self.which is JobSet.DEAD
        found, counted = self._find(text, in_reverse, window.stop if text else math.inf)  # no text: all, to sort
        if not by_time and counted and len(found) <= SORT_LIMIT:
            in_time_order = found[::-1] if in_reverse else found
            ordered = sorted(_parsed(in_time_order), key=lambda item: sort_key(item[1]), reverse=descending)
            return Page(self._scored(ordered[window]), page, per_page, len(found))
        shown = self._scored(_parsed(found[window]))
        if by_time:
            return Page(shown, page, per_page, len(found), counted=counted)
        return Page(sorted(shown, key=sort_key, reverse=descending), page, per_page, len(found), sorted_within=True,
                    counted=counted)

    def _find(self, text: str, in_reverse: bool, wanted: float) -> tuple[Entries, bool]:
        """The entries matching ``text``, in time order or its reverse: all of them, and True; or, once
        ``wanted`` are found and :data:`DECODE_BUDGET` entries decoded before the end, those found, and False."""
        matches = _Matcher(text.lower())
        found = []
        for raw, score in self._entries(in_reverse):
            if matches(raw):
                found.append((raw, score))
            if matches.decoded >= DECODE_BUDGET and len(found) >= wanted:
                return found, False
        return found, True

    def matching(self, text: str = "") -> list[JobView]:
        """Every job of the set whose class, args, error or jid contains ``text`` (any case), in time order.

        The entries come from one snapshot of the set (``ZRANGE``; ``ZSCAN`` past :data:`SNAPSHOT_LIMIT`
        entries) and only those whose raw bytes can hold ``text`` are decoded (:class:`_Matcher`). A job's
        ``score`` is None when the snapshot did not read it (:meth:`page` reads the scores of the jobs it
        shows). Each match is decoded once, by the matcher (a bulk action's moves take its payload)."""
        matches = _Matcher(text.lower())
        return [matches.job(raw, score) for raw, score in self._entries() if matches(raw)]

    def _entries(self, in_reverse: bool = False) -> Iterator[tuple[bytes, float | None]]:
        """Every entry of the set, in time order (or its reverse), with its score when the read gave it."""
        if self.size() <= SNAPSHOT_LIMIT:
            for raw in cast(list[bytes], self.conn.zrange(self.key, 0, -1, desc=in_reverse)):
                yield raw, None
            return
        rows = [cast(tuple[bytes, float], entry) for entry in self.conn.zscan_iter(self.key, count=CHUNK)]
        rows.sort(key=lambda row: (row[1], row[0]), reverse=in_reverse)  # ZRANGE's order: score, then bytes
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
        """The job with key ``<score>-<name>`` in the set (``JobView.key``); raise NotFound when it is gone."""
        score, name = parse_key(key)
        rows = cast(Rows, self.conn.zrange(self.key, score, score, byscore=True, withscores=True))
        for raw, row_score in rows:
            job = JobView.parse(raw, row_score)
            if job.name == name:
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
        now = time.time()
        return self.lifecycle.move_entries(self.key, (self._retry_move(job, now) for job in jobs))

    def _retry_move(self, job: JobView, now: float) -> Move:
        original = job.quarantined_bytes()
        if original is not None:  # an entry that was not a job: its exact bytes go back, to be tried again
            return job.member, original, "queue", job.queue
        payload = stamped(dict(job.payload), now)
        if self.which is not JobSet.SCHEDULED and isinstance(payload.get("retry_count"), int):
            payload["retry_count"] -= 1  # the next failure counts this attempt again
        return job.member, _rewritten(job, payload), "queue", job.queue

    def kill(self, jobs: Iterable[JobView]) -> int:
        """Move jobs from the scheduled or retry set to the dead set."""
        now = time.time()
        return self.lifecycle.move_entries(self.key, ((job.member, _rewritten(job, dict(job.payload)), "dead", now)
                                                      for job in jobs))

    def delete(self, jobs: Iterable[JobView]) -> int:
        """Delete jobs from the set; returns how many were still there."""
        return self.lifecycle.delete_entries(self.key, [job.member for job in jobs])

    def retry_all(self, text: str = "") -> int:
        """Run now / retry now every job of the set that matches ``text``."""
        return _drained(self.act_on_matching("run", text))

    def kill_all(self, text: str = "") -> int:
        """Send to the dead set every job of the set that matches ``text``."""
        return _drained(self.act_on_matching("kill", text))

    def delete_all(self, text: str = "") -> int:
        """Delete every job of the set that matches ``text`` (all of them when ``text`` is empty)."""
        return _drained(self.act_on_matching("delete", text))

    def act_on_matching(self, action: str, text: str = "") -> Iterator[Step]:
        """Run (``run``), kill or delete every job of the set that matches ``text``, :data:`BULK_STEP` entries
        of one snapshot at a time; yield how far it got after each step (at least once).

        Whoever drives it may stop between steps and go on later, from another thread too: each step is
        whole (one script call, each move decided by its own ``ZREM``), and the entries not reached yet stay
        in the set untouched. A delete of every entry (no ``text``) is one step: ``UNLINK``."""
        if action not in BULK_ACTIONS:
            raise ValueError(f"unknown bulk action {action!r}: one of {', '.join(BULK_ACTIONS)}")
        if action == "delete" and not text:
            pipe = self.conn.pipeline(transaction=True)
            pipe.zcard(self.key)
            pipe.unlink(self.key)
            size: int = pipe.execute()[0]
            yield Step(size, size, size)
            return
        entries = list(self._entries())
        matches = _Matcher(text.lower())
        acted = 0
        for start in range(0, len(entries), BULK_STEP):
            chunk = entries[start:start + BULK_STEP]
            if action == "delete":
                acted += self.lifecycle.delete_entries(self.key, [raw for raw, _ in chunk if matches(raw)])
            else:
                jobs = [matches.job(raw, score) for raw, score in chunk if matches(raw)]
                acted += self.retry(jobs) if action == "run" else self.kill(jobs)
            yield Step(start + len(chunk), len(entries), acted)
        if not entries:
            yield Step(0, 0, 0)


def _drained(steps: Iterator[Step]) -> int:
    """How many entries a bulk action acted on, once all its steps are done."""
    return collections.deque(steps, maxlen=1)[0].acted


_SORT_KEYS: dict[str, Callable[[JobView], str]] = {  # besides "at", the time
    "class": lambda job: job.class_name,
    "queue": lambda job: job.queue,
}


def _parsed(entries: Entries) -> list[tuple[bytes, JobView]]:
    """The entries read as jobs, each with its exact bytes."""
    return [(raw, JobView.parse(raw, score)) for raw, score in entries]


def _rewritten(job: JobView, payload: Payload) -> str | bytes:
    """What a move writes for ``job``: ``payload`` encoded, or the entry as it was when it is not a job."""
    return encode(payload) if job.readable else job.member


_RAW_RUN = re.compile(r'[^\x00-\x20"\\+/<>&\x7f-\U0010ffff]+')
"""A run of characters that JSON writes as they are: printable ASCII but space, quote, backslash and ``+``."""
_LOWERS_TO_ASCII = b"ik"
"""What ``İ`` (U+0130) and the Kelvin sign (U+212A) lower-case to: the two characters beyond ASCII that do."""
_BACKSLASH, _DEL = ord("\\"), 0x7F
_STRUCTURE = frozenset(b",:[]{}'")
"""Characters of a run that the separators and brackets of the arguments (``[1, 2]`` for ``[1,2]``, the
order of a JSON object's keys) or Python's ``str()`` of a searched field that is not a string (``['a']``)
bring next to other text in a job's searched text when its raw bytes do not hold them so."""
_NUMBER = frozenset(b"0123456789.e-")
"""The characters of a number's text: a number in the searched text is Python's (``1e-05`` for
``1.0E-5``, ``0`` for ``-0``) and sits between separators, brackets or spaces."""
_NOT_TEXT_FIELD = re.compile(rb'"(?:class|error_class|error_message|jid)"\s*:\s*[^"\s]')
"""A searched field whose value is not a JSON string: the searched text holds its ``str()`` (``None``,
``100000.0``, ``['a']``, ``'\\x7f'``), not its JSON."""
_FLAT_ARGS = re.compile(rb'"args"\s*:\s*\[(?:(?:-?[1-9][0-9]*|0|"[^"]*"|true|false|null)(?:, ?(?!\])|(?=\])))*\]')
"""Arguments written as the searched text writes them, but for the space after each comma: integers,
strings (of an entry without a backslash), ``true``, ``false`` and ``null``, nothing nested."""


class _Run(enum.IntEnum):
    """What a run of a filter text can be made of, in a job's searched text, besides what its bytes hold
    (in increasing order of what it takes to rule out)."""

    PLAIN = 0
    """Only the str() of a field that is not a string, for an entry with ``DEL`` or beyond ASCII (its
    escapes: ``'\\x7f'``)."""
    NONE = 1
    """Also ``None``, the str() of a field that is null (the run lies in ``none``)."""
    DELICATE = 2
    """Also numbers and separators (the run holds one of :data:`_STRUCTURE` or is all :data:`_NUMBER`)."""

    @classmethod
    def of(cls, run: bytes) -> _Run:
        if not _STRUCTURE.isdisjoint(run) or _NUMBER.issuperset(run):
            return cls.DELICATE
        return cls.NONE if run in b"none" else cls.PLAIN


class _Matcher:
    """Which raw entries of a set match a (lower-case) filter text: exactly those for which
    ``JobView.parse(raw).matches(needle)`` holds, decoding only the entries that can hold the text.

    Each run of the text's characters that JSON writes as they are (:data:`_RAW_RUN`) lies inside one field
    of a job's searched text, joined by spaces (``views.payload_matches``). An entry whose lower-cased bytes
    lack a run cannot match, unless its searched text can hold text its bytes do not: a backslash escape
    (``\\u0061``, ``\\/``), ``İ`` or the Kelvin sign (which lower-case to ``i`` and ``k``), a searched field
    that is not a string (:data:`_NOT_TEXT_FIELD`), or, for a run of a number's characters or with a
    separator (:class:`_Run`), arguments other than :data:`_FLAT_ARGS` (numbers in another form than
    Python's, nesting, other spacing). Those entries, and every entry that holds all the runs, are decoded
    and matched as jobs. An entry that is not a job (its bytes are not a job's JSON) is found, as the
    dashboard always found it, when its bytes hold the runs (or may hold ``İ`` or the Kelvin sign) and its
    unreadable view (``JobView.parse``) holds the text."""

    def __init__(self, needle: str) -> None:
        self.needle = needle
        self.decoded = 0
        """How many entries it has decoded."""
        self._last: tuple[bytes, Payload | None] = (b"", None)
        """The entry last decoded, and its payload (None: not a job)."""
        runs = [run.encode("ascii") for run in _RAW_RUN.findall(needle)]
        self.runs = sorted(((run, _Run.of(run)) for run in runs), key=lambda item: item[1])
        self.lowers = any(char in run for run in runs for char in _LOWERS_TO_ASCII)

    def __call__(self, raw: bytes) -> bool:
        """Whether the entry ``raw`` matches."""
        lowered = raw.lower()
        for run, kind in self.runs:  # a loop, not all(): this runs for every entry of the set
            if run not in lowered:  # the least delicate run missing: the runs are in that order
                if self._may_hide_text(raw, kind):
                    return self._decoded_matches(raw, self.lowers and (not raw.isascii() or b"\\u" in raw))
                return False
        return self._decoded_matches(raw, True)

    def _may_hide_text(self, raw: bytes, kind: _Run) -> bool:
        """Whether the searched text of the job in ``raw`` may hold a run of this kind that its bytes do not
        (see the class)."""
        if _BACKSLASH in raw or (self.lowers and not raw.isascii()):  # a byte, not b"\\": memchr
            return True
        if (kind or not raw.isascii() or _DEL in raw) and _NOT_TEXT_FIELD.search(raw):
            return True
        return kind is _Run.DELICATE and (raw.count(b'"args"') != 1 or _FLAT_ARGS.search(raw) is None)

    def _decoded_matches(self, raw: bytes, admitted: bool) -> bool:
        """Decode ``raw`` and match it as a job; an entry that is not a job matches only when ``admitted``
        (its bytes hold every run, or may hold ``İ`` or the Kelvin sign)."""
        self.decoded += 1
        try:
            payload = decode(raw)  # as JobView.parse decodes it
        except PayloadError:
            self._last = (raw, None)
            return admitted and JobView.parse(raw).matches(self.needle)
        self._last = (raw, payload)
        return payload_matches(payload, self.needle)

    def job(self, raw: bytes, score: float | None) -> JobView:
        """The entry ``raw`` that just matched, as a job: its payload as the match decoded it (every match is
        decided by a decode), or read again when it is not a job."""
        last, payload = self._last
        if last is raw and payload is not None:
            return JobView(as_text(raw), payload, score, stored=raw)
        return JobView.parse(raw, score)
