"""The Batches pages over HTTP against a real server: the list with each batch's counts and state, a batch's
page with its events, parent, children and members linked to where they wait, the link from a job's page
to its batch, an unknown or hostile bid answered as text, and paging."""

from __future__ import annotations

import re
import threading

import redis
from dashboard_helpers import PREFIX
from starlette.testclient import TestClient

from workerkit import Batch, Job
from workerkit.fetch import QueueSpec, ReliableFetch
from workerkit.keys import Keys
from workerkit.runner import Runner


class PageStep(Job):
    retry = 0

    def perform(self, fail: bool) -> None:
        if fail:
            raise RuntimeError("page step fails")


def run_all(conn: redis.Redis) -> None:
    fetch, runner = ReliableFetch(conn, Keys(), "pages", [QueueSpec("default")]), Runner(threading.Event())
    while units := fetch.fetch(50):
        for unit in units:
            runner.process(unit)
    fetch.fetch(0)


def fields(html: str, bid: str) -> dict[str, str]:
    row = re.search(r'<tr data-bid="' + re.escape(bid) + r'">(.*?)</tr>', html, re.S)
    assert row, f"no row for {bid}"
    return {name: re.sub(r"<[^>]+>", "", value).strip()
            for name, value in re.findall(r'data-field="(\w+)">(.*?)</td>', row.group(1), re.S)}


def test_the_list_shows_each_batch_with_its_counts_and_state(client: TestClient, wk: redis.Redis) -> None:
    good, bad = Batch("<b>good</b>"), Batch("bad")
    with good.jobs():
        PageStep.perform_async(False)
    with bad.jobs():
        PageStep.perform_async(True)
        PageStep.perform_async(False)
    open_batch = Batch("open")
    block = open_batch.jobs()
    block.__enter__()
    PageStep.perform_async(False)
    run_all(wk)
    page = client.get(f"{PREFIX}/batches")
    assert page.status_code == 200
    assert "&lt;b&gt;good&lt;/b&gt;" in page.text and "<b>good</b>" not in page.text
    assert fields(page.text, good.bid) == {"total": "1", "pending": "0", "failed": "0", "dead": "0",
                                           "state": "succeeded"}
    assert fields(page.text, bad.bid) == {"total": "2", "pending": "1", "failed": "1", "dead": "1",
                                          "state": "complete, 1 failed · a job died"}
    assert fields(page.text, open_batch.bid)["state"] == "open"
    assert page.text.index(open_batch.bid) < page.text.index(bad.bid) < page.text.index(good.bid)  # newest first
    block.__exit__(None, None, None)


def test_a_batch_page_shows_events_family_and_members(client: TestClient, wk: redis.Redis) -> None:
    parent, child = Batch("parent"), Batch("child")
    with parent.jobs():
        PageStep.perform_async(True)
        with child.jobs():
            PageStep.perform_async(False)
    run_all(wk)
    page = client.get(f"{PREFIX}/batches/{parent.bid}")
    assert page.status_code == 200
    [dead_jid] = [m.decode() for m in wk.smembers(f"batch:{parent.bid}:dead")]
    assert f'href="{PREFIX}/dead?q={dead_jid}"' in page.text
    assert f'href="{PREFIX}/batches/{child.bid}"' not in page.text  # the child succeeded: no longer a member
    assert "First death" in page.text and "Complete" in page.text and "Succeeded" not in page.text
    child_page = client.get(f"{PREFIX}/batches/{child.bid}")
    assert f'href="{PREFIX}/batches/{parent.bid}"' in child_page.text and "Succeeded" in child_page.text
    job_page_link = re.search(rf'href="({PREFIX}/dead/[^"]+)"', client.get(f"{PREFIX}/dead").text)
    assert job_page_link
    assert f'href="{PREFIX}/batches/{parent.bid}"' in client.get(job_page_link.group(1)).text


def test_an_unknown_or_hostile_bid_is_a_404_page_as_text(client: TestClient, wk: redis.Redis) -> None:
    page = client.get(f"{PREFIX}/batches/%3Cimg%20onerror%3Dalert(1)%3E")
    assert page.status_code == 404 and "&lt;img onerror=alert(1)&gt;" in page.text and "<img" not in page.text
    assert "No batch has this id" in page.text


def test_the_list_pages_25_at_a_time(client: TestClient, wk: redis.Redis) -> None:
    made = []
    for index in range(27):
        batch = Batch(f"b{index}")
        with batch.jobs():
            pass
        made.append(batch.bid)
    first, second = client.get(f"{PREFIX}/batches").text, client.get(f"{PREFIX}/batches?page=2").text
    assert "page 1 of 2" in first and "page 2 of 2" in second
    shown = re.findall(r'<tr data-bid="(\w+)">', first) + re.findall(r'<tr data-bid="(\w+)">', second)
    assert sorted(shown) == sorted(made) and len(set(shown)) == 27
    assert client.get(f"{PREFIX}/batches?page=x").status_code == 200
