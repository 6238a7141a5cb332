-- The ledger's state transitions. Each one checks the state it expects, writes the
-- job hash and appends the state event to the job's stream and the global stream in
-- one atomic step. The prelude below is shared by all of them (see ledger.py).
--@prelude
local P = 'ps:'
local function jkey(id) return P .. 'job:' .. id end
local function emit(id, ev)
  ev.id = id
  local d = cjson.encode(ev)
  redis.call('XADD', P .. 'ev:' .. id, '*', 'd', d)
  redis.call('XADD', P .. 'ev', 'MAXLEN', '~', 100000, '*', 'd', d)
end
local function num(v) if v then return tonumber(v) end return nil end
local function record_attempt(id, state, err, now)
  local h = redis.call('HMGET', jkey(id), 'attempt', 'started_at', 'prompt_tokens',
    'completion_tokens', 'tokens_per_second', 'worker')
  local rec = {number = num(h[1]), state = state, started_at = num(h[2]),
    finished_at = num(now), prompt_tokens = num(h[3]) or 0,
    completion_tokens = num(h[4]) or 0, tokens_per_second = num(h[5])}
  if h[6] then rec.worker = h[6] end
  if err and err ~= '' then rec.error = err end
  redis.call('RPUSH', jkey(id) .. ':attempts', cjson.encode(rec))
end
local function enqueue(id, rank, resumed)
  local qseq = redis.call('INCR', P .. 'seq')
  -- A resumed attempt (its worker was lost) goes ahead of the jobs of its rank that have
  -- not started yet, as its Celery message does (celery_app.RESUME_STEP).
  local front = resumed and 500000000000 or 0
  redis.call('ZADD', P .. 'queue', rank * 1000000000000 - front + qseq, id)
end
-- A cancel asked for while the attempt ran: the job ends cancelled (never requeued).
local function end_cancelled(id, attempt, now)
  local err = 'cancelled by the user'
  redis.call('HSET', jkey(id), 'state', 'cancelled', 'finished_at', now, 'error', err)
  record_attempt(id, 'cancelled', err, now)
  emit(id, {type = 'state', state = 'cancelled', attempt = num(attempt), error = err, t = num(now)})
  return 'cancelled'
end
-- The job fails for good with `err` (its last attempt is recorded already).
local function end_failed(id, attempt, err, now)
  redis.call('HSET', jkey(id), 'state', 'failed', 'finished_at', now, 'error', err)
  emit(id, {type = 'state', state = 'failed', attempt = num(attempt), error = err, t = num(now)})
  return 'failed'
end
local RESET = {'started_at', 'finished_at', 'error', 'prompt_tokens', 'completion_tokens',
  'tokens_per_second', 'worker', 'cancel', 'finish_reason', 'retry_at', 'retry_note'}
--@submit  ARGV: id, spec_json, rank, now, origin_json ('' for none)
local id, rank, now = ARGV[1], tonumber(ARGV[3]), ARGV[4]
if redis.call('EXISTS', jkey(id)) == 1 then return 0 end
local seq = redis.call('INCR', P .. 'seq')
redis.call('HSET', jkey(id), 'spec', ARGV[2], 'state', 'queued', 'attempt', 1, 'seq', seq,
  'rank', rank, 'created_at', now, 'lost', 0)
if ARGV[5] and ARGV[5] ~= '' then redis.call('HSET', jkey(id), 'origin', ARGV[5]) end
redis.call('ZADD', P .. 'jobs', seq, id)
enqueue(id, rank)
emit(id, {type = 'state', state = 'queued', attempt = 1, t = num(now)})
return seq
--@claim  ARGV: id, attempt, worker, now
local id, now = ARGV[1], ARGV[4]
local h = redis.call('HMGET', jkey(id), 'state', 'attempt')
if not h[1] then return 'missing' end
if tonumber(h[2]) ~= tonumber(ARGV[2]) then return 'stale' end
if h[1] ~= 'queued' then return h[1] end
redis.call('HSET', jkey(id), 'state', 'loading', 'started_at', now, 'worker', ARGV[3])
redis.call('ZREM', P .. 'queue', id)
redis.call('SADD', P .. 'running', id)
emit(id, {type = 'state', state = 'loading', attempt = num(h[2]), worker = ARGV[3], t = num(now)})
return 'ok'
--@running  ARGV: id, attempt, prompt_tokens, now
local id = ARGV[1]
local h = redis.call('HMGET', jkey(id), 'state', 'attempt')
if tonumber(h[2]) ~= tonumber(ARGV[2]) or h[1] ~= 'loading' then return 'stale' end
redis.call('HSET', jkey(id), 'state', 'running', 'prompt_tokens', ARGV[3])
emit(id, {type = 'state', state = 'running', attempt = num(h[2]), t = num(ARGV[4])})
return 'ok'
--@finish  ARGV: id, attempt, state, error, now, prompt_tokens, completion_tokens, tps,
--         finish_reason ('' for none)
local id, state, err, now = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local h = redis.call('HMGET', jkey(id), 'state', 'attempt')
if tonumber(h[2]) ~= tonumber(ARGV[2]) then return 'stale' end
if h[1] ~= 'loading' and h[1] ~= 'running' then return h[1] end
redis.call('HSET', jkey(id), 'state', state, 'finished_at', now, 'prompt_tokens', ARGV[6],
  'completion_tokens', ARGV[7], 'tokens_per_second', ARGV[8])
