"""The Batches pages in real headless Chromium, with a real worker: a batch's progress on the list, its
failed job followed from the batch's page to the retries and retried with a click, and the batch then
shown succeeded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from browser_support import needs_chromium
from polling import wait_for
from test_browser import Running, browser, conn, page, running, server_url  # noqa: F401 (fixtures)

from workerkit import Batch, config

pytestmark = [pytest.mark.browser, needs_chromium]
sync_api = pytest.importorskip("playwright.sync_api")
sys.path.insert(0, str(Path(__file__).parent))


def test_a_batch_is_followed_to_its_failed_job_and_succeeds_once_it_is_retried(
    running: Running, page: Any, conn: redis.Redis, server_url: str  # noqa: F811
) -> None:
    import browser_jobs

    config.reset()
    config.configure(redis_url=server_url)
    batch = Batch("nightly import")
    with batch.jobs():
        for number in range(4):
            browser_jobs.Quick.perform_async(number)
        browser_jobs.FailsOnce.perform_async()
    wait_for(lambda: batch.status().complete, "every job of the batch to have run once", 60)

    page.goto(running.url + "/batches")
    row = page.locator(f'tr[data-bid="{batch.bid}"]')
    sync_api.expect(row.locator('[data-field="state"]')).to_have_text("complete, 1 failed")
    assert row.locator("progress").get_attribute("value") == "4"
    row.get_by_role("link", name=batch.bid).click()
    sync_api.expect(page.locator("h1")).to_have_text(f"Batch {batch.bid}")
    page.get_by_role("link", name="in the retries").click()
    page.get_by_role("link", name="browser_jobs.FailsOnce").click()
    sync_api.expect(page.locator("a.batch-link")).to_have_text(f"batch {batch.bid}")
    with page.expect_navigation():
        page.get_by_role("button", name="Retry now").click()
    wait_for(lambda: batch.status().succeeded, "the batch to succeed", 60)
    page.goto(running.url + f"/batches/{batch.bid}")
    sync_api.expect(page.locator('dd[data-field="state"]')).to_have_text("succeeded")
    sync_api.expect(page.locator('dd[data-field="pending"]')).to_have_text("0")
    config.reset()
