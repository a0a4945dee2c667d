# A no-op Sidekiq worker for bench/jobs_throughput.py and bench/jobs_latency.py.
# NoopWorker does nothing; StampWorker records when it started (for enqueue-to-start latency).
require "sidekiq"

class NoopWorker
  include Sidekiq::Worker
  def perform(*args); end
end

class StampWorker
  include Sidekiq::Worker
  def perform(key, sent)
    started = Time.now.to_f
    Sidekiq.redis { |conn| conn.rpush(key, "#{sent} #{started}") }
  end
end
