# A no-op Sidekiq worker for bench/jobs_throughput.py and bench/jobs_latency.py.
# NoopWorker does nothing; StampWorker records when it started (for enqueue-to-start latency).
require "sidekiq"

# Debian's redis-rb 4.8 warns on every BRPOP that Sidekiq 6.4 makes (with a backtrace); silence it so the
# comparison measures Sidekiq, not the warning.
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# BENCH_SIDEKIQ_LOG_LEVEL=warn turns off the per-job start/done lines (bench/jobs_throughput.py --logs quiet).
level = ENV["BENCH_SIDEKIQ_LOG_LEVEL"]
Sidekiq.logger.level = Logger.const_get(level.upcase) if level && !level.empty?

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
