"""The Lua scripts the team's daemons run in Redis: each one atomic, each on Redis's clock.

Every key of a namespace shares one hash tag (`perfd:{ns}:...`), so the
scripts also run on a Redis Cluster (all of a team's keys live in one slot).
Times are microseconds from `TIME`; machines' clocks never matter.

Keys (KEYS[1] is the prefix `perfd:{ns}:`; the scripts append suffixes):
  w      ZSET  admitted requests: member id, score = when it leaves the window
               (in flight: admission + in-flight bound + W; once the server has
               seen it: that moment + W)
  wt     HASH  id -> tokens reserved (reconciled with the reported usage)
  wtot   STR   sum of wt over the members of w
  cool   STR   shared cooldown end (a 429 seen by any daemon)
  brk    HASH  f = consecutive failures, u = open until
  peers  ZSET  daemon id -> last admission (who shares the limit)
  b:<d>  STR   micro-USD spent on UTC day d; bp:<d>:<plan> per plan
"""

from __future__ import annotations

# Shared prelude: the clock and pruning of expired window entries.
_PRELUDE = """
local p = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function prune()
  while true do
    local gone = redis.call('ZRANGEBYSCORE', p .. 'w', '-inf', now, 'LIMIT', 0, 256)
    if #gone == 0 then return end
    local toks = redis.call('HMGET', p .. 'wt', unpack(gone))
    local sum = 0
    for i = 1, #toks do sum = sum + (tonumber(toks[i]) or 0) end
    redis.call('ZREM', p .. 'w', unpack(gone))
    redis.call('HDEL', p .. 'wt', unpack(gone))
    if sum ~= 0 then redis.call('DECRBY', p .. 'wtot', sum) end
    if #gone < 256 then return end
  end
end
"""

# ARGV: id, tokens, rpm (0 = none), tpm (0 = none), window_us, inflight_us,
#       poll_us, member, breaker_threshold, breaker_cooldown_us,
#       cost_us (micro-USD estimate), budget_day (0 = none), budget_plan (0 = none), plan_tag
# Returns {1, requests, tokens, peers, spent_day, day}    admitted
#         {0, wait_us, requests, tokens}              over rpm/tpm: wait
#         {-1, retry_in_us}                           shared breaker open
#         {-2, spent, budget, scope (1 day, 2 plan)}  over budget: refused
#         {-3, wait_us}                               shared cooldown (429)
ADMIT = _PRELUDE + """
local id, tokens = ARGV[1], tonumber(ARGV[2])
local rpm, tpm, window, inflight = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local poll, member = tonumber(ARGV[7]), ARGV[8]
local threshold, cooldown = tonumber(ARGV[9]), tonumber(ARGV[10])
local cost, bday, bplan, plan = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), ARGV[14]

local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
if cool > now then return {-3, cool - now} end

local failures = tonumber(redis.call('HGET', p .. 'brk', 'f') or '0')
local probe = 0
if threshold > 0 and failures >= threshold then
  local u = tonumber(redis.call('HGET', p .. 'brk', 'u') or '0')
  if u > now then return {-1, u - now} end
  probe = 1
end

prune()
local count = redis.call('ZCARD', p .. 'w')
local total = tonumber(redis.call('GET', p .. 'wtot') or '0')
if (rpm > 0 and count + 1 > rpm) or (tpm > 0 and total + tokens > tpm) then
  local first = redis.call('ZRANGE', p .. 'w', 0, 0, 'WITHSCORES')
  local wait = poll
  if #first > 0 then
    local leaves = tonumber(first[2])
    -- Only a stamped entry leaves at a known time; in-flight ones are polled.
    if leaves <= now + window then wait = math.max(leaves - now, 1) end
  end
  return {0, wait, count, total}
end

local day = math.floor(now / 86400000000)
local spent = 0
if bday > 0 or bplan > 0 then
  spent = tonumber(redis.call('GET', p .. 'b:' .. day) or '0')
  if bday > 0 and spent + cost > bday then return {-2, spent, bday, 1} end
  if bplan > 0 and plan ~= '' then
    local ps = tonumber(redis.call('GET', p .. 'bp:' .. day .. ':' .. plan) or '0')
    if ps + cost > bplan then return {-2, ps, bplan, 2} end
  end
  if cost > 0 then
    spent = redis.call('INCRBY', p .. 'b:' .. day, cost)
    redis.call('EXPIRE', p .. 'b:' .. day, 172800)
    if plan ~= '' then
      redis.call('INCRBY', p .. 'bp:' .. day .. ':' .. plan, cost)
      redis.call('EXPIRE', p .. 'bp:' .. day .. ':' .. plan, 172800)
    end
  end
end

if probe == 1 then
  -- Half open: this call is the team's probe; the others fail fast meanwhile.
  redis.call('HSET', p .. 'brk', 'u', now + cooldown)
end

local ttl = math.ceil((window + inflight) / 1000) + 1000
redis.call('ZADD', p .. 'w', now + inflight + window, id)
redis.call('HSET', p .. 'wt', id, tokens)
total = redis.call('INCRBY', p .. 'wtot', tokens)
for _, k in ipairs({'w', 'wt', 'wtot'}) do redis.call('PEXPIRE', p .. k, ttl) end
redis.call('ZADD', p .. 'peers', now, member)
redis.call('ZREMRANGEBYSCORE', p .. 'peers', '-inf', now - 2 * window - inflight)
redis.call('PEXPIRE', p .. 'peers', ttl + math.ceil(window / 1000))
return {1, count + 1, total, redis.call('ZCARD', p .. 'peers'), spent, day}
"""

