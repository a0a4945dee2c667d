-- Push jobs to one queue (a client's push, one or many).
-- KEYS[1] the queues SET  KEYS[2] the queue LIST
-- ARGV[1] the queue name  ARGV[2..] payloads, in push order
for i = 2, #ARGV do
  enqueue(KEYS[1], KEYS[2], ARGV[1], ARGV[i], false)
end
return #ARGV - 1
