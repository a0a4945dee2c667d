"""A failed job's own log lines on its page in the retries and dead sets, as text, and nothing when it
has none (or ``error_log`` is not a list of lines)."""

from __future__ import annotations

import re
import time

import pytest
import redis
from dashboard_helpers import KEYS, PREFIX, add_to, failed
from starlette.testclient import TestClient

from workerkit.api import Api
from workerkit.sets import JobSet

LINES = ["10:00:00.001 INFO app.mail: connecting", "10:00:00.250 WARNING app.mail: <script>alert(1)</script>"]


@pytest.mark.parametrize(("job_set", "key"), [(JobSet.RETRIES, KEYS.retry), (JobSet.DEAD, KEYS.dead)])
def test_the_job_page_shows_the_lines_of_its_failed_run(
    client: TestClient, api: Api, redis_client: redis.Redis, job_set: JobSet, key: str
) -> None:
    add_to(redis_client, key, failed(error_log=LINES), time.time())
    [entry] = api.sorted_set(job_set).page().jobs
    page = client.get(f"{PREFIX}/{job_set.value}/{entry.key}").text
    shown = re.search(r'<pre class="job-log" id="job-log">(.*?)</pre>', page, re.S)
    assert shown and shown.group(1) == (
        "10:00:00.001 INFO app.mail: connecting\n10:00:00.250 WARNING app.mail: &lt;script&gt;alert(1)&lt;/script&gt;")


@pytest.mark.parametrize("value", [None, "not a list", []])
def test_no_log_section_without_lines(client: TestClient, api: Api, redis_client: redis.Redis, value: object) -> None:
    fields = {} if value is None else {"error_log": value}
    add_to(redis_client, KEYS.retry, failed(**fields), time.time())
    [entry] = api.sorted_set(JobSet.RETRIES).page().jobs
    assert 'id="job-log"' not in client.get(f"{PREFIX}/retries/{entry.key}").text