# The server has seen request ARGV[1]: its window starts now. ARGV: id, window_us.
STAMP = """
local p = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if redis.call('ZSCORE', p .. 'w', ARGV[1]) then
  redis.call('ZADD', p .. 'w', 'XX', now + tonumber(ARGV[2]), ARGV[1])
end
return 1
"""

# Settle an attempt. ARGV: id, sent (0/1), tokens (-1 = keep the estimate),
#   window_us, cost_reserved_us, cost_actual_us, day_admitted, plan_tag,
#   health (s/f/n), breaker_threshold, breaker_cooldown_us
# Not sent: the request leaves the window and its budget is refunded.
SETTLE = _PRELUDE + """
local id, sent, tokens, window = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])
local reserved, actual, day, plan = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], ARGV[8]
local health, threshold, cooldown = ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
prune()
local old = tonumber(redis.call('HGET', p .. 'wt', id) or '-1')
if old >= 0 then
  if not sent then
    redis.call('ZREM', p .. 'w', id)
    redis.call('HDEL', p .. 'wt', id)
    redis.call('DECRBY', p .. 'wtot', old)
  else
    local score = tonumber(redis.call('ZSCORE', p .. 'w', id))
    -- Never stamped (the send failed midway): its window starts now at the latest.
    if score > now + window then redis.call('ZADD', p .. 'w', 'XX', now + window, id) end
    if tokens >= 0 and tokens ~= old then
      redis.call('HSET', p .. 'wt', id, tokens)
      redis.call('INCRBY', p .. 'wtot', tokens - old)
    end
  end
end
local delta = actual - reserved
if delta ~= 0 and day ~= '0' then
  redis.call('INCRBY', p .. 'b:' .. day, delta)
  redis.call('EXPIRE', p .. 'b:' .. day, 172800)
  if plan ~= '' then
    redis.call('INCRBY', p .. 'bp:' .. day .. ':' .. plan, delta)
    redis.call('EXPIRE', p .. 'bp:' .. day .. ':' .. plan, 172800)
  end
end
if health == 's' then
  redis.call('DEL', p .. 'brk')
elseif health == 'f' and threshold > 0 then
  local f = redis.call('HINCRBY', p .. 'brk', 'f', 1)
  if f >= threshold then
    redis.call('HSET', p .. 'brk', 'u', now + cooldown)
    if f == threshold then redis.call('HINCRBY', p .. 'brk', 'n', 1) end
  end
  redis.call('PEXPIRE', p .. 'brk', math.ceil(cooldown / 1000) * 4 + 600000)
end
return 1
"""

# A 429: nobody sends until ARGV[1] microseconds from now (the later end wins).
PAUSE = """
local p = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', p .. 'cool') or '0')
if until_ > cur then
  redis.call('SET', p .. 'cool', until_, 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1)
end
return 1
"""

# The team's view for `perfd stats`. Returns {requests, tokens, peers, spent_day, breaker_failures, cooldown_us}.
VIEW = _PRELUDE + """
local window, inflight = tonumber(ARGV[1]), tonumber(ARGV[2])
prune()
redis.call('ZREMRANGEBYSCORE', p .. 'peers', '-inf', now - 2 * window - inflight)
local day = math.floor(now / 86400000000)
local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
return {redis.call('ZCARD', p .. 'w'), tonumber(redis.call('GET', p .. 'wtot') or '0'),
        redis.call('ZCARD', p .. 'peers'), tonumber(redis.call('GET', p .. 'b:' .. day) or '0'),
        tonumber(redis.call('HGET', p .. 'brk', 'f') or '0'), math.max(cool - now, 0)}
"""
