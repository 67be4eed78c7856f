-- portico rate limits in Redis: the arithmetic of src/ratelimit/algo.c on
-- one key, with Redis's clock (TIME, in microseconds) so every instance
-- agrees. Exact: every value stays below 2^53 (validation bounds
-- (limit + burst) x window), and divisions are corrected to exact floors.
-- KEYS[1]  the counter (a hash), ARGV: op ("d" decide, "r" refund, "t" take),
-- algorithm ("tb" token bucket / GCRA, "sw" sliding window), limit, burst,
-- window (us), n, charged (us, refund only), and optionally now (us; tests).
-- Returns {allowed (decide) or taken (take), remaining, reset us, retry us
-- (-1: never), now us}.
local op, algo = ARGV[1], ARGV[2]
local L, B, W = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local key = KEYS[1]
local now
if ARGV[8] and ARGV[8] ~= '' then
  now = tonumber(ARGV[8]) -- a given clock: only the equivalence test passes one
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function div(a, b)
  local q = math.floor(a / b)
  if q * b > a then q = q - 1 end
  if (q + 1) * b <= a then q = q + 1 end
  return q
end
local function cdiv(a, b)
  local q = div(a, b)
  if q * b < a then q = q + 1 end
  return q
end
local function s(v) return string.format('%.0f', v) end

local ok, remaining, reset, retry = 0, 0, 0, 0
if algo == 'tb' and op == 'r' then
  -- Like pt_rl_refund: no refill, the stamp stays; a key never seen stays so.
  local full = (L + B) * W
  local level = tonumber(redis.call('HGET', key, 'l'))
  if level ~= nil then
    redis.call('HSET', key, 'l', s(math.min(full, level + n * W)))
  end
  return {0, 0, 0, 0, now}
elseif algo == 'tb' then
  local full = (L + B) * W
  local st = redis.call('HMGET', key, 'l', 't')
  local level, stamp = tonumber(st[1]), tonumber(st[2])
  if level == nil or stamp == nil then
    level, stamp = full, now
  elseif now > stamp then
    if now - stamp >= cdiv(full - level, L) then level = full else level = level + (now - stamp) * L end
    stamp = now
  end
  if op == 't' then
    ok = math.min(div(level, W), n)
    level = level - ok * W
    if ok == 0 then
      if W > full then retry = -1 else retry = cdiv(W - level, L) end
    end
  else
    local need = n * W
    if level >= need then
      ok = 1
      level = level - need
    elseif need > full then
      retry = -1
    else
      retry = cdiv(need - level, L)
    end
  end
  remaining = div(level, W)
  reset = cdiv(full - level, L)
  redis.call('HSET', key, 'l', s(level), 't', s(stamp))
  redis.call('PEXPIRE', key, s(div(reset, 1000) + 1000))
elseif algo == 'sw' and op == 'r' then
  -- Like pt_rl_refund: no roll; only a charge of the window the state is
  -- in is given back.
  local st = redis.call('HMGET', key, 's', 'c')
  local ws, c = tonumber(st[1]), tonumber(st[2])
  local ch = tonumber(ARGV[7])
  if ws ~= nil and c ~= nil and ch - (ch - div(ch, W) * W) == ws then
    redis.call('HSET', key, 'c', s(math.max(0, c - n)))
  end
  return {0, 0, 0, 0, now}
else
  local st = redis.call('HMGET', key, 's', 'p', 'c')
  local ws, p, c = tonumber(st[1]), tonumber(st[2]) or 0, tonumber(st[3]) or 0
  local at = now
  if ws ~= nil and at < ws then at = ws end
  local start = at - (at - div(at, W) * W)
  if ws == nil or start >= ws + 2 * W then
    p, c = 0, 0
  elseif start ~= ws then
    p, c = c, 0
  end
  local elapsed = at - start
  local cap = L * W
  local used = p * (W - elapsed) + c * W
  if op == 't' then
    local avail = 0
    if used < cap then avail = div(cap - used, W) end
    ok = math.min(avail, n)
    c = c + ok
    used = used + ok * W
  end
  if op == 'd' or (op == 't' and ok == 0) then
    local need = W
    if op == 'd' then need = n * W end
    if op == 'd' and used + need <= cap then
      ok = 1
      c = c + n
      used = used + need
    elseif need > cap then
      retry = -1
    else
      local left = W - elapsed
      retry = nil
      if p > 0 then
        local tt = cdiv(used + need - cap, p)
        if tt < left then retry = tt end
      end
      if retry == nil then
        local e = 0
        if c * W + need > cap then e = cdiv(c * W + need - cap, c) end
        if e < W then retry = left + e else retry = left + W end
      end
    end
  end
  if used < cap then remaining = div(cap - used, W) end
  reset = W - elapsed
  redis.call('HSET', key, 's', s(start), 'p', s(p), 'c', s(c))
  redis.call('PEXPIRE', key, s(div(2 * W - elapsed, 1000) + 1000))
end
return {ok, remaining, reset, retry, now}
