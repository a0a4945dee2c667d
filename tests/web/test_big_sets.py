"""The sorted sets' pages, filters and bulk actions stay bounded on big sets and still show what a scan of
every entry shows: each test compares with a full decode of the set (``ZRANGE 0 -1 WITHSCORES``).

The size limits are lowered for the tests (``SORT_LIMIT``, ``SNAPSHOT_LIMIT``) so that a few dozen entries
take the paths that 100,000 take in production."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
import redis
from dashboard_helpers import KEYS

from workerkit import sets
from workerkit.api import Api
from workerkit.sets import JobSet, SortedJobSet
from workerkit.views import JobView

HOSTILE: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # (payload, how its producer writes JSON)
    ({"class": "app.Needle", "args": [1], "jid": "a" * 24}, {}),
    ({"class": "app.Other", "args": ["has NEEDLE inside", {"k": "v"}], "jid": "b" * 24}, {"ensure_ascii": False}),
    ({"class": "app.Other", "args": ["*[?]*", "a\\\\b", 'q"t'], "jid": "c" * 24}, {}),
    ({"class": "app.Other", "args": ["é", "\u2028", 1e20, None, True], "jid": "d" * 24,
      "error_message": 'boom\\nline two: said "hi"', "error_class": "KeyError"}, {"ensure_ascii": True}),
    ({"class": "app.Other", "args": [], "jid": "e" * 24, "queue": "needle-only-in-the-queue"}, {}),
    ({"class": "app.Temp", "args": ["273 \u212a", "\u0130stanbul"], "jid": "f" * 24}, {"ensure_ascii": False}),
    ({"class": "app.Temp", "args": ["0 \u212a"], "jid": "0" * 24}, {"ensure_ascii": True}),  # \u212a
    ({"class": "app/jobs/Slash", "args": ["<b>&amp;</b>", "a/b"], "jid": "1" * 24}, {"escape_html": True}),
    ({"class": "app.Spaced", "args": [{"k": [1, 2]}], "jid": "2" * 24}, {"separators": (", ", ": ")}),
    ({"class": "app.\u039f\u0394\u039f\u03a3", "args": ["\u03a3\u0391"], "jid": "3" * 24,  # Greek: a final sigma
      "error_message": "\u03a3\u0391\u03a3"}, {"ensure_ascii": False}),
]
NEEDLES = ("needle", "NEEDLE", "Needle", "*", "[?]", "*[?]*", "é", "a\\\\b", 'q"', "1e+20", "null", "none", "true",
           "k", "v}", "boom", "line two", '"hi', "KeyError", "a" * 24, "aaaa", "", "x" * 200, "\u2028", "?",
           "273 k", "\u212a", "istanbul", "i\u0307stanbul", "\u0130", "app/jobs", "/", "<b>", "&amp;", "a/b",
           '{"k": [1, 2]}', "1, 2", "other a", "temp 0", "needle\u2028",
           "\u03bf\u03b4\u03bf\u03c2", "\u03bf\u03b4\u03bf\u03c3", '\u03c2 "\u03c3\u03b1',
           "\u03c3\u03b1\u03c2", "\u03b1\u03c2 3")


WRITTEN: list[tuple[bytes, str]] = [
    # (an entry as some producer wrote it, text that its searched text holds and its bytes do not)
    (b'{"class":"app.Rep\\u006frt","args":[],"jid":"w1"}', "report"),  # a letter escaped
    (b'{"class":"app.\xe2\x84\xaaelvin","args":[],"jid":"w2"}', "kelvin"),  # the Kelvin sign, as it is
    (b'{"class":"app.Nothing","args":[],"error_class":null,"jid":"w3"}', "none"),  # str(None)
    (b'{"class":"app.Del","args":[],"error_message":["a\x7fb"],"jid":"w4"}', "x7fb"),  # str(['a\x7fb'])
    (b'{"class":"app.Nbsp","args":[],"error_message":["a\xc2\xa0b"],"jid":"w5"}', "xa0b"),  # str(['a\xa0b'])
    (b'{"class":"app.Float","args":[1E2, 1.0e-05],"jid":"w6"}', "100.0, 1e-05"),  # Python's number forms
    (b'{"class":"app.Spaced","args":[1 ,2],"jid":"w7"}', "1, 2"),
    (b'{"class":"app.Zero","args":[[-0]],"jid":"w8"}', "[0]"),
    (b'{"class":"app.Twice","args":[{"a":1,"b":2,"a":3}],"jid":"w9"}', '3, "b'),  # the last "a", in first place
    (b'{"class":"app.Number","args":[],"jid":1e5}', "100000.0"),
    (b'{"class":"app.Nested","args":[1 ,2],"x":{"args":[5]},"jid":"w11"}', "nested 1, 2"),
    (b'{"class" : "app.Colon", "args" : [1 ,2], "jid" : "w12"}', "colon 1, 2"),
]
"""Entries whose searched text holds text their raw bytes do not: each one the old prefilter missed."""


def write(payload: dict[str, Any], style: dict[str, Any]) -> str:
    """``payload`` as JSON the way one producer or another writes it (escaped slashes and HTML: PHP, Rails)."""
    escape_html = style.pop("escape_html", False)
    text = json.dumps(payload, **style)
    if escape_html:
        text = (text.replace("/", "\\/").replace("<", "\\u003c").replace(">", "\\u003e")
                .replace("&", "\\u0026"))
    return text


@pytest.fixture
def retries(api: Api) -> SortedJobSet:
    return api.sorted_set(JobSet.RETRIES)


def test_a_filter_finds_text_that_an_entry_holds_only_once_decoded(
    redis_client: redis.Redis, retries: SortedJobSet
) -> None:
    """Escapes, non-string fields, numbers in other forms than Python's and other spacing: the filter finds
    the job (and the page and the bulk actions with it) as a full decode does."""
    redis_client.zadd(KEYS.retry, {raw: float(number) for number, (raw, _) in enumerate(WRITTEN)})
    every = every_entry(redis_client, KEYS.retry)
    assert all(job.readable for job in every)
    for raw, text in WRITTEN:
        expected = [job.jid for job in every if job.matches(text.lower())]
        assert str(JobView.parse(raw).jid) in expected, text
        assert [job.jid for job in retries.matching(text)] == expected, text
        assert [job.jid for job in retries.page(text=text, per_page=100).jobs] == expected, text
    assert retries.delete_all("100000.0") == 1
    assert "100000.0" not in [job.jid for job in every_entry(redis_client, KEYS.retry)]


def every_entry(conn: redis.Redis, key: str) -> list[JobView]:
    """The whole set decoded, in ``ZRANGE`` order: what a filter and a sort must agree with."""
    rows = cast(list[tuple[bytes, float]], conn.zrange(key, 0, -1, withscores=True))
    return [JobView.parse(raw, score) for raw, score in rows]




@pytest.mark.parametrize("snapshot_limit", [sets.SNAPSHOT_LIMIT, 0], ids=["snapshot", "zscan"])
def test_a_filter_finds_what_decoding_every_entry_finds(
    redis_client: redis.Redis, retries: SortedJobSet, monkeypatch: pytest.MonkeyPatch, snapshot_limit: int
) -> None:
    """Hostile needles against entries written by several JSON encoders (escaped or not), read from one
    snapshot (``ZRANGE``) or, past the snapshot's limit, by ``ZSCAN``: always what a full decode finds."""
    monkeypatch.setattr(sets, "SNAPSHOT_LIMIT", snapshot_limit)
    for number, (payload, style) in enumerate(HOSTILE):
        redis_client.zadd(KEYS.retry, {write(payload, dict(style)): float(number)})
    every = every_entry(redis_client, KEYS.retry)
    for text in NEEDLES:
        expected = [job.jid for job in every if job.matches(text.lower())]
        assert [job.jid for job in retries.matching(text)] == expected, text
        page = retries.page(text=text, per_page=100)
        assert [(job.jid, job.score) for job in page.jobs] == [(job.jid, job.score) for job in every
                                                                if job.matches(text.lower())], text


