-- Push every job of an in-flight list back to the pop end of its queue, oldest ending nearest the end.
-- KEYS[1] in-flight list  KEYS[2] queue list
-- Returns how many jobs moved.
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do
  moved = moved + 1
end
return moved
