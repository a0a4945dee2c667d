"""How fast the dashboard answers with big sets: 100,000 entries in each of retry, dead and schedule (and a
queue of 100,000), every page and every bulk action timed through the real ASGI app, in one run.

    python3 bench/dashboard_big_sets.py [--entries 100000] [--rounds 3]

Each figure is the median of ``--rounds`` requests, in ms (the issue's target: every one under 200 ms). The
bulk actions act on a filter that matches no entry (they time the search) and on ``boom``, which matches
every entry (the search and 100,000 moves); before each round of those, and after the last, the three sets
and the queue are restored from a copy taken after the fill (``COPY``, not timed), so every round acts on
the full set and later requests see it whole (a kill trims the dead set to ``dead_max_jobs``).
``?q=needle`` matches one entry, ``?q=report-1`` about 11% of them (more than ``SORT_LIMIT``, so sorted
within the page), ``?q=boom`` every entry (each one a decode: the worst case of a filter, bounded on a
page by ``DECODE_BUDGET``, not in a bulk action).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import redis
from starlette.testclient import TestClient

from workerkit.api import Api
from workerkit.keys import Keys
from workerkit.server import running_server
from workerkit.sets import JobSet
from workerkit.web import dashboard
from workerkit.web.bulk import BulkActions

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jobs_common import load_note

KEYS = Keys()
SETS = {"retries": KEYS.retry, "dead": KEYS.dead, "scheduled": KEYS.schedule}


def fill(conn: redis.Redis, entries: int) -> None:
    """``entries`` failed-looking jobs in each set and in the default queue (one of each easy to find)."""
    now = time.time()
    for name, key in SETS.items():
        pipe = conn.pipeline(transaction=False)
        for number in range(entries):
            marker = "needle" if number == entries // 2 else f"report-{number % 97}"
            payload = {"class": f"app.jobs.Job{number % 13}", "args": [number, marker], "jid": f"{number:024x}",
                       "queue": "default", "retry": True, "retry_count": number % 5, "created_at": now - number,
                       "error_class": "RuntimeError", "error_message": f"boom {number}", "failed_at": now - number}
            score = now + (number if name == "scheduled" else -number)
            pipe.zadd(key, {json.dumps(payload, separators=(",", ":")): score})
            if len(pipe) >= 5000:
                pipe.execute()
        pipe.execute()
    pipe = conn.pipeline(transaction=False)
    for start in range(0, entries, 1000):
        pipe.lpush(KEYS.queue("default"), *[json.dumps({"class": "app.jobs.Q", "args": [n], "jid": f"{n:024x}",
                                                         "queue": "default", "enqueued_at": now})
                                             for n in range(start, min(entries, start + 1000))])
    pipe.sadd(KEYS.queues, "default")
    pipe.execute()


def restorer(conn: redis.Redis) -> Callable[[], None]:
    """Copy the sets and the queue aside now; the function returned puts that copy back."""
    originals = [*SETS.values(), KEYS.queue("default")]
    for key in originals:
        conn.copy(key, f"{key}:bench-copy", replace=True)

    def restore() -> None:
        pipe = conn.pipeline(transaction=False)
        for key in originals:
            pipe.copy(f"{key}:bench-copy", key, replace=True)
        pipe.execute()

    return restore


def timed(call: Callable[[], object], rounds: int, reset: Callable[[], object] = lambda: None) -> float:
    """Median ms of ``call()`` over ``rounds``, each after an untimed ``reset()``, and ``reset()`` again at the
    end (so that an action's moves, and the dead set's trimming, do not change what later requests see)."""
    runs = []
    for _ in range(rounds):
        reset()
        started = time.perf_counter()
        call()
        runs.append((time.perf_counter() - started) * 1000)
    reset()
    return statistics.median(runs)


def acted(client: TestClient, bulk: BulkActions, which: JobSet, form: dict[str, str], rounds: int,
          reset: Callable[[], object]) -> tuple[float, float]:
    """Median ms of a bulk action's answer and of its end (the background steps done), over ``rounds``."""
    answers, ends = [], []
    for _ in range(rounds):
        reset()
        bulk.conn.delete(KEYS.bulk_action(which.value))
        started = time.perf_counter()
        answer = client.post(f"/{which.value}", data=form, follow_redirects=False)
        answers.append((time.perf_counter() - started) * 1000)
        if "bulk_running" in answer.headers.get("location", ""):
            while (progress := bulk.progress(which)) is not None and progress.running:
                time.sleep(0.005)
        ends.append((time.perf_counter() - started) * 1000)
    reset()
    return statistics.median(answers), statistics.median(ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {load_note()}")
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), kind="auto") as server:
        conn = redis.Redis.from_url(server.url)
        fill(conn, args.entries)
        restore = restorer(conn)
        last = args.entries // 25
        client = TestClient(dashboard(Api(conn, KEYS), secret="s"), base_url="http://127.0.0.1")
        token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)  # type: ignore[union-attr]
        figures: dict[str, float] = {}
        ends: dict[str, float] = {}
        bulk = BulkActions(conn, KEYS)
        for page in ("/", "/queues", "/queues/default", f"/queues/default?page={last}", "/busy", "/periodic"):
            figures[f"GET {page}"] = timed(partial(client.get, page), args.rounds)
        for name in SETS:
            for query in ("", f"?page={last}", "?sort=class", f"?sort=class&page={last}", "?q=needle",
                          "?q=needle&page=1&sort=queue", "?q=report-1&sort=class", "?q=boom"):
                figures[f"GET /{name}{query}"] = timed(partial(client.get, f"/{name}{query}"), args.rounds)
            for action in ("run", "delete") + (("kill",) if name != "dead" else ()):
                for text, matching in (("no-such-entry", "no entry"), ("boom", "every entry")):
                    form = {"csrf_token": token, "action": action, "scope": "all", "q": text}
                    label = f"POST /{name} {action} all matching \"{text}\" ({matching})"
                    figures[label], ends[label] = acted(client, bulk, JobSet(name), form, args.rounds, restore)
    print(f"# {load_note()}")
    print(f"| request ({args.entries:,} entries in each set and the queue) | answer, ms (median of {args.rounds}) "
          "| a bulk action's end, ms |")
    print("| --- | --- | --- |")
    for name, millis in figures.items():
        end = f"{ends[name]:,.0f}" if name in ends else ""
        print(f"| `{name}` | {millis:,.0f}{' **over 200**' if millis > 200 else ''} | {end} |")


if __name__ == "__main__":
    main()