if err ~= '' then redis.call('HSET', jkey(id), 'error', err) end
if ARGV[9] and ARGV[9] ~= '' then redis.call('HSET', jkey(id), 'finish_reason', ARGV[9]) end
redis.call('SREM', P .. 'running', id)
record_attempt(id, state, err, now)
emit(id, {type = 'state', state = state, attempt = num(h[2]), error = err, t = num(now)})
return 'ok'
--@cancel  ARGV: id, now
local id, now = ARGV[1], ARGV[2]
local h = redis.call('HMGET', jkey(id), 'state', 'attempt')
if not h[1] then return 'missing' end
if h[1] == 'queued' then
  local err = 'cancelled before it started'
  redis.call('HSET', jkey(id), 'state', 'cancelled', 'finished_at', now, 'error', err)
  redis.call('ZREM', P .. 'queue', id)
  redis.call('ZREM', P .. 'scheduled', id)
  redis.call('HDEL', jkey(id), 'retry_at', 'retry_note')
  record_attempt(id, 'cancelled', err, now)
  emit(id, {type = 'state', state = 'cancelled', attempt = num(h[2]), error = err, t = num(now)})
  return 'cancelled'
end
if h[1] == 'loading' or h[1] == 'running' then
  redis.call('HSET', jkey(id), 'cancel', 1)
  redis.call('PUBLISH', P .. 'cancel', id)
  emit(id, {type = 'cancel_requested', attempt = num(h[2]), t = num(now)})
  return 'requested'
end
return h[1]
--@retry  ARGV: id, now
local id, now = ARGV[1], ARGV[2]
local h = redis.call('HMGET', jkey(id), 'state', 'attempt', 'rank')
if not h[1] then return 'missing' end
if h[1] ~= 'succeeded' and h[1] ~= 'failed' and h[1] ~= 'cancelled' then return h[1] end
local attempt = tonumber(h[2]) + 1
redis.call('HDEL', jkey(id), unpack(RESET))
redis.call('HSET', jkey(id), 'state', 'queued', 'attempt', attempt, 'lost', 0, 'tries', 0)
enqueue(id, tonumber(h[3]))
emit(id, {type = 'state', state = 'queued', attempt = attempt, t = num(now)})
return attempt
--@lost  ARGV: id, attempt, now, max_attempts, reason, counts (1: a lost worker, 0: a clean hand-back)
-- A cancel asked for while the attempt ran sticks: the job ends cancelled, never requeued.
local id, now, reason = ARGV[1], ARGV[3], ARGV[5]
local h = redis.call('HMGET', jkey(id), 'state', 'attempt', 'rank', 'cancel')
if tonumber(h[2]) ~= tonumber(ARGV[2]) then return 'stale' end
if h[1] ~= 'loading' and h[1] ~= 'running' then return 'stale' end
redis.call('SREM', P .. 'running', id)
if h[4] then return end_cancelled(id, h[2], now) end
local lost = redis.call('HINCRBY', jkey(id), 'lost', tonumber(ARGV[6]))
record_attempt(id, 'failed', reason, now)
if lost >= tonumber(ARGV[4]) then
  return end_failed(id, h[2], reason .. ' (' .. lost .. ' attempts lost; giving up)', now)