def test_a_job_matches_text_in_its_fields_joined_by_spaces() -> None:
    """``JobView.matches`` looks at the fields without the arguments first; whatever it finds is what the
    whole searched text (class, arguments as JSON, error class and message, jid, joined by spaces) holds."""
    for payload, style in HOSTILE:
        job = JobView.parse(write(payload, dict(style)))
        searched = " ".join((job.class_name, ", ".join(json.dumps(arg, ensure_ascii=False) for arg in job.args),
                             job.error_class, job.error_message, job.jid)).lower()
        for text in NEEDLES:
            assert job.matches(text.lower()) == (text.lower() in searched), (job.jid, text)


def seed(conn: redis.Redis, count: int) -> list[JobView]:
    """``count`` retries of 7 classes in 3 queues, some sharing a score; returns the set fully decoded."""
    entries = {}
    for number in range(count):
        payload = {"class": f"app.Job{(number * 5) % 7}", "args": [number, "report" if number % 3 else "other"],
                   "jid": f"{number:024x}", "queue": f"q{number % 3}", "error_message": f"boom {number}"}
        entries[json.dumps(payload)] = float(number // 2)  # ties: ZRANGE orders them by their bytes
    conn.zadd(KEYS.retry, entries)
    conn.zadd(KEYS.dead, entries)
    return every_entry(conn, KEYS.retry)


def jids(jobs: list[JobView]) -> list[str]:
    return [job.jid for job in jobs]


@pytest.mark.parametrize("descending", [False, True])
def test_a_set_no_bigger_than_the_sort_limit_is_sorted_whole(
    redis_client: redis.Redis, retries: SortedJobSet, monkeypatch: pytest.MonkeyPatch, descending: bool
) -> None:
    every = seed(redis_client, 60)
    monkeypatch.setattr(sets, "SORT_LIMIT", 60)
    monkeypatch.setattr(sets, "DECODE_BUDGET", 10)  # without a filter, the whole set is sorted all the same
    for sort, key in (("class", lambda job: job.class_name), ("queue", lambda job: job.queue)):
        whole = sorted(every, key=key, reverse=descending)
        for number in (1, 2, 3):
            page = retries.page(number, 25, sort=sort, descending=descending)
            assert not page.sorted_within
            assert (page.total, jids(page.jobs)) == (60, jids(whole[(number - 1) * 25 : number * 25])), (sort, number)
            assert [job.score for job in page.jobs] == [job.score for job in whole[(number - 1) * 25 : number * 25]]
    by_time = retries.page(2, 25, text="report", descending=descending)
    matching = [job for job in every if job.matches("report")]
    assert jids(by_time.jobs) == jids((matching[::-1] if descending else matching)[25:50])


@pytest.mark.parametrize("which", [JobSet.RETRIES, JobSet.DEAD])
def test_past_the_sort_limit_each_page_is_sorted_within_itself_in_time_order(
    redis_client: redis.Redis, api: Api, monkeypatch: pytest.MonkeyPatch, which: JobSet
) -> None:
    """The page at the same place in the set's time order (the dead set newest first), sorted within: with
    and without a filter, whatever the direction of the sort."""
    seed(redis_client, 60)
    every = every_entry(redis_client, which.key(KEYS))
    in_time_order = every[::-1] if which is JobSet.DEAD else every
    monkeypatch.setattr(sets, "SORT_LIMIT", 10)
    entries = api.sorted_set(which)
    for descending in (False, True):
        for text, candidates in (("", in_time_order), ("report", [j for j in in_time_order if j.matches("report")])):
            for number in (1, 2):
                page = entries.page(number, 25, sort="class", descending=descending, text=text)
                window = candidates[(number - 1) * 25 : number * 25]
                expected = sorted(window, key=lambda job: job.class_name, reverse=descending)
                assert page.sorted_within and page.total == len(candidates)
                assert [(job.jid, job.score) for job in page.jobs] == [(job.jid, job.score) for job in expected]


def test_the_page_says_when_it_is_sorted_within_itself(
    redis_client: redis.Redis, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(redis_client, 30)
    monkeypatch.setattr(sets, "SORT_LIMIT", 10)
    assert "Sorted by class within each page" in client.get("/workerkit/retries?sort=class").text
    assert "within each page" not in client.get("/workerkit/retries").text
    monkeypatch.setattr(sets, "SORT_LIMIT", 30)
    assert "within each page" not in client.get("/workerkit/retries?sort=class").text


def test_bulk_actions_on_a_filter_act_on_every_match(redis_client: redis.Redis, retries: SortedJobSet) -> None:
    every = seed(redis_client, 60)
    others = [job for job in every if job.matches("other")]
    assert retries.delete_all("OTHER") == len(others) == 20
    assert jids(every_entry(redis_client, KEYS.retry)) == [job.jid for job in every if job not in others]
    threes = [job for job in every if job not in others and job.class_name == "app.Job3"]
    assert retries.kill_all("app.job3") == len(threes) > 0
    assert not set(jids(threes)) & set(jids(every_entry(redis_client, KEYS.retry)))
    assert set(jids(threes)) <= set(jids(every_entry(redis_client, KEYS.dead)))


@pytest.mark.parametrize("snapshot_limit", [sets.SNAPSHOT_LIMIT, 0], ids=["snapshot", "zscan"])
@pytest.mark.parametrize("which", [JobSet.RETRIES, JobSet.DEAD])
def test_a_page_counts_the_matches_only_so_far_past_the_decode_budget(
    redis_client: redis.Redis, api: Api, client: Any, monkeypatch: pytest.MonkeyPatch, which: JobSet,
    snapshot_limit: int,
) -> None:
    """Past ``DECODE_BUDGET`` decoded entries a page stops once it has its own matches: they are still the
    matches at that place (never a non-match, none left out; read newest first too, ties included), the total
    is a lower bound and says so, and a page further on, or a bulk action, looks at the whole set."""
    monkeypatch.setattr(sets, "SNAPSHOT_LIMIT", snapshot_limit)
    seed(redis_client, 60)
    every = every_entry(redis_client, which.key(KEYS))
    matching = [job for job in every if job.matches("report")]
    assert len(matching) == 40
    monkeypatch.setattr(sets, "DECODE_BUDGET", 10)
    entries = api.sorted_set(which)
    for descending in (False, True):
        in_order = matching[::-1] if descending else matching
        first = entries.page(1, 25, text="REPORT", descending=descending)
        assert [(job.jid, job.score) for job in first.jobs] == [(job.jid, job.score) for job in in_order[:25]]
        assert not first.counted and 25 <= first.total < 40
        second = entries.page(2, 25, text="report", descending=descending)
        assert second.counted and second.total == 40
        assert jids(second.jobs) == jids(in_order[25:])
    by_class = entries.page(1, 25, sort="class", text="report")
    in_time_order = matching[::-1] if which is JobSet.DEAD else matching
    assert by_class.sorted_within and not by_class.counted
    assert jids(by_class.jobs) == jids(sorted(in_time_order[:25], key=lambda job: job.class_name))
    html = client.get(f"/workerkit/{which.value}?q=report").text
    assert f"at least {first.total} jobs matching" in html and "Last »" not in html and 'rel="next"' in html
    assert "at least" not in client.get(f"/workerkit/{which.value}?q=report&page=2").text
    assert entries.delete_all("report") == 40
