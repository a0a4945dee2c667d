-- Push jobs to one queue (a client's push, one or many).
-- KEYS[1] the queues SET  KEYS[2] the queue LIST
-- ARGV[1] the queue name  ARGV[2..] payloads, in push order
enqueue_many(KEYS[1], KEYS[2], ARGV[1], 2, #ARGV)
return #ARGV - 1
