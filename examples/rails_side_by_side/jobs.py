"""The Python side: jobs a Rails app enqueues by class name, run by ``workerkit worker -r jobs``."""

from __future__ import annotations

import logging

import workerkit
from workerkit import config

log = logging.getLogger(__name__)


@workerkit.job(name="ThumbnailWorker", queue="python")
def make_thumbnail(image_id: int, size: str) -> None:
    """Runs for ``Sidekiq::Client.push("class" => "ThumbnailWorker", ...)``; then hands back to Ruby."""
    config.redis_client().hset("thumbnails", str(image_id), size)  # stands in for the real image work
    log.info("made the %s thumbnail of image %s", size, image_id)
    workerkit.push("NotifyWorker", args=[image_id, size], queue="ruby", retry=True)
