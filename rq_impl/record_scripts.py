"""The Lua scripts behind ``rq_impl.records``: RQ 3.0's per-job records written in one call each.

- ``CLAIM``: an idle worker's claim and start of the job its wait moved into its hold list;
- ``FINISH``: a job's success, with what it held back, and the claim and start of the next job;
- ``CLAIM_NEXT``: a claim and start without a success (a success held for a batch).

A claim is idempotent per stamp: the same call sent again returns the job the first run started.
The scripts are written with RQ's default prefix ``rq:``; ``keyed`` puts their keys under
``RQ_KEY_PREFIX`` where RQ's own code puts them.
"""

from __future__ import annotations

from rq.defaults import RQ_KEY_PREFIX

from shared.store import PUT_ROW_LUA

#: The queue, job and worker key prefixes the scripts write under: RQ's own, for ``RQ_KEY_PREFIX``.
KEY_PREFIXES = (f"{RQ_KEY_PREFIX}:queue:", f"{RQ_KEY_PREFIX}:job:", f"{RQ_KEY_PREFIX}:worker:")


def keyed(lua: str) -> str:
    """``lua`` (its keys written as ``'rq:...``) with its keys under ``RQ_KEY_PREFIX``."""
    return lua if RQ_KEY_PREFIX == "rq" else lua.replace("'rq:", f"'{RQ_KEY_PREFIX}:")


#: Lua: start job ``id`` for the worker (see ``Stamp.args`` for what ``s`` holds), registered, as
#: RQ does, under the queue its hash names as its origin. Returns nil if the job's hash is gone
#: or has no data (RQ's fetch skips such an id), else {job hash as read, TTL}.
_START_FUNCTION = """
local function read(h, s)
    local timeout, data, origin = nil, nil, ''
    for k = 1, #h, 2 do
        if h[k] == 'timeout' then timeout = tonumber(h[k + 1]) end
        if h[k] == 'data' then data = true end
        if h[k] == 'origin' then origin = h[k + 1] end
    end
    if not timeout or timeout <= 0 then timeout = s.fallback end
    return data, origin, math.floor(timeout) + s.grace
end

local function start(id, s)
    local jkey = 'rq:job:' .. id
    local h = redis.call('HGETALL', jkey)
    local data, origin, ttl = read(h, s)
    if not data then return nil end
    local composite = id .. ':' .. s.eid
    local ekey = 'rq:execution:' .. composite
    local wexec = s.wkey .. ':executions'
    redis.call('HSET', ekey, 'id', s.eid, 'job_id', id, 'created_at', s.ts, 'last_heartbeat', s.ts,
        'worker_name', s.wname)
    redis.call('EXPIRE', ekey, ttl)
    redis.call('ZADD', 'rq:executions:' .. id, s.now + ttl + 60, s.eid)
    redis.call('EXPIRE', 'rq:executions:' .. id, ttl + 60)
    redis.call('ZADD', 'rq:wip:' .. origin, s.now + ttl, composite)
    redis.call('SADD', wexec, composite)
    redis.call('EXPIRE', wexec, ttl)
    redis.call('HSET', s.wkey, 'state', 'busy', 'last_heartbeat', s.iso)
    redis.call('EXPIRE', s.wkey, ttl)
    redis.call('HSET', jkey, 'last_heartbeat', s.iso, 'status', 'started', 'started_at', s.iso,
        'worker_name', s.wname)
    redis.call('PERSIST', jkey)
    return {h, ttl}
end

local function stamp(at)
    return {wkey = ARGV[1], wname = ARGV[2], now = tonumber(ARGV[3]), eid = ARGV[at],
        iso = ARGV[at + 1], ts = ARGV[at + 2], grace = tonumber(ARGV[at + 3]),
        fallback = tonumber(ARGV[at + 4])}
end

-- The job a call with stamp ``s`` already started: the same call sent again (a round trip resent
-- after a lost connection, or after a WAIT that too few replicas answered) finds the job its first
-- run claimed in the worker's executions set, by the stamp's execution id (a uuid4, one per stamp).
local function claimed_before(s)
    local suffix = ':' .. s.eid
    for _, composite in ipairs(redis.call('SMEMBERS', s.wkey .. ':executions')) do
        if string.sub(composite, -#suffix) == suffix then
            local id = string.sub(composite, 1, -#suffix - 1)
            local h = redis.call('HGETALL', 'rq:job:' .. id)
            local _, origin, ttl = read(h, s)
            return {origin, id, h, ttl}
        end
    end
    return nil
end

-- ARGV[at]: the number of queues, then their names (priority order), then the stamp. Pops ids
-- off the first non-empty queue until one starts; returns {queue name, id, job hash, TTL} or nil.
-- Sent again with the same stamp, it returns the job it started the first time and pops nothing.
local function claim(at)
    local queues = tonumber(ARGV[at])
    if queues == 0 then return nil end
    local s = stamp(at + queues + 1)
    local again = claimed_before(s)
    if again then return again end
    for q = 1, queues do
        local name = ARGV[at + q]
        local id = redis.call('LPOP', 'rq:queue:' .. name)
        while id do
            local started = start(id, s)
            if started then return {name, id, started[1], started[2]} end
            id = redis.call('LPOP', 'rq:queue:' .. name)
        end
    end
    return nil
end
"""

