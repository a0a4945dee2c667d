"""The demo's background jobs: what a sign-up flow hands to workers.

Each job notes what it did in the app's own activity list, so the page (and the demo test) can show it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import workerkit
from workerkit import Job, config, job, periodic

log = logging.getLogger("examples.signup")

REDIS_URL = os.environ.get("REDIS_URL") or f"redis://127.0.0.1:{os.environ.get('REDIS_PORT', '6390')}/0"
workerkit.configure(redis_url=REDIS_URL)

ACTIVITY = "signup:activity"
"""The app's own LIST of things its jobs did, newest first (app data, not a workerkit key)."""
ATTEMPTS = "signup:attempts:"
"""Prefix of the app's own per-import attempt counters."""
QUICK_RETRY_SECONDS = 5.0


def record(kind: str, detail: str) -> None:
    """Note in the activity list that a job of ``kind`` did something."""
    conn = config.redis_client()
    pipe = conn.pipeline()
    pipe.lpush(ACTIVITY, f"{time.strftime('%H:%M:%S')} {kind}: {detail}")
    pipe.ltrim(ACTIVITY, 0, 49)
    pipe.execute()


def quick_retry(count: int, exc: BaseException) -> float:
    """Retry after a few seconds instead of Sidekiq's 15 s and up, so the demo moves along."""
    return QUICK_RETRY_SECONDS


@job(queue="critical")
def send_welcome_email(email: str) -> None:
    """Send the welcome email right after sign-up (a short pause stands in for the mail server)."""
    time.sleep(0.5)
    log.info("welcome email sent to %s", email)
    record("welcome", email)


class SendReminder(Job):
    """Remind a new user to finish their profile; the app schedules it 30 seconds after sign-up."""

    def perform(self, email: str) -> None:
        log.info("reminder sent to %s", email)
        record("reminder", email)


class ImportContacts(Job):
    """Import a user's contacts from a flaky partner API: fails twice, then succeeds on the third try."""

    retry = 5
    backoff = staticmethod(quick_retry)

    def perform(self, import_id: str) -> None:
        pipe = config.redis_client().pipeline()
        pipe.incr(ATTEMPTS + import_id)
        pipe.expire(ATTEMPTS + import_id, 86400)
        attempt = int(pipe.execute()[0])
        if attempt <= 2:
            raise ConnectionError(f"partner API timed out (attempt {attempt} of import {import_id})")
        record("import", f"{import_id} succeeded on attempt {attempt}")


class ChargeCard(Job):
    """Charge a card that is always declined: two quick retries, then the job lands in the Dead set."""

    retry = 2
    backoff = staticmethod(quick_retry)

    def perform(self, user: str) -> None:
        raise ValueError(f"card declined for {user}")


@job(queue="default")
def crunch(number: int) -> None:
    """A tiny unit of work; the page enqueues 10,000 of them at once to watch the dashboard move."""
    time.sleep(0.01)
    sum(range(number % 1000))


@periodic("* * * * *", name="tidy-up")
@job
def tidy_up() -> None:
    """Runs every minute on one worker (whichever claims the minute first)."""
    record("tidy-up", "cleaned expired sessions")


def activity(limit: int = 20) -> list[str]:
    """The latest things the jobs did, newest first."""
    raw: list[Any] = config.redis_client().lrange(ACTIVITY, 0, limit - 1)
    return [item.decode() for item in raw]
