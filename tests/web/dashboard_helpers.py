"""Helpers for dashboard tests: seed jobs the way workerkit stores them, post forms with their CSRF token."""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from typing import Any

import redis
from starlette.testclient import TestClient

from workerkit.keys import Keys
from workerkit.payload import encode, new_payload

KEYS = Keys()
PREFIX = "/workerkit"
LOCAL = "http://127.0.0.1"
"""The base URL of test clients: an open dashboard answers only for loopback hosts."""
WORKERKIT = [sys.executable, "-c", "import sys; from workerkit.cli import main; sys.exit(main())"]
"""The ``workerkit`` command of the working tree, run by this interpreter."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def payload(class_name: str = "app.jobs.Report", args: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    job = new_payload(class_name, args if args is not None else [1], fields.pop("queue", "default"), True,
                      created_at=time.time())
    job.update(fields)
    return job


def enqueue(conn: redis.Redis, job: dict[str, Any]) -> dict[str, Any]:
    job.setdefault("enqueued_at", time.time())
    conn.sadd(KEYS.queues, job["queue"])
    conn.lpush(KEYS.queue(job["queue"]), encode(job))
    return job


def add_to(conn: redis.Redis, key: str, job: dict[str, Any], score: float) -> dict[str, Any]:
    conn.zadd(key, {encode(job): score})
    return job


def failed(class_name: str = "app.jobs.Flaky", args: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    fields = {
        "error_class": "RuntimeError",
        "error_message": "boom",
        "error_backtrace": ['File "app/jobs.py", line 3, in perform', "RuntimeError: boom"],
        "retry_count": 2,
        "failed_at": time.time() - 100,
        **fields,
    }
    return payload(class_name, args, **fields)


def csrf_token(client: TestClient, path: str = PREFIX + "/") -> str:
    page = client.get(path)
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match, "no CSRF field on " + path
    return match.group(1)


def post(client: TestClient, path: str, data: dict[str, Any], page: str | None = None) -> Any:
    """POST a form the way the browser does: with the token of the page it came from."""
    token = csrf_token(client, page or PREFIX + "/")
    return client.post(path, data={"csrf_token": token, **data})


def queued(conn: redis.Redis, queue: str = "default") -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in reversed(conn.lrange(KEYS.queue(queue), 0, -1))]