#: ARGV: worker key, worker name, now (s), the worker's hold list, the queue's set of hold lists,
#: then ``claim``'s (one queue). Sent right behind the ``BLMOVE`` that moved a job into the hold
#: list (see ``rq_impl.prestart``): starts what the hold list has (what a broken connection left there
#: too: anything past the first goes back to the head of the queue), else claims from the queue.
CLAIM = keyed(
    _START_FUNCTION
    + """
local hold, name = ARGV[4], ARGV[7]
redis.call('SADD', ARGV[5], hold)
local s = stamp(7 + tonumber(ARGV[6]))
local id = redis.call('LPOP', hold)
while id do
    local started = start(id, s)
    if started then
        while redis.call('LMOVE', hold, 'rq:queue:' .. name, 'RIGHT', 'LEFT') do end
        return {name, id, started[1], started[2]}
    end
    id = redis.call('LPOP', hold)
end
return claim(6)
"""
)

#: ARGV: worker key, worker name, now (s), queue name, job id, execution id, started_at and
#: ended_at (ISO), execution start and end (epoch s), seconds worked, result TTL (> 0), return
#: value (base64 of the serialized value, '' for None), '1' if the job has dependencies ('' if
#: not: their set, which RQ gives the result TTL too, exists only then), number of result rows
#: and the rows (shared.store.PUT_ROW_LUA), number of held-back commands and each as its length then its
#: words, number of queues to claim from and their names (priority order), the stamp (5 values)
#: if any. The job's outputs go first: a command that fails stops the script before the job is
#: recorded finished, and the job fails and is retried as it would have if the task had raised.
#: Returns {parent} or {parent, queue name, job id, job hash as read, TTL} when it claimed and
#: started one; ``parent`` is '' if the job has no dependents, else its status as it was before
#: this script wrote ``finished``: RQ reads it there (``handle_job_success`` moves dependents
#: before it writes the status), so a job cancelled or stopped while it ran holds them back.
FINISH = keyed(
    _START_FUNCTION
    + """
local wkey, wname, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local qname, id, eid = ARGV[4], ARGV[5], ARGV[6]
local ttl = tonumber(ARGV[12])
local rows = tonumber(ARGV[15])
local i = 16
for _ = 1, rows do
"""
    + PUT_ROW_LUA
    + """
    i = i + 4
end
local commands = tonumber(ARGV[i])
i = i + 1
for _ = 1, commands do
    local words = tonumber(ARGV[i])
    redis.call(unpack(ARGV, i + 1, i + words))
    i = i + words + 1
end
local jkey = 'rq:job:' .. id
local before = redis.call('HGET', jkey, 'status') or 'started'
redis.call('HINCRBY', wkey, 'successful_job_count', 1)
redis.call('HINCRBYFLOAT', wkey, 'total_working_time', ARGV[11])
redis.call('HSET', jkey, 'status', 'finished', 'started_at', ARGV[7], 'ended_at', ARGV[8],
    'last_heartbeat', ARGV[8])
local rkey = 'rq:results:' .. id
local result = {'type', 1, 'worker_name', wname, 'execution_id', eid, 'execution_started_at', ARGV[9],
    'execution_ended_at', ARGV[10]}
if ARGV[13] ~= '' then
    table.insert(result, 'return_value')
    table.insert(result, ARGV[13])
end
redis.call('XADD', rkey, 'MAXLEN', '~', 10, '*', unpack(result))
redis.call('EXPIRE', rkey, ttl)
redis.call('ZADD', 'rq:finished:' .. qname, now + ttl, id)
local dependents = redis.call('EXISTS', jkey .. ':dependents')
redis.call('EXPIRE', jkey, ttl)
local parent = ''
if dependents == 1 then
    parent = before
    redis.call('EXPIRE', jkey .. ':dependents', ttl)
end
if ARGV[14] ~= '' then redis.call('EXPIRE', 'rq:job::' .. id .. ':dependencies', ttl) end
local composite = id .. ':' .. eid
redis.call('DEL', 'rq:execution:' .. composite)
redis.call('ZREM', 'rq:wip:' .. qname, composite)
redis.call('ZREM', 'rq:executions:' .. id, eid)
redis.call('SREM', wkey .. ':executions', composite)
if redis.call('EXISTS', 'rq:suspended') == 0 then
    local claimed = claim(i)
    if claimed then return {parent, unpack(claimed)} end
end
redis.call('HSET', wkey, 'state', 'idle')
return {parent}
"""
)


#: ARGV: worker key, worker name, now (s), then ``claim``'s. Claims and starts the next job of the
#: queues without finishing one (``rq_impl.store_batch``: a success held until its rows are
#: stored); nothing while ``rq suspend`` is in force.
CLAIM_NEXT = keyed(
    _START_FUNCTION
    + """
if redis.call('EXISTS', 'rq:suspended') == 1 then return nil end
return claim(4)
"""
)
