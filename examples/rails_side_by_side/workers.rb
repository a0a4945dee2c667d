# The Ruby side: a plain Sidekiq worker, as it would sit in a Rails app's app/workers/.
require "sidekiq"

Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# Runs in the `sidekiq` process. The Python job ThumbnailWorker enqueues it when a thumbnail is ready.
class NotifyWorker
  include Sidekiq::Worker
  sidekiq_options queue: "ruby"

  def perform(image_id, size)
    Sidekiq.redis { |conn| conn.hset("notified", image_id.to_s, "#{size} thumbnail ready") }
    logger.info "told the owner of image #{image_id} that its #{size} thumbnail is ready"
  end
end