end
local attempt = tonumber(h[2]) + 1
redis.call('HDEL', jkey(id), unpack(RESET))
redis.call('HSET', jkey(id), 'state', 'queued', 'attempt', attempt)
enqueue(id, tonumber(h[3]), true)
emit(id, {type = 'state', state = 'queued', attempt = attempt, error = reason, t = num(now)})
return 'requeued'
--@publish  ARGV: id, attempt, offset, text, job_event, completion_tokens, tps, global_event
-- Every write of a running attempt, fenced: only the job's current attempt, while it is
-- loading or running, may add to its output, its stream, its counts and the global stream
-- ('' leaves a part out). A superseded attempt (its worker was judged lost and came back)
-- gets 'stale' and writes nothing; otherwise 'cancel' when a cancel was asked for, or 'ok'.
local id = ARGV[1]
local h = redis.call('HMGET', jkey(id), 'attempt', 'state', 'cancel')
if tonumber(h[1]) ~= tonumber(ARGV[2]) then return 'stale' end
if h[2] ~= 'loading' and h[2] ~= 'running' then return 'stale' end
if ARGV[4] ~= '' then
  redis.call('SETRANGE', jkey(id) .. ':out:' .. ARGV[2], tonumber(ARGV[3]), ARGV[4])
end
if ARGV[5] ~= '' then redis.call('XADD', P .. 'ev:' .. id, '*', 'd', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', jkey(id), 'completion_tokens', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', jkey(id), 'tokens_per_second', ARGV[7]) end
if ARGV[8] ~= '' then
  redis.call('XADD', P .. 'ev', 'MAXLEN', '~', 100000, '*', 'd', ARGV[8])
end
if h[3] then return 'cancel' end
return 'ok'
--@forget  ARGV: id
local id = ARGV[1]
local h = redis.call('HMGET', jkey(id), 'state', 'attempt')
if not h[1] then return 'missing' end
if h[1] ~= 'succeeded' and h[1] ~= 'failed' and h[1] ~= 'cancelled' then return h[1] end
for n = 1, tonumber(h[2]) do redis.call('DEL', jkey(id) .. ':out:' .. n) end
redis.call('DEL', jkey(id), jkey(id) .. ':attempts', P .. 'ev:' .. id)
redis.call('ZREM', P .. 'jobs', id)
redis.call('ZREM', P .. 'scheduled', id)
redis.call('XADD', P .. 'ev', 'MAXLEN', '~', 100000, '*', 'd', cjson.encode({type = 'forgotten', id = id}))
return 'ok'
--@defer  ARGV: id, attempt, now, due, reason, max_tries
-- A remote endpoint interrupted the attempt (rate limit, overload, lost connection): the
-- attempt ends failed with the reason, and the job waits, queued but outside the queue's
-- order, until `due`, when a reaper releases it (see release). After max_tries tries it
-- fails. A cancel asked for meanwhile sticks, as in 'lost'.
local id, now, due, reason = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local max_tries = tonumber(ARGV[6])
local h = redis.call('HMGET', jkey(id), 'state', 'attempt', 'rank', 'cancel')
if tonumber(h[2]) ~= tonumber(ARGV[2]) then return 'stale' end
if h[1] ~= 'loading' and h[1] ~= 'running' then return 'stale' end
redis.call('SREM', P .. 'running', id)
if h[4] then return end_cancelled(id, h[2], now) end
local tries = redis.call('HINCRBY', jkey(id), 'tries', 1)
record_attempt(id, 'failed', reason, now)
if tries >= max_tries then
  return end_failed(id, h[2], reason .. ' (gave up after ' .. tries .. ' tries)', now)
end
local attempt = tonumber(h[2]) + 1
redis.call('HDEL', jkey(id), unpack(RESET))
redis.call('HSET', jkey(id), 'state', 'queued', 'attempt', attempt, 'retry_at', due,
  'retry_note', reason, 'max_tries', max_tries)
redis.call('ZADD', P .. 'scheduled', tonumber(due), id)
emit(id, {type = 'state', state = 'queued', attempt = attempt, error = reason,
  retry_at = num(due), tries = tries, max_tries = max_tries, t = num(now)})
return 'deferred'
--@release  ARGV: now, limit
-- The waiting jobs whose time has come go back into the queue's order (ahead of the jobs
-- of their priority that have not started, as a resumed attempt does): {id, attempt, ...}.
local due = redis.call('ZRANGEBYSCORE', P .. 'scheduled', '-inf', ARGV[1], 'LIMIT', 0,
  tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'scheduled', id)
  local h = redis.call('HMGET', jkey(id), 'state', 'attempt', 'rank')
  if h[1] == 'queued' then
    redis.call('HDEL', jkey(id), 'retry_at')
    enqueue(id, tonumber(h[3]), true)
    emit(id, {type = 'state', state = 'queued', attempt = num(h[2]), t = num(ARGV[1])})
    table.insert(out, id)
    table.insert(out, h[2])
  end
end
return out
