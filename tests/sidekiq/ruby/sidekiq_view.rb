# Sidekiq's side of the shared Redis, for the compatibility tests (REDIS_URL names the server).
#
#   ruby sidekiq_view.rb push JOB_JSON...   push each job hash with Sidekiq::Client.push; print the jids (JSON)
#   ruby sidekiq_view.rb report             print what Sidekiq's API reports (Stats, the sets, processes,
#                                           busy threads, queues) as one JSON object
#   ruby sidekiq_view.rb retry              retry every entry of the retry set now, as Sidekiq's Web UI does
#   ruby sidekiq_view.rb quiet|stop         quiet or stop every live process, as Sidekiq's Web UI does
#   ruby sidekiq_view.rb web                render Sidekiq's Web UI pages (and the page of every job in the
#                                           retry, dead and scheduled sets); print {path: [status, html]}
require "json"
require "sidekiq"
require "sidekiq/api"

Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

def timestamp(value)
  value&.to_f
end

def job(record)
  {
    "jid" => record.jid,
    "class" => record.klass,
    "args" => record.args,
    "queue" => record.queue,
    "retry_count" => record["retry_count"],
    "error_class" => record["error_class"],
    "error_message" => record["error_message"],
    "created_at" => timestamp(record.created_at),
    "enqueued_at" => timestamp(record.enqueued_at),
    "failed_at" => record["failed_at"],
    "backtrace" => record["error_backtrace"] && record.error_backtrace
  }
end

def entry(sorted_entry)
  job(sorted_entry).merge("at" => sorted_entry.at.to_f)
end

def report
  stats = Sidekiq::Stats.new
  names = %w[processed failed enqueued retry_size dead_size scheduled_size processes_size workers_size]
  {
    "stats" => names.to_h { |name| [name, stats.public_send(name)] },
    "retries" => Sidekiq::RetrySet.new.map { |e| entry(e) },
    "dead" => Sidekiq::DeadSet.new.map { |e| entry(e) },
    "scheduled" => Sidekiq::ScheduledSet.new.map { |e| entry(e) },
    "processes" => Sidekiq::ProcessSet.new.map do |process|
      {
        "identity" => process.identity,
        "hostname" => process["hostname"],
        "pid" => process["pid"],
        "tag" => process["tag"],
        "concurrency" => process["concurrency"],
        "queues" => process["queues"],
        "busy" => process["busy"],
        "quiet" => process.stopping?,
        "started_at" => process["started_at"],
        "beat" => process["beat"]
      }
    end,
    "workers" => Sidekiq::Workers.new.map do |process_id, thread_id, work|
      payload = work["payload"]
      {"process" => process_id, "thread" => thread_id, "queue" => work["queue"], "run_at" => work["run_at"],
       "jid" => payload["jid"], "class" => payload["class"], "args" => payload["args"]}
    end,
    "now" => Time.now.to_f,
    "queues" => Sidekiq::Queue.all.map do |queue|
      {"name" => queue.name, "size" => queue.size, "latency" => queue.latency,
       "jids" => queue.map(&:jid)}
    end
  }
end

# Sidekiq's Web UI, rendered in this process (no server): the overview pages and every job's own page.
def web_pages
  require "sidekiq/web"
  require "rack/mock"
  require "rack/session/cookie"
  app = Rack::Builder.new do
    use Rack::Session::Cookie, secret: "compat-test" * 8
    run Sidekiq::Web.new
  end
  paths = %w[/ /busy /queues /retries /morgue /scheduled]
  paths += Sidekiq::Queue.all.map { |queue| "/queues/#{queue.name}" }
  {"retries" => Sidekiq::RetrySet, "morgue" => Sidekiq::DeadSet, "scheduled" => Sidekiq::ScheduledSet}
    .each { |page, set| paths += set.new.map { |entry| "/#{page}/#{entry.score}-#{entry.jid}" } }
  paths.to_h do |path|
    response = Rack::MockRequest.new(app).get(path)
    [path, [response.status, response.body]]
  end
end

case ARGV.shift
when "push"
  puts JSON.generate(ARGV.map { |text| Sidekiq::Client.push(JSON.parse(text)) })
when "report"
  puts JSON.generate(report)
when "web"
  puts JSON.generate(web_pages)
when "retry"
  # The Web UI's "Retry Now" on every entry of the retry set.
  puts JSON.generate(Sidekiq::RetrySet.new.map { |entry| entry.retry && entry.jid })
when "quiet"
  # The Web UI's Quiet button: TSTP through each process's signal list.
  puts JSON.generate(Sidekiq::ProcessSet.new.map { |process| process.quiet! && process.identity })
when "stop"
  # The Web UI's Stop button: TERM through each process's signal list.
  puts JSON.generate(Sidekiq::ProcessSet.new.map { |process| process.stop! && process.identity })
else
  warn "usage: ruby sidekiq_view.rb push JOB_JSON... | report | web | retry | quiet | stop"
  exit 2
end
