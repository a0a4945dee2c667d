# What a Rails controller does to hand work to Python: push a job by its class name with Sidekiq's client.
#   ruby enqueue.rb IMAGE_ID [SIZE]
require "sidekiq"

Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

image_id = Integer(ARGV.fetch(0) { abort "usage: ruby enqueue.rb IMAGE_ID [SIZE]" })
size = ARGV.fetch(1, "200x200")
jid = Sidekiq::Client.push("class" => "ThumbnailWorker", "queue" => "python", "args" => [image_id, size])
puts "enqueued ThumbnailWorker #{jid}"
