# Sidekiq jobs for the compatibility tests (run by a real `sidekiq -r ./worker.rb` process).
# Each job records what it ran in Redis, so the Python side can assert exactly what happened.
require "sidekiq"

# Debian's redis-rb 4.8 warns (with a backtrace) on every BRPOP that Sidekiq 6.4 makes.
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

Sidekiq.configure_server do |config|
  # Poll the schedule and retry sets about every second (and skip Sidekiq's 10 s start-up delay).
  config.average_scheduled_poll_interval = 1
end

# Records its jid and arguments in the list `ruby:ran`.
class RubyWorker
  include Sidekiq::Worker

  def perform(*args)
    Sidekiq.redis { |conn| conn.rpush("ruby:ran", Sidekiq.dump_json({"jid" => jid, "args" => args})) }
  end
end

# Records its jid in `ruby:failed`, then fails (into Sidekiq's retry set, with a compressed backtrace).
class RubyFailer
  include Sidekiq::Worker
  sidekiq_options retry: 3, backtrace: 5

  def perform(*args)
    Sidekiq.redis { |conn| conn.rpush("ruby:failed", jid) }
    raise ArgumentError, "ruby says no to #{args.inspect}"
  end
end

# Records its jid in `ruby:started`, then keeps its thread busy until something is pushed to `key`.
class RubyBlocker
  include Sidekiq::Worker

  def perform(key)
    Sidekiq.redis do |conn|
      conn.rpush("ruby:started", jid)
      conn.brpop(key, timeout: 60)
    end
  end
end
