/*
 * broker_redis.c - the broker on Redis: any number of daemons on any number of hosts.
 *
 * Same contract as broker.h describes (and the embedded SQLite backend implements); what
 * changes is where the state lives and how atomicity is bought: every state change of a job
 * happens inside one Lua script that touches one queue's keys only, so it is atomic, and a
 * crash of any client at any instant leaves every job in exactly one place.
 *
 * Why Lua over lists and sorted sets, not streams with consumer groups: a stream's pending
 * entries list gives at-least-once delivery, but nothing else we need - no priorities, no
 * delayed entries, no removal of one waiting job (revoke, purge, expiry, unique keys), no
 * concurrency or rate gate at fetch time, and reclaiming is by idle time (XAUTOCLAIM) rather
 * than by a lease the worker renews. Each of those would be a second structure kept in step
 * with the stream from the client, which is exactly the non-atomic bookkeeping that loses or
 * duplicates jobs in Celery's Redis transport. The proven designs (Asynq's lease zset, BullMQ's
 * scripts with ack-and-fetch-next, see shared/research/queues.md) are Lua on plain types; so is
 * this one.
 *
 * Redis Cluster: every script touches one queue's slot, with one exception: the rate limits of
 * job types (P:rates, P:rtat) are global keys read by the exchange script (and by the reaper while
 * jobs are parked by a limit), because a type's limit must hold across every queue it may be sent
 * to. The rest is not cluster-ready yet either: the
 * wake thread's BZPOPMIN spans the slots of several queues (it would need one blocking connection
 * per slot), queue lookups by id probe several slots, and hiredis 0.14 has no cluster client
 * (MOVED/ASK). Unique keys and caller-chosen ids are unique per queue for the slot's sake.
 *
 * ---------------------------------------------------------------------------------------------
 * Key layout (P = prefix, default "bp", set with the URL parameter prefix=NAME; q = queue name;
 * every per-queue key carries the hash tag {q}, so each script touches one cluster slot)
 *
 *   P:{q}:j:<id>       HASH   the job record (fields below); PEXPIRE result_ttl once final
 *   P:{q}:pending      ZSET   runnable jobs, score = (9 - priority) * 2^42 + seq: ZPOPMIN gives
 *                             the highest priority first, then enqueue order
 *   P:{q}:seq          STRING counter behind the pending score
 *   P:{q}:scheduled    ZSET   SCHEDULED jobs (eta), score = due ms
 *   P:{q}:retry        ZSET   RETRY jobs (backoff), score = due ms
 *   P:{q}:active       ZSET   the lease set: STARTED jobs, score = lease deadline ms
 *   P:{q}:wl:<worker>  SET    ids leased by that worker in q (heartbeat renews these in bulk)
 *   P:{q}:expires      ZSET   waiting jobs with an `expires`, score = expires ms
 *   P:{q}:rvk          SET    STARTED jobs flagged revoked (the worker learns at its heartbeat)
 *   P:{q}:done:<STATE> ZSET   finished jobs per final state, score = finished ms (stats, TTL)
 *   P:{q}:all          ZSET   every job record, score = created ms (listing newest first)
 *   P:{q}:u:<key>      STRING unique key -> id of the live job holding it
 *   P:{q}:marker       ZSET   wake-up marker, one member "w": "work may be waiting in q"
 *   P:{q}:wn:<worker>  ZSET   wake-ups for one worker: "p" (re-arm), "r" (a job was revoked)
 *   P:{q}:meta         HASH   gc = the queue's cluster-wide cap on leased jobs (absent: none)
 *   P:{q}:rlp:<type>   ZSET   PENDING jobs of <type> parked by its rate limit (score = their
 *                             pending score, so they go back to their place); the job's hash
 *                             says held=<type>
 *   P:{q}:rlq          ZSET   parked types -> when their next token comes
 *   P:{q}:events       STREAM capped (~BROKER_EVENTS_MAX) job events, written by the scripts
 *   P:queues           SET    every queue name ever used (for reap, stats, purge, lookups)
 *   P:workers          ZSET   worker id -> last heartbeat ms
 *   P:worker:<id>      HASH   registry entry: host, pid, queues, started, hb, stats (TTL);
 *                             offline, why once the reaper declared it lost
 *   P:workers:off      ZSET   workers declared lost -> when (listed as OFFLINE for an hour)
 *   P:events           STREAM capped worker events (online, heartbeat, offline)
 *   P:rates            HASH   job type -> "<interval ms> <tolerance ms> <rate text>"
 *   P:rtat             HASH   job type -> theoretical arrival time of its next token (GCRA)
 *   P:done             pub/sub channel, "<id> <STATE>" for every job reaching a final state
 *   P:control          pub/sub channel of inspect/control requests (control_redis.c), answered
 *                      on P:reply:<request id> lists
 *
 * Job hash fields: d = the job's spec, packed once at enqueue (type, queue, args, priority,
 * created, retry policy, eta, expires, soft limit, unique key, parent: length-prefixed, binary
 * safe) and handed back whole at lease time, so a lease reply is {id, d, attempts, crashes}
 * rather than a dozen fields (serialising replies is most of a script's cost); then the fields the
 * scripts read or write: st prio sc (pending score, kept so a reclaimed job goes back to its old
 * place) eta exp uk att cr w sa lu fin res err pr pm rv (revoke flag).
 *
 * Job ids are global but the keys are per queue, so an operation given only an id (get, revoke,
 * lease_one, an ack from another process) first finds the queue: the ids this handle leased
 * are remembered, otherwise one pipelined probe over the known queues finds it. Unique keys
 * and caller-chosen ids are therefore checked atomically within a queue; a job type always goes
 * to the same queue unless overridden, which makes that the useful scope (and the only one a
 * Redis Cluster could enforce atomically).
 *
 * ---------------------------------------------------------------------------------------------
 * Scripts (each is one atomic step; all of them take KEYS[1] = P:{q}:pending for routing and
 * ARGV = prefix "P:{q}:", now, result_ttl, channel, "return final records" ('1'/'0'), ...)
 *
 *   enqueue    n jobs: refuse a taken id or a held unique key (returning the holder), SET the
 *              unique key, HSET the record, ZADD pending (or scheduled when eta > now) and
 *              expires, ZADD all, and poke the marker once.
 *   exchange   ack N jobs of this worker (final: record result/error, ZADD done, PEXPIRE,
 *              release the unique key, PUBLISH; RETRY: into the retry zset; a STARTED notice only
 *              makes an event), promote due scheduled/retry jobs, expire waiting jobs past
 *              `expires`, put parked jobs whose type has tokens again back in pending, then lease
 *              up to n - fewer when the queue's cap (meta gc) leaves less room: ZPOPMIN pending,
 *              and for each job take a token of its type's rate limit (a job without one is
 *              parked in rlp:<type>, without counting against n), attempts+1, STARTED, ZADD
 *              active <now+lease>, SADD wl. Leaves the marker set when work someone can take
 *              remains (the next idle worker wakes - a relay, not a stampede; not when the queue
 *              is at its cap: a finishing job sets it then), and pokes this worker's wn key when
 *              it came back short and its wake thread was not watching the marker.
 *   heartbeat  ZADD XX the lease deadline of every id in the worker's wl set (one command),
 *              store progress, return the worker's running ids that were revoked, each with its
 *              flag ('2': revoked with terminate).
 *   reap       reclaim the leases of workers declared dead and every expired lease: crash+1,
 *              back to pending at its old place, or DEAD after max_crashes (REVOKED if it had
 *              been revoked); promote due jobs; expire waiting ones; purge finished records
 *              past result_ttl. Safe to run from every daemon at once.
 *   release    graceful worker stop: its leases go back to pending without a crash.
 *   revoke     waiting -> REVOKED at once; STARTED -> flag (terminate or not) + a wake-up for
 *              its worker.
 *   lease_one  lease one given job if it is runnable now (a rate limit does not hold it back:
 *              `run --wait` runs the one job it was asked for).
 *   purge      delete waiting jobs (parked ones too), in batches.
 *   worker_beat / worker_gone  the registry entry and its worker-online / heartbeat / offline
 *              event (these two stand alone, on global keys).
 * Every queue script ends by appending its events to P:{q}:events: one entry per kind, the job
 * ids space-separated, so a batch of 32 acks costs one XADD. Numbers handed to redis.call are
 * passed as text: Redis formats a Lua number with printf("%.17g") on every call, which was the
 * largest cost of the exchange before.
 * Stats, listing, limits, events (XREAD over the streams) and next_due (which also reports the
 * next token of a parked type) are read-only and run as plain or pipelined commands.
 *
 * ---------------------------------------------------------------------------------------------
 * Waking (subscribe / wake_fd / drain_wake)
 *
 * BROKER_WAKE_WORK: a background thread with its own connection blocks in BZPOPMIN on the
 * marker of each queue this worker is hungry for (its last exchange got fewer jobs than it
 * asked) plus its own wn keys, and makes an eventfd readable when it pops something. Why a
 * marker ZSET and not pub/sub: a marker is state, not an event - a job enqueued while nobody
 * was listening (the worker was busy, or reconnecting after a Redis restart) still leaves the
 * marker behind, so no wake-up is ever lost, and BZPOPMIN hands it to exactly one blocked
 * worker instead of waking them all. Why the hunger rule: a busy worker must not swallow the
 * marker an idle one needs; if its thread pops a marker for a queue it is not hungry for, it
 * puts it back and stops watching that queue. The exchange script keeps the relay going: when
 * it leaves work in the queue it sets the marker again, so N idle workers wake one after the
 * other as long as there is work. Idle workers block; nobody polls.
 *
 * BROKER_WAKE_DONE: a second thread SUBSCRIBEs to P:done and makes the eventfd readable on
 * every message. Pub/sub is right here because the waiter re-reads the job's state after each
 * wake-up (and after subscribing), so a message missed while disconnected costs nothing but a
 * wake-up, which the thread gives anyway when its connection comes back.
 *
 * ---------------------------------------------------------------------------------------------
 * Connections: a small pool (BR_MAX_CONNS) so pool threads of a daemon do not queue behind one
 * socket, plus one per wake thread. All of them reconnect by themselves (redis_conn.c).
 * Time: scores use the caller's wall clock (util_now_ms), as the SQLite backend does; hosts that
 * share a Redis must keep their clocks in sync (NTP), as with any lease-based queue.
 */
#include "broker.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "redis_conn.h"
#include "util.h"

#define BR_MAX_CONNS       8
#define BR_ENQUEUE_CHUNK   500   /* jobs per enqueue script call */
#define BR_REAP_LIMIT      1000  /* items per reap step per call */
#define BR_PURGE_LIMIT     5000  /* jobs deleted per purge call */
#define BR_BLOCK_MS        5000  /* wake thread's BZPOPMIN timeout (doubles as health check) */
#define BR_LIST_SCAN_MAX   20000 /* index entries a listing reads per queue at most */
#define BR_MAX_NAME        200
#define BR_OFFLINE_KEEP_MS 3600000 /* a lost worker stays listed as offline this long */

/* ============================================================================================
 * Lua
 * ========================================================================================== */

/* Shared by every script: the argument convention and the helpers. Each script's source is the
 * parts it names joined once at start-up (C caps literals at 4095 bytes): lua_head (arguments,
 * events, small helpers), lua_common (finishing, leasing, promotion, expiry), lua_limits (rate
 * limits), then its own body. */
#define BR_STR_(x) #x
#define BR_STR(x)  BR_STR_(x)

static const char lua_head[] =
    "local P = ARGV[1]\n"
    "local NOW = tonumber(ARGV[2])\n"
    "local TTL = tonumber(ARGV[3])\n"
    /* Numbers handed to redis.call are formatted with printf("%.17g") each time - the largest cost
       in these scripts once they ran per job. So the hot paths pass strings: NOWS (the caller's
       text), and the few computed values turned to text once per call. */
    "local NOWS, TTLS = ARGV[2], ARGV[3]\n"
    "local CHAN = ARGV[4]\n"
    "local WANT_FINAL = ARGV[5] == '1'\n"
    "local SPAN = 4398046511104\n"
    "local WAITSET = {PENDING = 'pending', SCHEDULED = 'scheduled', RETRY = 'retry'}\n"
    "local FINAL = {SUCCESS = true, FAILURE = true, REVOKED = true, EXPIRED = true, DEAD = true}\n"
    "local ANNOUNCE = {}\n"
    "local FINALS = {}\n"
    /* G: the global prefix ("bp:"), for the few keys outside a queue's slot (rate limits). The
       queue name is the hash tag of P. */
    "local G = P:sub(1, P:find(':{', 1, true))\n"
    "local QN = P:match(':{(.*)}:$') or ''\n"
    "local EVMAX = " BR_STR(
        BROKER_EVENTS_MAX) "\n"
                           "local function jk(id) return P .. 'j:' .. id end\n"
                           "local function wake() redis.call('ZADD', P .. 'marker', '0', 'w') end\n"
                           /* Many members in few commands: t is a flat argument list, sent `step`
                              at a time. */
                           "local function bulk(cmd, key, t, step)\n"
                           "  for i = 1, #t, step do\n"
                           "    redis.call(cmd, key, unpack(t, i, math.min(i + step - 1, #t)))\n"
                           "  end\n"
                           "end\n"
                           /* The job type is the first field of a packed spec "1|<len>:<type>...".
                            */
                           "local function spec_type(d)\n"
                           "  local n = d and d:match('^1|(%d+):')\n"
                           "  if not n then return nil end\n"
                           "  return d:sub(#n + 4, #n + 3 + tonumber(n))\n"
                           "end\n"
                           /* The set a waiting job sits in: a PENDING job held back by its rate
                              limit ('held' = its type) waits in rlp:<type>, not in pending. */
                           "local function waitkey(st, held)\n"
                           "  if st == 'PENDING' and held then return 'rlp:' .. held end\n"
                           "  return WAITSET[st]\n"
                           "end\n"
                           /* Events of this call, written to the queue's capped stream when it ends
                              (atomic with the changes). Kinds that happen to many jobs at once are
                              batched into one entry (ids and types space-separated); those that
                              carry an error get an entry each. */
                           "local EVB, EVK, EVS = {}, {}, {}\n"
                           "local EVW = ''\n"
                           "local function ev(kind, id, ty)\n"
                           "  local b = EVB[kind]\n"
                           "  if not b then\n"
                           "    b = {ids = {}, types = {}}\n"
                           "    EVB[kind] = b\n"
                           "    EVK[#EVK + 1] = kind\n"
                           "  end\n"
                           "  b.ids[#b.ids + 1] = id\n"
                           "  if ty then b.types[#b.types + 1] = ty end\n"
                           "end\n"
                           "local function ev1(kind, id, err, w)\n"
                           "  EVS[#EVS + 1] = {kind, id, err or '', w or EVW}\n"
                           "end\n"
                           "local function ev_flush()\n"
                           "  local key = P .. 'events'\n"
                           "  for _, kind in ipairs(EVK) do\n"
                           "    local b = EVB[kind]\n"
                           "    local f = {'XADD', key, 'MAXLEN', '~', EVMAX, '*', 'e', kind, 'q', "
                           "QN, 'ids',\n"
                           "               table.concat(b.ids, ' ')}\n"
                           "    if #b.types == #b.ids then\n"
                           "      f[#f + 1] = 'types'\n"
                           "      f[#f + 1] = table.concat(b.types, ' ')\n"
                           "    end\n"
                           "    if EVW ~= '' then\n"
                           "      f[#f + 1] = 'w'\n"
                           "      f[#f + 1] = EVW\n"
                           "    end\n"
                           "    redis.call(unpack(f))\n"
                           "  end\n"
                           "  for _, e in ipairs(EVS) do\n"
                           "    redis.call('XADD', key, 'MAXLEN', '~', EVMAX, '*', 'e', e[1], 'q', "
                           "QN, 'ids', e[2], 'err',\n"
                           "               e[3], 'w', e[4])\n"
                           "  end\n"
                           "end\n";

static const char lua_common[] =
    /* Finished jobs join their done:<STATE> index in one ZADD per state when the call ends. */
    "local DONE, DONEK = {}, {}\n"
    /* One message for every job this call finished, the finished indexes, and the call's events. */
    "local function announce()\n"
    "  for _, state in ipairs(DONEK) do bulk('ZADD', P .. 'done:' .. state, DONE[state], 2000) "
    "end\n"
    "  if #ANNOUNCE > 0 then redis.call('PUBLISH', CHAN, table.concat(ANNOUNCE, '\\n')) end\n"
    "  ev_flush()\n"
    "end\n"
    /* Back to PENDING. keep: reuse the score it had (a reclaimed job goes back to its old place);
       otherwise a new sequence number puts it behind its priority peers. */
    "local function to_pending(id, prio, keep)\n"
    "  local k = jk(id)\n"
    "  local sc = false\n"
    "  if keep then sc = redis.call('HGET', k, 'sc') end\n"
    "  if sc then\n"
    "    redis.call('HSET', k, 'st', 'PENDING')\n"
    "  else\n"
    "    sc = (9 - prio) * SPAN + redis.call('INCR', P .. 'seq')\n"
    "    redis.call('HSET', k, 'st', 'PENDING', 'sc', sc)\n"
    "  end\n"
    "  redis.call('ZADD', P .. 'pending', sc, id)\n"
    "end\n"
    "local EVNAME = {SUCCESS = 'job-succeeded', FAILURE = 'job-failed', REVOKED = 'job-revoked',\n"
    "                EXPIRED = 'job-expired', DEAD = 'job-dead'}\n"
    /* A final state: record (with the extra fields in `more`), index, expire the record later,
       free the unique key, announce, and - when the caller asked for them and does not know the
       job itself (`known`) - return the record: {id, spec, state, attempts, crashes, worker,
       started, finished, result, error}. */
    "local function finish(id, state, fin, uk, more, known)\n"
    "  local k = jk(id)\n"
    "  local f = {'st', state, 'fin', fin}\n"
    "  local err = nil\n"
    "  if more then\n"
    "    for i, v in ipairs(more) do\n"
    "      f[#f + 1] = v\n"
    "      if v == 'err' and i % 2 == 1 then err = more[i + 1] end\n"
    "    end\n"
    "  end\n"
    "  redis.call('HSET', k, unpack(f))\n"
    "  local z = DONE[state]\n"
    "  if not z then\n"
    "    z = {}\n"
    "    DONE[state] = z\n"
    "    DONEK[#DONEK + 1] = state\n"
    "  end\n"
    "  z[#z + 1] = fin\n"
    "  z[#z + 1] = id\n"
    "  if uk and uk ~= '' then\n"
    "    local u = P .. 'u:' .. uk\n"
    "    if redis.call('GET', u) == id then redis.call('DEL', u) end\n"
    "  end\n"
    "  if TTL > 0 then redis.call('PEXPIRE', k, TTLS) end\n"
    "  ANNOUNCE[#ANNOUNCE + 1] = id .. ' ' .. state\n"
    "  if state == 'SUCCESS' then ev('job-succeeded', id) else ev1(EVNAME[state], id, err) end\n"
    "  if WANT_FINAL and not known then\n"
    "    local h = redis.call('HMGET', k, 'd', 'att', 'cr', 'w', 'sa', 'res', 'err')\n"
    "    FINALS[#FINALS + 1] = {id, h[1] or '', state, h[2] or '0', h[3] or '0', h[4] or '',\n"
    "                           h[5] or '0', fin, h[6] or '', h[7] or ''}\n"
    "  end\n"
    "end\n"
    /* STARTED for worker w; h = HMGET st exp uk att d cr. With `act`/`wl` tables the lease-set
       updates are batched by the caller. Returns {id, spec, attempts, crashes}: the worker knows
       the rest (its id, now, the lease). */
    "local LUS = nil\n"
    "local function lease_job(id, k, w, lease, h, act, wl)\n"
    "  local att = (tonumber(h[4] or '0') or 0) + 1\n"
    "  if not LUS then LUS = string.format('%d', NOW + lease) end\n"
    "  redis.call('HSET', k, 'st', 'STARTED', 'w', w, 'sa', NOWS, 'lu', LUS, 'att', "
    "tostring(att))\n"
    "  if act then\n"
    "    act[#act + 1] = LUS\n"
    "    act[#act + 1] = id\n"
    "    wl[#wl + 1] = id\n"
    "  else\n"
    "    redis.call('ZADD', P .. 'active', LUS, id)\n"
    "    redis.call('SADD', P .. 'wl:' .. w, id)\n"
    "  end\n"
    "  ev('job-received', id, spec_type(h[5]) or '?')\n"
    "  return {id, h[5] or '', att, tonumber(h[6] or '0') or 0}\n"
    "end\n"
    "local function promote(set, limit)\n"
    "  local ids = redis.call('ZRANGEBYSCORE', P .. set, '-inf', NOW, 'LIMIT', 0, limit)\n"
    "  if #ids == 0 then return 0 end\n"
    "  bulk('ZREM', P .. set, ids, 1000)\n"
    "  for _, id in ipairs(ids) do\n"
    "    local h = redis.call('HMGET', jk(id), 'st', 'prio')\n"
    "    if h[1] == 'SCHEDULED' or h[1] == 'RETRY' then to_pending(id, tonumber(h[2]) or 5, false) "
    "end\n"
    "  end\n"
    "  return #ids\n"
    "end\n"
    "local function expire_job(id, k, uk)\n"
    "  redis.call('ZREM', P .. 'expires', id)\n"
    "  finish(id, 'EXPIRED', NOWS, uk, {'err', 'expired: not started before its expiry time'})\n"
    "end\n"
    "local function expire_due(limit)\n"
    "  local ids = redis.call('ZRANGEBYSCORE', P .. 'expires', '-inf', NOW, 'LIMIT', 0, limit)\n"
    "  local n = 0\n"
    "  for _, id in ipairs(ids) do\n"
    "    local k = jk(id)\n"
    "    local h = redis.call('HMGET', k, 'st', 'uk', 'held')\n"
    "    local set = h[1] and waitkey(h[1], h[3])\n"
    "    if set then\n"
    "      redis.call('ZREM', P .. set, id)\n"
    "      if h[3] then redis.call('HDEL', k, 'held') end\n"
    "      expire_job(id, k, h[2])\n"
    "      n = n + 1\n"
    "    else\n"
    "      redis.call('ZREM', P .. 'expires', id)\n"
    "    end\n"
    "  end\n"
    "  return n\n"
    "end\n";

static const char lua_limits[] =
    /* Rate limits per job type (generic cell rate algorithm, see broker_rate_schedule): G..'rates'
       maps a type to "<interval ms> <tolerance ms> <rate>", G..'rtat' to the theoretical arrival
       time of its next token. They are global keys, the one exception to "a script touches one
       queue's slot": a type's limit holds across all its queues. A job that finds no token is
       parked in P..'rlp:<type>' (score = its pending score, so it keeps its place) and P..'rlq'
       remembers, per parked type, when its next token comes. */
    "local RATES = nil\n"
    "local TAT, TAT_DIRTY = {}, {}\n"
    "local function rates_on()\n"
    "  return redis.call('EXISTS', G .. 'rates') == 1\n"
    "end\n"
    "local function rate_of(ty)\n"
    "  if RATES == nil then\n"
    "    RATES = {}\n"
    "    local kv = redis.call('HGETALL', G .. 'rates')\n"
    "    for i = 1, #kv, 2 do\n"
    "      local iv, tol = kv[i + 1]:match('^(%S+) (%S+)')\n"
    "      if iv then RATES[kv[i]] = {tonumber(iv), tonumber(tol)} end\n"
    "    end\n"
    "  end\n"
    "  return RATES[ty]\n"
    "end\n"
    "local function tat_of(ty)\n"
    "  local t = TAT[ty]\n"
    "  if t == nil then\n"
    "    t = tonumber(redis.call('HGET', G .. 'rtat', ty) or '0') or 0\n"
    "    TAT[ty] = t\n"
    "  end\n"
    "  if t < NOW then return NOW end\n"
    "  return t\n"
    "end\n"
    "local function take_token(ty, r)\n"
    "  local t = tat_of(ty)\n"
    "  if t - r[2] > NOW then return false end\n"
    "  TAT[ty] = t + r[1]\n"
    "  TAT_DIRTY[ty] = true\n"
    "  return true\n"
    "end\n"
    "local function save_tats()\n"
    "  for ty in pairs(TAT_DIRTY) do\n"
    "    redis.call('HSET', G .. 'rtat', ty, string.format('%.3f', TAT[ty]))\n"
    "  end\n"
    "end\n"
    /* May job id (spec d, pending score sc) start now? If its type is out of tokens it is parked.
     */
    "local function admit(id, k, d, sc)\n"
    "  local ty = spec_type(d)\n"
    "  local r = ty and rate_of(ty)\n"
    "  if not r or take_token(ty, r) then return true end\n"
    "  redis.call('ZADD', P .. 'rlp:' .. ty, sc, id)\n"
    "  redis.call('HSET', k, 'held', ty)\n"
    "  redis.call('ZADD', P .. 'rlq', tat_of(ty) - r[2], ty)\n"
    "  return false\n"
    "end\n"
    /* Parked jobs whose type has tokens again go back to pending at their old place: as many as
       there are tokens (all of them, up to limit, when the limit was removed). */
    "local function unpark(limit)\n"
    "  if redis.call('EXISTS', P .. 'rlq') == 0 then return 0 end\n"
    "  local moved_total = 0\n"
    "  for _, ty in ipairs(redis.call('ZRANGEBYSCORE', P .. 'rlq', '-inf', NOW, 'LIMIT', 0, 100)) "
    "do\n"
    "    local k = P .. 'rlp:' .. ty\n"
    "    local r = rate_of(ty)\n"
    "    local n = limit\n"
    "    if r then\n"
    "      n = math.floor((NOW + r[2] - tat_of(ty)) / r[1]) + 1\n"
    "      if n > limit then n = limit end\n"
    "      if n < 0 then n = 0 end\n"
    "    end\n"
    "    if n > 0 then\n"
    "      local moved = redis.call('ZPOPMIN', k, n)\n"
    "      for i = 1, #moved, 2 do\n"
    "        redis.call('HDEL', jk(moved[i]), 'held')\n"
    "        redis.call('ZADD', P .. 'pending', moved[i + 1], moved[i])\n"
    "      end\n"
    "      moved_total = moved_total + #moved / 2\n"
    "    end\n"
    "    if redis.call('EXISTS', k) == 0 then\n"
    "      redis.call('ZREM', P .. 'rlq', ty)\n"
    "    elseif r then\n"
    "      redis.call('ZADD', P .. 'rlq', tat_of(ty) + n * r[1] - r[2], ty)\n"
    "    else\n"
    "      redis.call('ZADD', P .. 'rlq', NOW, ty)\n"
    "    end\n"
    "  end\n"
    "  return moved_total\n"
    "end\n";

static const char lua_enqueue[] =
    /* ARGV 6: n, then 9 values per job: id, unique key, eta, expires, priority, created, attempts,
       crashes, spec. Returns per job "" (stored) or the id of the job that holds its id or unique
       key. */
    "local n = tonumber(ARGV[6])\n"
    "local out = {}\n"
    "local all, pend, sched, exps = {}, {}, {}, {}\n"
    "local seq = redis.call('INCRBY', P .. 'seq', n) - n\n"
    "for j = 1, n do\n"
    "  local i = 7 + (j - 1) * 9\n"
    "  local id, uk = ARGV[i], ARGV[i + 1]\n"
    "  local eta, exp, prio = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4]\n"
    "  local ct, att, cr, d = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]\n"
    "  local k = jk(id)\n"
    "  local holder = false\n"
    "  if redis.call('EXISTS', k) == 1 then\n"
    "    holder = id\n"
    "  elseif uk ~= '' then\n"
    "    holder = redis.call('GET', P .. 'u:' .. uk)\n"
    /* A holder that is gone or finished (a record lost to a flush, say) does not hold. */
    "    if holder then\n"
    "      local hs = redis.call('HGET', jk(holder), 'st')\n"
    "      if not hs or FINAL[hs] then holder = false end\n"
    "    end\n"
    "  end\n"
    "  if holder then\n"
    "    out[j] = holder\n"
    "  else\n"
    "    if uk ~= '' then redis.call('SET', P .. 'u:' .. uk, id) end\n"
    "    seq = seq + 1\n"
    "    local sc = string.format('%d', (9 - tonumber(prio)) * SPAN + seq)\n"
    "    local f = {'d', d, 'prio', prio, 'sc', sc, 'st', eta > NOW and 'SCHEDULED' or 'PENDING'}\n"
    "    if eta > 0 then\n"
    "      f[#f + 1] = 'eta'\n"
    "      f[#f + 1] = ARGV[i + 2]\n"
    "    end\n"
    "    if exp > 0 then\n"
    "      f[#f + 1] = 'exp'\n"
    "      f[#f + 1] = ARGV[i + 3]\n"
    "    end\n"
    "    if uk ~= '' then\n"
    "      f[#f + 1] = 'uk'\n"
    "      f[#f + 1] = uk\n"
    "    end\n"
    "    if att ~= '0' then\n"
    "      f[#f + 1] = 'att'\n"
    "      f[#f + 1] = att\n"
    "    end\n"
    "    if cr ~= '0' then\n"
    "      f[#f + 1] = 'cr'\n"
    "      f[#f + 1] = cr\n"
    "    end\n"
    "    redis.call('HSET', k, unpack(f))\n"
    "    all[#all + 1] = ct\n"
    "    all[#all + 1] = id\n"
    "    if eta > NOW then\n"
    "      sched[#sched + 1] = ARGV[i + 2]\n"
    "      sched[#sched + 1] = id\n"
    "    else\n"
    "      pend[#pend + 1] = sc\n"
    "      pend[#pend + 1] = id\n"
    "    end\n"
    "    if exp > 0 then\n"
    "      exps[#exps + 1] = ARGV[i + 3]\n"
    "      exps[#exps + 1] = id\n"
    "    end\n"
    "    ev('job-sent', id, spec_type(d) or '?')\n"
    "    out[j] = ''\n"
    "  end\n"
    "end\n"
    "bulk('ZADD', P .. 'all', all, 2000)\n"
    "bulk('ZADD', P .. 'pending', pend, 2000)\n"
    "bulk('ZADD', P .. 'scheduled', sched, 2000)\n"
    "bulk('ZADD', P .. 'expires', exps, 2000)\n"
    "if #all > 0 then wake() end\n"
    "announce()\n"
    "return out\n";

static const char lua_exchange_acks[] =
    /* ARGV 6: worker, lease ms, want, poke, n acks; then 7 per ack: id, state, result, error,
       retry_at, finished, known ('1': the caller holds the job and builds its final record).
       Returns {leased records {id, spec, attempts, crashes}, final records, ids of acks finished
       as asked}. */
    "local W, LEASE, WANT, POKE = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]\n"
    "local nacks = tonumber(ARGV[10])\n"
    "local wl = P .. 'wl:' .. W\n"
    "local a = 11\n"
    "local poke_marker = false\n"
    "local gone = {}\n"
    "local acked = {}\n"
    "EVW = W\n"
    "for x = 1, nacks do\n"
    "  local id, st, res, err = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]\n"
    "  local rat, fin, known = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6] == '1'\n"
    "  a = a + 7\n"
    "  if fin == '0' or fin == '' then fin = NOWS end\n"
    /* A STARTED notice only says a worker thread began running the job: an event, nothing else. */
    "  if st == 'STARTED' then\n"
    "    ev('job-started', id)\n"
    "  else\n"
    "    local k = jk(id)\n"
    "    local h = redis.call('HMGET', k, 'st', 'w', 'uk', 'rv', 'exp', 'att', 'prio')\n"
    /* Only the holder of the lease may finish the job: an ack for a lease that was reclaimed (and
       maybe given to another worker) is dropped, and the job runs again - at least once. */
    "    if h[1] == 'STARTED' and h[2] == W then\n"
    "      local asked = st\n"
    "      gone[#gone + 1] = id\n"
    "      if h[4] then\n"
    /* Revoked while it ran: whatever the worker says, it does not run again. */
    "        redis.call('SREM', P .. 'rvk', id)\n"
    "        redis.call('HDEL', k, 'rv')\n"
    "        if st == 'RETRY' or st == 'PENDING' then\n"
    "          st = 'REVOKED'\n"
    "          err = 'revoked while running'\n"
    "        end\n"
    "      end\n"
    "      if st == 'RETRY' then\n"
    "        redis.call('HSET', k, 'st', 'RETRY', 'err', err, 'eta', rat)\n"
    "        redis.call('ZADD', P .. 'retry', rat, id)\n"
    "        local exp = tonumber(h[5] or '0') or 0\n"
    "        if exp > 0 then redis.call('ZADD', P .. 'expires', exp, id) end\n"
    "        ev1('job-retried', id, err)\n"
    "        poke_marker = true\n"
    "      elseif st == 'PENDING' then\n"
    /* Handed back untouched (a graceful stop interrupted it): this attempt does not count. */
    "        local att = (tonumber(h[6] or '1') or 1) - 1\n"
    "        redis.call('HSET', k, 'att', att > 0 and att or 0)\n"
    "        to_pending(id, tonumber(h[7]) or 5, true)\n"
    "        local exp = tonumber(h[5] or '0') or 0\n"
    "        if exp > 0 then redis.call('ZADD', P .. 'expires', exp, id) end\n"
    "        poke_marker = true\n"
    "      else\n"
    "        local more = nil\n"
    "        if res ~= '' or err ~= '' then\n"
    "          more = {}\n"
    "          if res ~= '' then\n"
    "            more[1] = 'res'\n"
    "            more[2] = res\n"
    "          end\n"
    "          if err ~= '' then\n"
    "            more[#more + 1] = 'err'\n"
    "            more[#more + 1] = err\n"
    "          end\n"
    "        end\n"
    "        local mine = known and st == asked\n"
    "        finish(id, st, fin, h[3], more, mine)\n"
    "        if mine and WANT_FINAL then acked[#acked + 1] = id end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "bulk('ZREM', P .. 'active', gone, 1000)\n"
    "bulk('SREM', wl, gone, 1000)\n";

static const char lua_exchange_lease[] =
    "promote('scheduled', 1000)\n"
    "promote('retry', 1000)\n"
    "expire_due(1000)\n"
    /* Limits only lower what this worker gets: parked jobs whose tokens returned go back first,
       then the cluster-wide cap of the queue (P..'meta' gc) bounds the jobs leased at once, then
       each popped job must find a token for its type. */
    "local rated = rates_on()\n"
    "unpark(1000)\n"
    "local want = WANT\n"
    "local cap = tonumber(redis.call('HGET', P .. 'meta', 'gc') or '0') or 0\n"
    "if cap > 0 then\n"
    "  local room = cap - redis.call('ZCARD', P .. 'active')\n"
    "  if room < want then want = room > 0 and room or 0 end\n"
    "end\n"
    "local out = {}\n"
    "local act, wls = {}, {}\n"
    "local parked = 0\n"
    "while want > 0 and parked < 1000 do\n"
    "  local popped = redis.call('ZPOPMIN', P .. 'pending', want)\n"
    "  if #popped == 0 then break end\n"
    "  for p = 1, #popped, 2 do\n"
    "    local id = popped[p]\n"
    "    local k = jk(id)\n"
    "    local h = redis.call('HMGET', k, 'st', 'exp', 'uk', 'att', 'd', 'cr')\n"
    "    if h[1] == 'PENDING' then\n"
    "      local exp = tonumber(h[2] or '0') or 0\n"
    "      if exp > 0 and exp <= NOW then\n"
    "        expire_job(id, k, h[3])\n"
    "      elseif rated and not admit(id, k, h[5], popped[p + 1]) then\n"
    "        parked = parked + 1\n"
    "      else\n"
    "        if exp > 0 then redis.call('ZREM', P .. 'expires', id) end\n"
    "        out[#out + 1] = lease_job(id, k, W, LEASE, h, act, wls)\n"
    "        want = want - 1\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "save_tats()\n"
    "bulk('ZADD', P .. 'active', act, 2000)\n"
    "bulk('SADD', wl, wls, 1000)\n"
    /* Leave the marker (the relay to the next idle worker) only when there is work someone can
       take: not when the queue is at its cap (a finishing job wakes a worker then), and pending
       holds no parked job (a token wakes through next_due). */
    "local full = cap > 0 and redis.call('ZCARD', P .. 'active') >= cap\n"
    "if not full and (poke_marker or redis.call('EXISTS', P .. 'pending') == 1) then wake() end\n"
    "if #out < WANT and POKE == '1' then redis.call('ZADD', P .. 'wn:' .. W, 0, 'p') end\n"
    "announce()\n"
    "return {out, FINALS, acked}\n";

static const char lua_heartbeat[] =
    /* ARGV 6: worker, lease ms, n progress entries, then per entry: id, fraction, message; then
       the number of leases the worker says it holds (-1: it does not say) and their ids. Returns
       {{id, revoke flag ('1' or '2': terminate), ...}, leases given back}. */
    "local W, LEASE = ARGV[6], tonumber(ARGV[7])\n"
    "local wl = P .. 'wl:' .. W\n"
    "local dl = string.format('%d', NOW + LEASE)\n"
    "local np = tonumber(ARGV[8])\n"
    "local hp = 9 + 3 * np\n"
    "local nh = tonumber(ARGV[hp])\n"
    "local held = nil\n"
    "if nh >= 0 then\n"
    "  held = {}\n"
    "  for x = 1, nh do held[ARGV[hp + x]] = true end\n"
    "end\n"
    "local args, lost = {}, {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', wl)) do\n"
    "  if held and not held[id] then\n"
    "    lost[#lost + 1] = id\n"
    "  else\n"
    "    args[#args + 1] = dl\n"
    "    args[#args + 1] = id\n"
    "  end\n"
    "end\n"
    "if #args > 0 then\n"
    "  for i = 1, #args, 2000 do\n"
    "    redis.call('ZADD', P .. 'active', 'XX', unpack(args, i, math.min(i + 1999, #args)))\n"
    "  end\n"
    "end\n"
    /* Leases recorded for this worker that it does not hold: the exchange that leased them ran,
       but its reply never reached the worker (the connection dropped). Nobody runs them: they go
       back to their place, the attempt not counted (or REVOKED if they were revoked meanwhile). */
    "local given = 0\n"
    "EVW = W\n"
    "for _, id in ipairs(lost) do\n"
    "  local k = jk(id)\n"
    "  local h = redis.call('HMGET', k, 'st', 'w', 'rv', 'uk', 'prio', 'att', 'exp')\n"
    "  redis.call('SREM', wl, id)\n"
    "  if h[1] == 'STARTED' and h[2] == W then\n"
    "    redis.call('ZREM', P .. 'active', id)\n"
    "    if h[3] then\n"
    "      redis.call('SREM', P .. 'rvk', id)\n"
    "      redis.call('HDEL', k, 'rv')\n"
    "      finish(id, 'REVOKED', NOWS, h[4], {'err', 'revoked while its lease was lost in "
    "flight'})\n"
    "    else\n"
    "      local att = (tonumber(h[6] or '1') or 1) - 1\n"
    "      redis.call('HSET', k, 'att', tostring(att > 0 and att or 0))\n"
    "      to_pending(id, tonumber(h[5]) or 5, true)\n"
    "      local exp = tonumber(h[7] or '0') or 0\n"
    "      if exp > 0 then redis.call('ZADD', P .. 'expires', h[7], id) end\n"
    "      ev1('job-requeued', id, 'its lease never reached worker ' .. W .. ' (reply lost)')\n"
    "      given = given + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "for x = 0, np - 1 do\n"
    "  local id = ARGV[9 + 3 * x]\n"
    "  if redis.call('SISMEMBER', wl, id) == 1 then\n"
    "    redis.call('HSET', jk(id), 'pr', ARGV[10 + 3 * x], 'pm', ARGV[11 + 3 * x])\n"
    "  end\n"
    "end\n"
    "local rv = {}\n"
    "for _, id in ipairs(redis.call('SINTER', wl, P .. 'rvk')) do\n"
    "  rv[#rv + 1] = id\n"
    "  rv[#rv + 1] = redis.call('HGET', jk(id), 'rv') or '1'\n"
    "end\n"
    "if given > 0 then wake() end\n"
    "announce()\n"
    "return {rv, given, FINALS}\n";

static const char lua_reap[] =
    /* ARGV 6: max crashes, limit, n dead workers, then their ids. Returns {requeued, dead,
       expired, purged, promoted, leases lost, final records}. */
    "local MAXC, LIMIT = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "local requeued, dead, purged = 0, 0, 0\n"
    /* why: 'lease expired' or 'worker offline'. */
    "local function reclaim(id, why)\n"
    "  local k = jk(id)\n"
    "  redis.call('ZREM', P .. 'active', id)\n"
    "  local h = redis.call('HMGET', k, 'st', 'w', 'rv', 'uk', 'prio')\n"
    "  if h[2] then redis.call('SREM', P .. 'wl:' .. h[2], id) end\n"
    "  if h[1] ~= 'STARTED' then return end\n"
    "  local cr = redis.call('HINCRBY', k, 'cr', 1)\n"
    "  local who = h[2] or '?'\n"
    "  EVW = who\n"
    "  if h[3] then\n"
    "    redis.call('SREM', P .. 'rvk', id)\n"
    "    redis.call('HDEL', k, 'rv')\n"
    "    finish(id, 'REVOKED', NOW, h[4], {'err', 'revoked while running; its worker was lost'})\n"
    "  elseif cr >= MAXC then\n"
    "    finish(id, 'DEAD', NOW, h[4], {'err', 'dead: its worker died ' .. cr ..\n"
    "           ' times while running it (last: ' .. who .. ', ' .. why .. ')'})\n"
    "    dead = dead + 1\n"
    "  else\n"
    "    local e = 'requeued after worker ' .. who .. ' was lost (' .. why .. ')'\n"
    "    redis.call('HSET', k, 'err', e)\n"
    "    to_pending(id, tonumber(h[5]) or 5, true)\n"
    "    ev1('job-requeued', id, e)\n"
    "    requeued = requeued + 1\n"
    "  end\n"
    "end\n"
    "local nd = tonumber(ARGV[8])\n"
    "for x = 1, nd do\n"
    "  local w = ARGV[8 + x]\n"
    "  for _, id in ipairs(redis.call('SMEMBERS', P .. 'wl:' .. w)) do reclaim(id, 'worker "
    "offline') end\n"
    "  redis.call('DEL', P .. 'wl:' .. w, P .. 'wn:' .. w)\n"
    "end\n"
    "local lost = redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', NOW, 'LIMIT', 0, LIMIT)\n"
    "for _, id in ipairs(lost) do reclaim(id, 'lease expired') end\n"
    "EVW = ''\n"
    "local promoted = promote('scheduled', LIMIT) + promote('retry', LIMIT)\n"
    "local expired = expire_due(LIMIT)\n"
    "unpark(LIMIT)\n"
    "local cutoff = NOW - TTL\n"
    "for _, s in ipairs({'SUCCESS', 'FAILURE', 'REVOKED', 'EXPIRED', 'DEAD'}) do\n"
    "  local z = P .. 'done:' .. s\n"
    "  for _, id in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, LIMIT)) do\n"
    "    local k = jk(id)\n"
    /* The id may have been reused by a newer live job (a beat slot id): leave that one. */
    "    if redis.call('HGET', k, 'st') == s then redis.call('DEL', k) end\n"
    "    if redis.call('EXISTS', k) == 0 then redis.call('ZREM', P .. 'all', id) end\n"
    "    redis.call('ZREM', z, id)\n"
    "    purged = purged + 1\n"
    "  end\n"
    "end\n"
    /* Work that is waiting gets a marker: a backstop for anything that slipped past a wake-up
       (unless the queue is at its cap: the next finishing job wakes someone). */
    "local cap = tonumber(redis.call('HGET', P .. 'meta', 'gc') or '0') or 0\n"
    "if redis.call('EXISTS', P .. 'pending') == 1 and\n"
    "   (cap == 0 or redis.call('ZCARD', P .. 'active') < cap) then wake() end\n"
    "announce()\n"
    "return {requeued, dead, expired, purged, promoted, #lost, FINALS}\n";

static const char lua_release[] =
    /* ARGV 6: worker. Its leases go back to pending without a crash. Returns {how many, finals}. */
    "local W = ARGV[6]\n"
    "local wl = P .. 'wl:' .. W\n"
    "local n = 0\n"
    "EVW = W\n"
    "for _, id in ipairs(redis.call('SMEMBERS', wl)) do\n"
    "  local k = jk(id)\n"
    "  local h = redis.call('HMGET', k, 'st', 'w', 'rv', 'uk', 'prio', 'att')\n"
    "  if h[1] == 'STARTED' and h[2] == W then\n"
    "    redis.call('ZREM', P .. 'active', id)\n"
    "    if h[3] then\n"
    "      redis.call('SREM', P .. 'rvk', id)\n"
    "      redis.call('HDEL', k, 'rv')\n"
    "      finish(id, 'REVOKED', NOW, h[4], {'err', 'revoked while running'})\n"
    "    else\n"
    /* An interrupted run does not use up an attempt. */
    "      local att = (tonumber(h[6] or '1') or 1) - 1\n"
    "      redis.call('HSET', k, 'att', att > 0 and att or 0)\n"
    "      to_pending(id, tonumber(h[5]) or 5, true)\n"
    "      n = n + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', wl, P .. 'wn:' .. W)\n"
    "if n > 0 then wake() end\n"
    "announce()\n"
    "return {n, FINALS}\n";

static const char lua_revoke[] =
    /* ARGV 6: id, terminate ('1': a process-isolated run is killed). Returns {state after, worker
       if STARTED or 'now' if it was revoked by this call, finals}; 'NOTFOUND' as the state. */
    "local id = ARGV[6]\n"
    "local k = jk(id)\n"
    "local h = redis.call('HMGET', k, 'st', 'uk', 'w', 'held', 'rv')\n"
    "if not h[1] then return {'NOTFOUND', '', FINALS} end\n"
    "local set = waitkey(h[1], h[4])\n"
    "if set then\n"
    "  redis.call('ZREM', P .. set, id)\n"
    "  redis.call('ZREM', P .. 'expires', id)\n"
    "  if h[4] then redis.call('HDEL', k, 'held') end\n"
    "  finish(id, 'REVOKED', NOW, h[2], {'err', 'revoked'})\n"
    "  announce()\n"
    "  return {'REVOKED', 'now', FINALS}\n"
    "end\n"
    "if h[1] == 'STARTED' then\n"
    /* The flag: '1' asks the run to stop, '2' (terminate) to be killed; a later plain revoke does
       not weaken a terminate. */
    "  if h[5] ~= '2' then redis.call('HSET', k, 'rv', ARGV[7] == '1' and '2' or '1') end\n"
    "  redis.call('SADD', P .. 'rvk', id)\n"
    "  if h[3] then redis.call('ZADD', P .. 'wn:' .. h[3], 0, 'r') end\n"
    "  return {'STARTED', h[3] or '', FINALS}\n"
    "end\n"
    "return {h[1], '', FINALS}\n";

static const char lua_lease_one[] =
    /* ARGV 6: id, worker, lease ms. Returns {'OK', lease record, finals}, {'NOTFOUND', '', finals}
       or {'STATE', state, finals}. A job held back by its rate limit is leased all the same: `run
       --wait` without a daemon runs the one job it was asked for. */
    "local id, W, LEASE = ARGV[6], ARGV[7], tonumber(ARGV[8])\n"
    "local k = jk(id)\n"
    "local h = redis.call('HMGET', k, 'st', 'exp', 'uk', 'att', 'd', 'cr', 'held')\n"
    "if not h[1] then return {'NOTFOUND', '', FINALS} end\n"
    "local set = waitkey(h[1], h[7])\n"
    "if not set then return {'STATE', h[1], FINALS} end\n"
    "if h[1] ~= 'PENDING' then\n"
    "  local due = redis.call('ZSCORE', P .. set, id)\n"
    "  if not due or tonumber(due) > NOW then return {'STATE', h[1], FINALS} end\n"
    "end\n"
    "redis.call('ZREM', P .. set, id)\n"
    "if h[7] then redis.call('HDEL', k, 'held') end\n"
    "local exp = tonumber(h[2] or '0') or 0\n"
    "if exp > 0 and exp <= NOW then\n"
    "  expire_job(id, k, h[3])\n"
    "  announce()\n"
    "  return {'STATE', 'EXPIRED', FINALS}\n"
    "end\n"
    "redis.call('ZREM', P .. 'expires', id)\n"
    "EVW = W\n"
    "local rec = lease_job(id, k, W, LEASE, h)\n"
    "ev('job-started', id)\n"
    "announce()\n"
    "return {'OK', rec, FINALS}\n";

static const char lua_purge[] =
    /* ARGV 6: limit. Deletes up to limit waiting jobs (parked ones included); returns how many. */
    "local LIMIT = tonumber(ARGV[6])\n"
    "local n = 0\n"
    "local sets = {'pending', 'scheduled', 'retry'}\n"
    "for _, ty in ipairs(redis.call('ZRANGE', P .. 'rlq', 0, -1)) do sets[#sets + 1] = 'rlp:' .. "
    "ty end\n"
    "for _, set in ipairs(sets) do\n"
    "  if n >= LIMIT then break end\n"
    "  for _, id in ipairs(redis.call('ZRANGE', P .. set, 0, LIMIT - n - 1)) do\n"
    "    local k = jk(id)\n"
    "    local uk = redis.call('HGET', k, 'uk')\n"
    "    if uk then\n"
    "      local u = P .. 'u:' .. uk\n"
    "      if redis.call('GET', u) == id then redis.call('DEL', u) end\n"
    "    end\n"
    "    redis.call('DEL', k)\n"
    "    redis.call('ZREM', P .. 'all', id)\n"
    "    redis.call('ZREM', P .. 'expires', id)\n"
    "    redis.call('ZREM', P .. set, id)\n"
    "    n = n + 1\n"
    "  end\n"
    "  if set:sub(1, 4) == 'rlp:' and redis.call('EXISTS', P .. set) == 0 then\n"
    "    redis.call('ZREM', P .. 'rlq', set:sub(5))\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char lua_evmax[] = "local EVMAX = " BR_STR(BROKER_EVENTS_MAX) "\n";

static const char lua_worker_beat[] =
    /* Standalone (no common part). KEYS[1] = G..'workers'. ARGV: global prefix, worker id, now,
       registry TTL ms, host, pid, queues, started, stats, event data. The registry entry, and a
       worker-online event the first time (or after it was declared offline), worker-heartbeat
       after that. */
    "local G, id, now = ARGV[1], ARGV[2], ARGV[3]\n"
    "local wk = G .. 'worker:' .. id\n"
    "local new = not redis.call('ZSCORE', G .. 'workers', id)\n"
    "redis.call('ZADD', G .. 'workers', now, id)\n"
    "redis.call('ZREM', G .. 'workers:off', id)\n"
    "redis.call('HSET', wk, 'id', id, 'host', ARGV[5], 'pid', ARGV[6], 'queues', ARGV[7], "
    "'started',\n"
    "           ARGV[8], 'hb', now, 'stats', ARGV[9])\n"
    "redis.call('HDEL', wk, 'offline', 'why')\n"
    "redis.call('PEXPIRE', wk, ARGV[4])\n"
    "redis.call('XADD', G .. 'events', 'MAXLEN', '~', EVMAX, '*', 'e',\n"
    "           new and 'worker-online' or 'worker-heartbeat', 'w', id, 'data', ARGV[10])\n"
    "return new and 1 or 0\n";

static const char lua_worker_gone[] =
    /* Standalone. KEYS[1] = G..'workers'. ARGV: global prefix, worker id, now, why, keep ms ('0':
       a graceful stop, the entry goes; otherwise it stays visible as offline that long). Returns 1
       when this call took the worker out of the registry (several reapers may race). */
    "local G, id, now, why, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], "
    "tonumber(ARGV[5])\n"
    "local wk = G .. 'worker:' .. id\n"
    "if redis.call('ZREM', G .. 'workers', id) == 0 then return 0 end\n"
    "if keep > 0 then\n"
    "  redis.call('HSET', wk, 'offline', now, 'why', why)\n"
    "  redis.call('PEXPIRE', wk, keep)\n"
    "  redis.call('ZADD', G .. 'workers:off', now, id)\n"
    "  redis.call('ZREMRANGEBYSCORE', G .. 'workers:off', '-inf', now - keep)\n"
    "else\n"
    "  redis.call('DEL', wk)\n"
    "end\n"
    "redis.call('XADD', G .. 'events', 'MAXLEN', '~', EVMAX, '*', 'e', 'worker-offline', 'w', id,\n"
    "           'data', cjson.encode({reason = why}))\n"
    "return 1\n";

enum {
    S_ENQUEUE,
    S_EXCHANGE,
    S_HEARTBEAT,
    S_REAP,
    S_RELEASE,
    S_REVOKE,
    S_LEASE_ONE,
    S_PURGE,
    S_WORKER_BEAT,
    S_WORKER_GONE,
    S_COUNT
};

static redis_script scripts[S_COUNT];
static const redis_script *script_list[S_COUNT];
static char *script_text[S_COUNT]; /* the joined parts, kept for the life of the process */
static bool scripts_ok;
static pthread_once_t scripts_once = PTHREAD_ONCE_INIT;

static void scripts_init(void)
{
    /* Most scripts share the queue-script prelude; the worker registry scripts stand alone. */
#define BR_QUEUE_SCRIPT(...)                                                                       \
    {                                                                                              \
        lua_head, lua_common, lua_limits, __VA_ARGS__, NULL                                        \
    }
    static const struct {
        const char *name;
        const char *parts[6];
    } defs[S_COUNT] = {
        [S_ENQUEUE] = {"enqueue", BR_QUEUE_SCRIPT(lua_enqueue)},
        [S_EXCHANGE] = {"exchange", BR_QUEUE_SCRIPT(lua_exchange_acks, lua_exchange_lease)},
        [S_HEARTBEAT] = {"heartbeat", BR_QUEUE_SCRIPT(lua_heartbeat)},
        [S_REAP] = {"reap", BR_QUEUE_SCRIPT(lua_reap)},
        [S_RELEASE] = {"release", BR_QUEUE_SCRIPT(lua_release)},
        [S_REVOKE] = {"revoke", BR_QUEUE_SCRIPT(lua_revoke)},
        [S_LEASE_ONE] = {"lease_one", BR_QUEUE_SCRIPT(lua_lease_one)},
        [S_PURGE] = {"purge", BR_QUEUE_SCRIPT(lua_purge)},
        [S_WORKER_BEAT] = {"worker_beat", {lua_evmax, lua_worker_beat, NULL}},
        [S_WORKER_GONE] = {"worker_gone", {lua_evmax, lua_worker_gone, NULL}},
    };
#undef BR_QUEUE_SCRIPT
    for (int i = 0; i < S_COUNT; i++) {
        size_t len = 1, used = 0;
        for (int k = 0; defs[i].parts[k]; k++) {
            len += strlen(defs[i].parts[k]);
        }
        script_text[i] = malloc(len);
        if (!script_text[i]) {
            return;
        }
        for (int k = 0; defs[i].parts[k]; k++) {
            size_t n = strlen(defs[i].parts[k]);
            memcpy(script_text[i] + used, defs[i].parts[k], n);
            used += n;
        }
        script_text[i][used] = '\0';
        redis_script_init(&scripts[i], defs[i].name, script_text[i]);
        script_list[i] = &scripts[i];
    }
    scripts_ok = true;
}

/* ============================================================================================
 * Small containers: argument lists, the id -> queue map
 * ========================================================================================== */

/* An argv under construction. Strings are borrowed (args_add) or copied into stable arena blocks
 * (args_addc, and every formatted number), so an argv never points into a caller's stack. */
typedef struct numblk {
    struct numblk *next;
    size_t used, cap;
    char buf[];
} numblk;

typedef struct args {
    const char **v;
    size_t *l;
    size_t n, cap;
    numblk *blk;
    bool oom;
} args;

static void args_free(args *a)
{
    free(a->v);
    free(a->l);
    while (a->blk) {
        numblk *n = a->blk->next;
        free(a->blk);
        a->blk = n;
    }
    memset(a, 0, sizeof *a);
}

static void args_reset(args *a)
{
    a->n = 0;
    for (numblk *b = a->blk; b; b = b->next) {
        b->used = 0;
    }
}

static void args_addn(args *a, const char *s, size_t len)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        const char **v = realloc(a->v, cap * sizeof *v);
        size_t *l = v ? realloc(a->l, cap * sizeof *l) : NULL;
        if (v) {
            a->v = v;
        }
        if (!v || !l) {
            a->oom = true;
            return;
        }
        a->l = l;
        a->cap = cap;
    }
    a->v[a->n] = s;
    a->l[a->n] = len;
    a->n++;
}

static void args_add(args *a, const char *s)
{
    args_addn(a, s ? s : "", s ? strlen(s) : 0);
}

/* Room for len + 1 bytes in the arena, or NULL. */
static char *args_room(args *a, size_t len)
{
    numblk *b = a->blk;
    char *p;
    while (b && b->used + len + 1 > b->cap) {
        b = b->next;
    }
    if (!b) {
        size_t cap = len + 1 > 4096 ? len + 1 : 4096;
        b = malloc(sizeof *b + cap);
        if (!b) {
            a->oom = true;
            return NULL;
        }
        b->used = 0;
        b->cap = cap;
        b->next = a->blk;
        a->blk = b;
    }
    p = b->buf + b->used;
    b->used += len + 1;
    return p;
}

static void args_addc(args *a, const char *s)
{
    size_t len = strlen(s);
    char *p = args_room(a, len);
    if (p) {
        memcpy(p, s, len + 1);
        args_addn(a, p, len);
    }
}

/* Decimal text of v into buf (at least 21 bytes), NUL-terminated; returns its length. Enqueue
 * and exchange format a dozen numbers per job: snprintf was a third of a bulk enqueue's CPU. */
static size_t fmt_i64(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    if (v < 0) {
        buf[k++] = '-';
    }
    while (n) {
        buf[k++] = tmp[--n];
    }
    buf[k] = '\0';
    return k;
}

static void args_addi(args *a, int64_t v)
{
    char tmp[24];
    size_t len = fmt_i64(tmp, v);
    char *p = args_room(a, len);
    if (p) {
        memcpy(p, tmp, len + 1);
        args_addn(a, p, len);
    }
}

static void args_addd(args *a, double v)
{
    char tmp[40];
    snprintf(tmp, sizeof tmp, "%.6f", v);
    args_addc(a, tmp);
}

/* id -> queue index (and, when the owner wants final records, a copy of the job as leased), for
 * the jobs this handle holds leases on. */
typedef struct idnode {
    struct idnode *next;
    int q;
    job *j; /* owned, may be NULL */
    char id[];
} idnode;

typedef struct idmap {
    idnode **b;
    size_t nb, n;
} idmap;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static idnode *idmap_find(const idmap *m, const char *id)
{
    if (m->nb == 0) {
        return NULL;
    }
    for (idnode *n = m->b[hash_str(id) & (m->nb - 1)]; n; n = n->next) {
        if (strcmp(n->id, id) == 0) {
            return n;
        }
    }
    return NULL;
}

static int idmap_get(const idmap *m, const char *id)
{
    const idnode *n = idmap_find(m, id);
    return n ? n->q : -1;
}

/* Map id -> q, taking ownership of j (may be NULL) even on failure. */
static int idmap_put(idmap *m, const char *id, int q, job *j)
{
    idnode *n;
    size_t len = strlen(id);
    if (m->n + 1 > m->nb * 2) {
        size_t nb = m->nb ? m->nb * 2 : 64;
        idnode **b = calloc(nb, sizeof *b);
        if (!b) {
            job_free(j);
            return BP_E_NOMEM;
        }
        for (size_t i = 0; i < m->nb; i++) {
            while (m->b[i]) {
                idnode *x = m->b[i];
                m->b[i] = x->next;
                x->next = b[hash_str(x->id) & (nb - 1)];
                b[hash_str(x->id) & (nb - 1)] = x;
            }
        }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    size_t h = hash_str(id) & (m->nb - 1);
    for (n = m->b[h]; n; n = n->next) {
        if (strcmp(n->id, id) == 0) {
            n->q = q;
            job_free(n->j);
            n->j = j;
            return BP_OK;
        }
    }
    n = malloc(sizeof *n + len + 1);
    if (!n) {
        job_free(j);
        return BP_E_NOMEM;
    }
    memcpy(n->id, id, len + 1);
    n->q = q;
    n->j = j;
    n->next = m->b[h];
    m->b[h] = n;
    m->n++;
    return BP_OK;
}

static void idmap_del(idmap *m, const char *id)
{
    if (m->nb == 0) {
        return;
    }
    for (idnode **pp = &m->b[hash_str(id) & (m->nb - 1)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            idnode *x = *pp;
            *pp = x->next;
            job_free(x->j);
            free(x);
            m->n--;
            return;
        }
    }
}

static void idmap_clear(idmap *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        while (m->b[i]) {
            idnode *x = m->b[i];
            m->b[i] = x->next;
            job_free(x->j);
            free(x);
        }
    }
    free(m->b);
    memset(m, 0, sizeof *m);
}

/* ============================================================================================
 * The broker object
 * ========================================================================================== */

typedef struct br_queue {
    char *name;
    char *tag;       /* "P:{name}:" */
    char *routing;   /* "P:{name}:pending", KEYS[1] of every script */
    bool registered; /* SADD P:queues done by this handle */
    bool in_worker;  /* the worker serves it: the wake thread watches its wn key */
    bool hungry;     /* the latest exchange got fewer jobs than it asked for */
    bool watched;    /* the wake thread is blocked on its marker right now */
    uint64_t ticket; /* exchanges issued for it (the latest decides `hungry`) */
} br_queue;

typedef struct broker_redis {
    broker base;
    char *url; /* without our own parameters */
    char *prefix;
    char *chan;
    char *queues_key;
    char *workers_key;
    char *anywork_key; /* global marker: "work arrived somewhere" (for handles serving nothing) */
    char *gprefix;     /* "P:", the global prefix the scripts take */
    char *offline_key; /* P:workers:off, workers declared offline (kept visible for an hour) */
    redis_conn_options copts;

    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    redis_conn *conns[BR_MAX_CONNS];
    bool busy[BR_MAX_CONNS];

    pthread_mutex_t lock; /* everything below */
    br_queue **queues;
    size_t n_queues, cap_queues;
    idmap leased;
    char *worker_id; /* the worker this handle exchanges for (wake-up keys) */
    /* argument lists of finished exchanges, kept for the next ones: a daemon's dispatcher
     * exchanges thousands of times a second, and rebuilding the arrays and number arenas each
     * time was most of its malloc traffic */
    args spare_args[4];
    int n_spare_args;

    pthread_mutex_t sub_lock; /* serialises subscribe() */
    atomic_int wake_bits;     /* BROKER_WAKE_* that arrived since the last drain */
    int wake_fd;
    int kinds;
    atomic_bool stopping;
    pthread_t work_thr, done_thr;
    bool work_started, done_started;
    bool done_subscribed; /* the first SUBSCRIBE (in subscribe()) succeeded */
    redis_conn *work_conn, *done_conn;
    int stop_fd; /* eventfd: readable once destroy begins */
} broker_redis;

static broker_redis *BR(broker *b)
{
    return (broker_redis *)(void *)b;
}

/* Queue names end up inside hash tags and key names: keep them tame. */
static bool valid_name(const char *s)
{
    size_t n = 0;
    if (!s || !*s) {
        return false;
    }
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (ch <= ' ' || ch == '{' || ch == '}' || ch == 0x7f) {
            return false;
        }
    }
    return n <= BR_MAX_NAME;
}

/* Find or add a queue; index or negative status. Caller holds b->lock. */
static int queue_index(broker_redis *b, const char *name)
{
    br_queue *q;
    for (size_t i = 0; i < b->n_queues; i++) {
        if (strcmp(b->queues[i]->name, name) == 0) {
            return (int)i;
        }
    }
    if (b->n_queues == b->cap_queues) {
        size_t cap = b->cap_queues ? b->cap_queues * 2 : 8;
        br_queue **v = realloc(b->queues, cap * sizeof *v);
        if (!v) {
            return BP_E_NOMEM;
        }
        b->queues = v;
        b->cap_queues = cap;
    }
    q = calloc(1, sizeof *q);
    if (!q) {
        return BP_E_NOMEM;
    }
    q->name = strdup(name);
    q->tag = util_asprintf("%s:{%s}:", b->prefix, name);
    q->routing = util_asprintf("%s:{%s}:pending", b->prefix, name);
    if (!q->name || !q->tag || !q->routing) {
        free(q->name);
        free(q->tag);
        free(q->routing);
        free(q);
        return BP_E_NOMEM;
    }
    b->queues[b->n_queues] = q;
    return (int)b->n_queues++;
}

static void signal_wake(broker_redis *b, int bits)
{
    uint64_t one = 1;
    atomic_fetch_or(&b->wake_bits, bits);
    if (b->wake_fd >= 0 && write(b->wake_fd, &one, sizeof one) < 0) {
        /* counter saturated: a wake-up is pending anyway */
    }
}

/* ---- the connection pool ------------------------------------------------------------------- */

static int pool_get(broker_redis *b, redis_conn **out, bp_error *err)
{
    int slot = -1;
    *out = NULL;
    pthread_mutex_lock(&b->pool_lock);
    for (;;) {
        int empty = -1;
        for (int i = 0; i < BR_MAX_CONNS; i++) {
            if (b->conns[i] && !b->busy[i]) {
                b->busy[i] = true;
                *out = b->conns[i];
                pthread_mutex_unlock(&b->pool_lock);
                return BP_OK;
            }
            if (!b->conns[i] && !b->busy[i] && empty < 0) {
                empty = i;
            }
        }
        if (empty >= 0) {
            slot = empty;
            b->busy[slot] = true;
            break;
        }
        pthread_cond_wait(&b->pool_cond, &b->pool_lock);
    }
    pthread_mutex_unlock(&b->pool_lock);

    redis_conn *c = NULL;
    int rc = redis_conn_open(b->url, &b->copts, &c, err);
    if (rc == BP_OK) {
        rc = redis_conn_preload(c, script_list, S_COUNT, err);
    }
    pthread_mutex_lock(&b->pool_lock);
    if (rc == BP_OK) {
        b->conns[slot] = c;
        *out = c;
    } else {
        b->busy[slot] = false;
        redis_conn_close(c);
        pthread_cond_signal(&b->pool_cond);
    }
    pthread_mutex_unlock(&b->pool_lock);
    return rc;
}

static void pool_put(broker_redis *b, redis_conn *c)
{
    pthread_mutex_lock(&b->pool_lock);
    for (int i = 0; i < BR_MAX_CONNS; i++) {
        if (b->conns[i] == c) {
            b->busy[i] = false;
        }
    }
    pthread_cond_signal(&b->pool_cond);
    pthread_mutex_unlock(&b->pool_lock);
}

/* ---- replies -> values --------------------------------------------------------------------- */

static int64_t str_i64(const char *s, size_t len)
{
    char tmp[32];
    if (!s || len == 0 || len >= sizeof tmp) {
        return 0;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    /* scores come back as "1.7e+12" when they pass through a double; strtod reads both */
    return (int64_t)strtod(tmp, NULL);
}

static bool field_is(const redisReply *k, const char *name)
{
    size_t n = strlen(name);
    return k->len == n && memcmp(k->str, name, n) == 0;
}

static int set_field_str(char **field, const redisReply *v)
{
    char *s = malloc(v->len + 1);
    if (!s) {
        return BP_E_NOMEM;
    }
    memcpy(s, v->str, v->len);
    s[v->len] = '\0';
    free(*field);
    *field = s;
    return BP_OK;
}

/* ---- the packed job spec ------------------------------------------------------------------ */

/* The spec is a sequence of fields "<decimal length>:<bytes>", in this order. Version 1. */
enum {
    SP_TYPE,
    SP_QUEUE,
    SP_ARGS,
    SP_PRIO,
    SP_CREATED,
    SP_MAXR,
    SP_RS,
    SP_RST,
    SP_RMAX,
    SP_RJ,
    SP_ETA,
    SP_EXP,
    SP_STL,
    SP_UK,
    SP_PAR,
    SP_COUNT
};

#define SPEC_MAGIC "1|"

/* Encode j's spec into the arena of a and append it as one argument. */
static void args_add_spec(args *a, const job *j, int64_t created)
{
    char nums[SP_COUNT][24];
    const char *f[SP_COUNT] = {0};
    size_t len[SP_COUNT], total = strlen(SPEC_MAGIC);
    fmt_i64(nums[SP_PRIO], j->priority);
    fmt_i64(nums[SP_CREATED], created);
    fmt_i64(nums[SP_MAXR], j->max_retries);
    fmt_i64(nums[SP_RS], j->retry.interval_start_ms);
    fmt_i64(nums[SP_RST], j->retry.interval_step_ms);
    fmt_i64(nums[SP_RMAX], j->retry.interval_max_ms);
    fmt_i64(nums[SP_RJ], j->retry.jitter ? 1 : 0);
    fmt_i64(nums[SP_ETA], j->eta_ms);
    fmt_i64(nums[SP_EXP], j->expires_ms);
    fmt_i64(nums[SP_STL], j->soft_time_limit_ms);
    for (int i = 0; i < SP_COUNT; i++) {
        f[i] = nums[i];
    }
    f[SP_TYPE] = j->type;
    f[SP_QUEUE] = j->queue;
    f[SP_ARGS] = j->args;
    f[SP_UK] = j->unique_key ? j->unique_key : "";
    f[SP_PAR] = j->parent_id ? j->parent_id : "";
    for (int i = 0; i < SP_COUNT; i++) {
        len[i] = strlen(f[i]);
        total += len[i] + 22;
    }
    char *p = args_room(a, total);
    if (!p) {
        return;
    }
    size_t k = strlen(SPEC_MAGIC);
    memcpy(p, SPEC_MAGIC, k);
    for (int i = 0; i < SP_COUNT; i++) {
        k += fmt_i64(p + k, (int64_t)len[i]);
        p[k++] = ':';
        memcpy(p + k, f[i], len[i]);
        k += len[i];
    }
    p[k] = '\0';
    args_addn(a, p, k);
}

static int64_t num_of(const char *s, size_t len)
{
    char tmp[32];
    if (len == 0 || len >= sizeof tmp) {
        return 0;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    return strtoll(tmp, NULL, 10);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Fill j from a packed spec. BP_E_CORRUPT when it does not parse. */
static int spec_decode(const char *d, size_t n, job *j)
{
    const char *f[SP_COUNT];
    size_t len[SP_COUNT];
    size_t pos = strlen(SPEC_MAGIC);
    if (n < pos || memcmp(d, SPEC_MAGIC, pos) != 0) {
        return BP_E_CORRUPT;
    }
    for (int i = 0; i < SP_COUNT; i++) {
        size_t l = 0;
        if (pos >= n || d[pos] < '0' || d[pos] > '9') {
            return BP_E_CORRUPT;
        }
        while (pos < n && d[pos] >= '0' && d[pos] <= '9' && l < ((size_t)1 << 40)) {
            l = l * 10 + (size_t)(d[pos++] - '0');
        }
        if (pos >= n || d[pos] != ':' || l > n - pos - 1) {
            return BP_E_CORRUPT;
        }
        f[i] = d + pos + 1;
        len[i] = l;
        pos += 1 + l;
    }
    free(j->type);
    free(j->queue);
    free(j->args);
    free(j->unique_key);
    free(j->parent_id);
    j->type = dup_n(f[SP_TYPE], len[SP_TYPE]);
    j->queue = dup_n(f[SP_QUEUE], len[SP_QUEUE]);
    j->args = dup_n(f[SP_ARGS], len[SP_ARGS]);
    j->unique_key = len[SP_UK] ? dup_n(f[SP_UK], len[SP_UK]) : NULL;
    j->parent_id = len[SP_PAR] ? dup_n(f[SP_PAR], len[SP_PAR]) : NULL;
    if (!j->type || !j->queue || !j->args || (len[SP_UK] && !j->unique_key) ||
        (len[SP_PAR] && !j->parent_id)) {
        return BP_E_NOMEM;
    }
    j->priority = (int)num_of(f[SP_PRIO], len[SP_PRIO]);
    j->created_ms = num_of(f[SP_CREATED], len[SP_CREATED]);
    j->max_retries = (int)num_of(f[SP_MAXR], len[SP_MAXR]);
    j->retry.interval_start_ms = num_of(f[SP_RS], len[SP_RS]);
    j->retry.interval_step_ms = num_of(f[SP_RST], len[SP_RST]);
    j->retry.interval_max_ms = num_of(f[SP_RMAX], len[SP_RMAX]);
    j->retry.jitter = num_of(f[SP_RJ], len[SP_RJ]) != 0;
    j->eta_ms = num_of(f[SP_ETA], len[SP_ETA]);
    j->expires_ms = num_of(f[SP_EXP], len[SP_EXP]);
    j->soft_time_limit_ms = num_of(f[SP_STL], len[SP_STL]);
    return BP_OK;
}

static job *job_with_id(const char *id, size_t len)
{
    job *j = job_new();
    if (j) {
        if (len > sizeof j->id - 1) {
            len = sizeof j->id - 1;
        }
        memcpy(j->id, id, len);
        j->id[len] = '\0';
    }
    return j;
}

/* An HGETALL array of job `id` -> a new job. */
static int job_from_hash(const char *id, const redisReply *r, job **out, bp_error *err)
{
    job *j;
    bool has_state = false, has_spec = false;
    int64_t eta = -1;
    *out = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0 || r->elements % 2) {
        return bp_err(err, BP_E_CORRUPT, "redis: the record of job %s is not a field list", id);
    }
    j = job_with_id(id, strlen(id));
    if (!j) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        int rc = BP_OK;
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }
        if (field_is(k, "d")) {
            rc = spec_decode(v->str, v->len, j);
            has_spec = rc == BP_OK;
            if (rc == BP_E_CORRUPT) {
                rc = BP_OK; /* reported below */
            }
        } else if (field_is(k, "st")) {
            char st[16];
            size_t n = v->len < sizeof st - 1 ? v->len : sizeof st - 1;
            memcpy(st, v->str, n);
            st[n] = '\0';
            has_state = job_state_parse(st, &j->state) == BP_OK;
        } else if (field_is(k, "eta")) {
            eta = str_i64(v->str, v->len);
        } else if (field_is(k, "att")) {
            j->attempts = (int)str_i64(v->str, v->len);
        } else if (field_is(k, "cr")) {
            j->crashes = (int)str_i64(v->str, v->len);
        } else if (field_is(k, "w")) {
            rc = set_field_str(&j->worker, v);
        } else if (field_is(k, "sa")) {
            j->started_ms = str_i64(v->str, v->len);
        } else if (field_is(k, "fin")) {
            j->finished_ms = str_i64(v->str, v->len);
        } else if (field_is(k, "lu")) {
            j->lease_until_ms = str_i64(v->str, v->len);
        } else if (field_is(k, "res")) {
            rc = set_field_str(&j->result, v);
        } else if (field_is(k, "err")) {
            rc = set_field_str(&j->error, v);
        } else if (field_is(k, "pr")) {
            char tmp[40];
            size_t n = v->len < sizeof tmp - 1 ? v->len : sizeof tmp - 1;
            memcpy(tmp, v->str, n);
            tmp[n] = '\0';
            j->progress = strtod(tmp, NULL);
        } else if (field_is(k, "pm")) {
            rc = set_field_str(&j->progress_msg, v);
        }
        if (rc != BP_OK) {
            job_free(j);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    if (!has_spec || !has_state) {
        job_free(j);
        return bp_err(err, BP_E_CORRUPT, "redis: the record of job %s lacks %s", id,
                      !has_spec ? "a readable spec" : "a valid state");
    }
    /* the current due time of a SCHEDULED/RETRY job (a retry moves it) */
    if (eta >= 0) {
        j->eta_ms = eta;
    }
    if (j->state != JOB_STARTED) {
        j->lease_until_ms = 0;
    }
    *out = j;
    return BP_OK;
}

/* A lease record {id, spec, attempts, crashes} -> a new STARTED job. */
static int job_from_lease(const redisReply *r, const char *worker, int64_t now, int64_t lease_ms,
                          job **out, bp_error *err)
{
    job *j;
    *out = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        return bp_err(err, BP_E_CORRUPT, "redis: malformed lease record");
    }
    j = job_with_id(r->element[0]->str, r->element[0]->len);
    if (!j) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    int rc = spec_decode(r->element[1]->str, r->element[1]->len, j);
    if (rc != BP_OK) {
        job_free(j);
        return rc == BP_E_NOMEM
                   ? bp_err(err, rc, "out of memory")
                   : bp_err(err, BP_E_CORRUPT, "redis: the record of job %.*s has no readable spec",
                            (int)r->element[0]->len, r->element[0]->str);
    }
    if (job_set_str(&j->worker, worker) != BP_OK) {
        job_free(j);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    j->state = JOB_STARTED;
    j->attempts = (int)r->element[2]->integer;
    j->crashes = (int)r->element[3]->integer;
    j->started_ms = now;
    j->lease_until_ms = now + lease_ms;
    *out = j;
    return BP_OK;
}

/* A final record {id, spec, state, attempts, crashes, worker, started, finished, result, error}
 * -> a new job. */
static int job_from_final(const redisReply *r, job **out, bp_error *err)
{
    job *j;
    *out = NULL;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 10) {
        return bp_err(err, BP_E_CORRUPT, "redis: malformed final record");
    }
    for (size_t i = 0; i < 10; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING &&
            r->element[i]->type != REDIS_REPLY_INTEGER) {
            return bp_err(err, BP_E_CORRUPT, "redis: malformed final record");
        }
    }
    j = job_with_id(r->element[0]->str, r->element[0]->len);
    if (!j) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    const redisReply *const *e = (const redisReply *const *)r->element;
    int rc = spec_decode(e[1]->str, e[1]->len, j);
    char st[16];
    size_t n = e[2]->len < sizeof st - 1 ? e[2]->len : sizeof st - 1;
    memcpy(st, e[2]->str, n);
    st[n] = '\0';
    if (rc == BP_OK && job_state_parse(st, &j->state) != BP_OK) {
        rc = BP_E_CORRUPT;
    }
    if (rc == BP_OK) {
        j->attempts = (int)str_i64(e[3]->str, e[3]->len);
        j->crashes = (int)str_i64(e[4]->str, e[4]->len);
        j->started_ms = str_i64(e[6]->str, e[6]->len);
        j->finished_ms =
            e[7]->type == REDIS_REPLY_INTEGER ? e[7]->integer : str_i64(e[7]->str, e[7]->len);
        if ((e[5]->len && set_field_str(&j->worker, e[5]) != BP_OK) ||
            (e[8]->len && set_field_str(&j->result, e[8]) != BP_OK) ||
            (e[9]->len && set_field_str(&j->error, e[9]) != BP_OK)) {
            rc = BP_E_NOMEM;
        }
    }
    if (rc != BP_OK) {
        job_free(j);
        return rc == BP_E_NOMEM ? bp_err(err, rc, "out of memory")
                                : bp_err(err, rc, "redis: unreadable final record of job %.*s",
                                         (int)e[0]->len, e[0]->str);
    }
    *out = j;
    return BP_OK;
}

/* Jobs that reached a final state in one call: handed to on_final once the call is over (never
 * while a connection or a lock is held, so the hook cannot slow the broker down). */
typedef struct job_list {
    job **v;
    size_t n, cap;
} job_list;

static int job_list_push(job_list *l, job *j)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        job **v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            job_free(j);
            return BP_E_NOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = j;
    return BP_OK;
}

/* Decode an array of final records into l. */
static int take_finals(const redisReply *r, job_list *l, bp_error *err)
{
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        return bp_err(err, BP_E_INTERNAL, "redis: a script returned no final records");
    }
    for (size_t i = 0; i < r->elements; i++) {
        job *j = NULL;
        int rc = job_from_final(r->element[i], &j, err);
        if (rc != BP_OK) {
            return rc;
        }
        if (job_list_push(l, j) != BP_OK) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    return BP_OK;
}

/* Call on_final for each, then free the list. */
static void emit_finals(broker_redis *b, job_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (b->base.opts.on_final) {
            b->base.opts.on_final(b->base.opts.on_final_ud, l->v[i]);
        }
        job_free(l->v[i]);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Turn a script error into a status naming the operation. */
static int script_reply(const redisReply *r, const char *what, bp_error *err)
{
    return redis_reply_status(r, what, err);
}

/* Redo the NOSCRIPT replies of a pipeline one by one (NOSCRIPT: the script did not run). */
static int redo_noscript(redis_conn *c, redisReply **rs, size_t n, const redis_script *const *which,
                         args *const *argsv, bp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (redis_reply_is_noscript(rs[i])) {
            redisReply *r = NULL;
            int rc;
            freeReplyObject(rs[i]);
            rs[i] = NULL;
            rc = redis_conn_eval(c, which[i], 1, (int)argsv[i]->n, argsv[i]->v, argsv[i]->l, &r,
                                 err);
            if (rc != BP_OK) {
                return rc;
            }
            rs[i] = r;
        }
    }
    return BP_OK;
}

/* The prefix of every script's argv: routing key, tag, now, ttl, channel. */
static void args_script(args *a, const broker_redis *b, const br_queue *q, int64_t now)
{
    args_reset(a);
    args_add(a, q->routing);
    args_add(a, q->tag);
    args_addi(a, now);
    args_addi(a, b->base.opts.result_ttl_ms);
    args_add(a, b->chan);
    args_add(a, b->base.opts.on_final ? "1" : "0");
}

static void free_replies(redisReply **rs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (rs[i]) {
            freeReplyObject(rs[i]);
        }
    }
}

/* SMEMBERS P:queues, adding every name to the local table. */
static int refresh_queues(broker_redis *b, redis_conn *c, bp_error *err)
{
    redisReply *r = NULL;
    int rc = redis_conn_command(c, &r, err, "SMEMBERS %s", b->queues_key);
    if (rc != BP_OK) {
        return rc;
    }
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING && valid_name(e->str)) {
            int qi = queue_index(b, e->str);
            if (qi >= 0) {
                b->queues[qi]->registered = true;
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    freeReplyObject(r);
    return BP_OK;
}

/* Snapshot of the queue table: names + tags (new strings), for work outside the lock. */
typedef struct qsnap {
    size_t n;
    char **name;
    char **tag;
    char **routing;
} qsnap;

static void qsnap_free(qsnap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->name[i]);
        free(s->tag[i]);
        free(s->routing[i]);
    }
    free(s->name);
    free(s->tag);
    free(s->routing);
    memset(s, 0, sizeof *s);
}

static int qsnap_take(broker_redis *b, qsnap *s, bp_error *err)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&b->lock);
    size_t n = b->n_queues;
    s->name = calloc(n + 1, sizeof *s->name);
    s->tag = calloc(n + 1, sizeof *s->tag);
    s->routing = calloc(n + 1, sizeof *s->routing);
    if (s->name && s->tag && s->routing) {
        for (size_t i = 0; i < n; i++) {
            s->name[i] = strdup(b->queues[i]->name);
            s->tag[i] = strdup(b->queues[i]->tag);
            s->routing[i] = strdup(b->queues[i]->routing);
            s->n++;
            if (!s->name[i] || !s->tag[i] || !s->routing[i]) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (!s->name || !s->tag || !s->routing || s->n != n ||
        (n > 0 && (!s->name[n - 1] || !s->tag[n - 1] || !s->routing[n - 1]))) {
        qsnap_free(s);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    return BP_OK;
}

/* Which queue holds job `id`? Probes the known queues (refreshing them once on a miss).
 * *out_q is an index into b->queues. */
static int find_queue(broker_redis *b, redis_conn *c, const char *id, int *out_q, bp_error *err)
{
    int rc;
    pthread_mutex_lock(&b->lock);
    *out_q = idmap_get(&b->leased, id);
    pthread_mutex_unlock(&b->lock);
    if (*out_q >= 0) {
        return BP_OK;
    }
    for (int pass = 0; pass < 2; pass++) {
        qsnap s;
        if (pass == 1 && (rc = refresh_queues(b, c, err)) != BP_OK) {
            return rc;
        }
        if ((rc = qsnap_take(b, &s, err)) != BP_OK) {
            return rc;
        }
        if (s.n > 0) {
            redisReply **rs = calloc(s.n, sizeof *rs);
            if (!rs) {
                qsnap_free(&s);
                return bp_err(err, BP_E_NOMEM, "out of memory");
            }
            for (size_t i = 0; i < s.n && rc == BP_OK; i++) {
                rc = redis_conn_append(c, err, "EXISTS %sj:%s", s.tag[i], id);
            }
            if (rc == BP_OK) {
                rc = redis_conn_read_replies(c, rs, s.n, err);
            } else if (redis_conn_pending(c) > 0) {
                size_t np = redis_conn_pending(c);
                redis_conn_read_replies(c, rs, np, NULL);
                free_replies(rs, np);
            }
            int found = -1;
            for (size_t i = 0; rc == BP_OK && i < s.n; i++) {
                if (rs[i] && rs[i]->type == REDIS_REPLY_INTEGER && rs[i]->integer == 1) {
                    found = (int)i;
                    break;
                }
            }
            if (rc == BP_OK) {
                free_replies(rs, s.n);
            }
            free(rs);
            if (rc == BP_OK && found >= 0) {
                pthread_mutex_lock(&b->lock);
                *out_q = queue_index(b, s.name[found]);
                pthread_mutex_unlock(&b->lock);
                qsnap_free(&s);
                return *out_q >= 0 ? BP_OK : bp_err(err, BP_E_NOMEM, "out of memory");
            }
        }
        qsnap_free(&s);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return bp_err(err, BP_E_NOTFOUND, "no job %s", id);
}

static void queue_strings(broker_redis *b, int qi, char *tag, size_t tlen, char *routing,
                          size_t rlen, char *name, size_t nlen)
{
    pthread_mutex_lock(&b->lock);
    if (tag) {
        util_strlcpy(tag, b->queues[qi]->tag, tlen);
    }
    if (routing) {
        util_strlcpy(routing, b->queues[qi]->routing, rlen);
    }
    if (name) {
        util_strlcpy(name, b->queues[qi]->name, nlen);
    }
    pthread_mutex_unlock(&b->lock);
}

/* ============================================================================================
 * enqueue
 * ========================================================================================== */

static int check_job(const job *j, size_t i, bp_error *err)
{
    if (!j->id[0]) {
        return bp_err(err, BP_E_INVAL, "enqueue: job %zu has no id", i);
    }
    if (!j->type || !*j->type) {
        return bp_err(err, BP_E_INVAL, "enqueue: job %s has no type", j->id);
    }
    if (!valid_name(j->queue)) {
        return bp_err(err, BP_E_INVAL,
                      "enqueue: job %s: queue '%s' is not a valid queue name (1-%d characters, no "
                      "spaces, braces or control characters)",
                      j->id, j->queue ? j->queue : "", BR_MAX_NAME);
    }
    if (!j->args) {
        return bp_err(err, BP_E_INVAL, "enqueue: job %s has no args", j->id);
    }
    if (j->state != JOB_PENDING && j->state != JOB_SCHEDULED) {
        return bp_err(err, BP_E_INVAL,
                      "enqueue: job %s is %s; only PENDING or SCHEDULED jobs "
                      "can be enqueued",
                      j->id, job_state_name(j->state));
    }
    if (j->priority < BP_PRIORITY_MIN || j->priority > BP_PRIORITY_MAX) {
        return bp_err(err, BP_E_INVAL, "enqueue: job %s: priority %d is outside [%d, %d]", j->id,
                      j->priority, BP_PRIORITY_MIN, BP_PRIORITY_MAX);
    }
    if (j->unique_key && !*j->unique_key) {
        return bp_err(err, BP_E_INVAL, "enqueue: job %s has an empty unique key", j->id);
    }
    return BP_OK;
}

typedef struct enq_call {
    int qi;
    size_t *idx; /* job indices in this call */
    size_t n;
    args a;
} enq_call;

static int br_enqueue(broker *base, job **jobs, size_t n, int *out_status, bp_error *err)
{
    broker_redis *b = BR(base);
    enq_call *calls = NULL;
    size_t n_calls = 0;
    redisReply **rs = NULL;
    const redis_script **which = NULL;
    args **argsv = NULL;
    size_t n_pre = 0; /* SADD commands before the scripts */
    size_t total = 0; /* commands in the pipeline */
    redis_conn *c = NULL;
    int64_t now = util_now_ms();
    int rc = BP_OK;
    int *qidx = NULL;

    for (size_t i = 0; i < n; i++) {
        if ((rc = check_job(jobs[i], i, err)) != BP_OK) {
            return rc;
        }
        out_status[i] = BP_OK;
    }
    if (n == 0) {
        return BP_OK;
    }
    qidx = malloc(n * sizeof *qidx);
    calls = calloc(n, sizeof *calls); /* at most one call per job */
    if (!qidx || !calls) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    /* Group by queue, keeping each queue's jobs in the caller's order, in chunks. */
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < n && rc == BP_OK; i++) {
        qidx[i] = queue_index(b, jobs[i]->queue);
        if (qidx[i] < 0) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (rc != BP_OK) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        enq_call *call = NULL;
        for (size_t k = n_calls; k-- > 0;) {
            if (calls[k].qi == qidx[i]) {
                call = calls[k].n < BR_ENQUEUE_CHUNK ? &calls[k] : NULL;
                break;
            }
        }
        if (!call) {
            call = &calls[n_calls++];
            call->qi = qidx[i];
            call->idx = malloc(BR_ENQUEUE_CHUNK * sizeof *call->idx);
            if (!call->idx) {
                rc = bp_err(err, BP_E_NOMEM, "out of memory");
                goto done;
            }
        }
        call->idx[call->n++] = i;
    }
    /* Build every script call's argv. */
    for (size_t k = 0; k < n_calls; k++) {
        enq_call *call = &calls[k];
        char tag[BR_MAX_NAME + 80], routing[BR_MAX_NAME + 80];
        queue_strings(b, call->qi, tag, sizeof tag, routing, sizeof routing, NULL, 0);
        args_reset(&call->a);
        args_addc(&call->a, routing);
        args_addc(&call->a, tag);
        args_addi(&call->a, now);
        args_addi(&call->a, b->base.opts.result_ttl_ms);
        args_add(&call->a, b->chan);
        args_add(&call->a, "0");
        args_addi(&call->a, (int64_t)call->n);
        for (size_t x = 0; x < call->n; x++) {
            const job *j = jobs[call->idx[x]];
            int64_t created = j->created_ms > 0 ? j->created_ms : now;
            args_add(&call->a, j->id);
            args_add(&call->a, j->unique_key ? j->unique_key : "");
            args_addi(&call->a, j->eta_ms > now ? j->eta_ms : 0);
            args_addi(&call->a, j->expires_ms);
            args_addi(&call->a, j->priority);
            args_addi(&call->a, created);
            args_addi(&call->a, j->attempts);
            args_addi(&call->a, j->crashes);
            args_add_spec(&call->a, j, created);
        }
        if (call->a.oom) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
    }

    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        goto done;
    }
    pthread_mutex_lock(&b->lock);
    for (size_t k = 0; k < n_calls; k++) {
        br_queue *q = b->queues[calls[k].qi];
        if (!q->registered) {
            /* duplicates in one batch are harmless: SADD is idempotent */
            rc = redis_conn_append(c, err, "SADD %s %s", b->queues_key, q->name);
            n_pre++;
            if (rc != BP_OK) {
                break;
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    for (size_t k = 0; k < n_calls && rc == BP_OK; k++) {
        rc = redis_conn_append_eval(c, &scripts[S_ENQUEUE], 1, (int)calls[k].a.n, calls[k].a.v,
                                    calls[k].a.l, err);
    }
    /* Handles that serve no queue yet listen on one global marker (see watch_keys). */
    if (rc == BP_OK) {
        rc = redis_conn_append(c, err, "ZADD %s 0 w", b->anywork_key);
    }
    total = redis_conn_pending(c);
    rs = calloc(total + 1, sizeof *rs);
    which = calloc(n_calls + 1, sizeof *which);
    argsv = calloc(n_calls + 1, sizeof *argsv);
    if (!rs || !which || !argsv) {
        rc = rc != BP_OK ? rc : bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (rc != BP_OK) {
        if (total > 0) {
            redis_conn_drop(c); /* nothing was sent yet: dropping unsends it */
        }
        total = 0;
        goto done;
    }
    if ((rc = redis_conn_read_replies(c, rs, total, err)) != BP_OK) {
        total = 0;
        goto done;
    }
    for (size_t k = 0; k < n_calls; k++) {
        which[k] = &scripts[S_ENQUEUE];
        argsv[k] = &calls[k].a;
    }
    if ((rc = redo_noscript(c, rs + n_pre, n_calls, which, argsv, err)) != BP_OK) {
        goto done;
    }
    for (size_t k = 0; k < n_pre; k++) {
        if ((rc = redis_reply_status(rs[k], "enqueue: SADD queues", err)) != BP_OK) {
            goto done;
        }
    }
    if (n_pre > 0) {
        pthread_mutex_lock(&b->lock);
        for (size_t k = 0; k < n_calls; k++) {
            b->queues[calls[k].qi]->registered = true;
        }
        pthread_mutex_unlock(&b->lock);
    }
    for (size_t k = 0; k < n_calls; k++) {
        const redisReply *r = rs[n_pre + k];
        if ((rc = script_reply(r, "enqueue", err)) != BP_OK) {
            goto done;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != calls[k].n) {
            rc = bp_err(err, BP_E_INTERNAL, "enqueue: unexpected reply from the enqueue script");
            goto done;
        }
        for (size_t x = 0; x < calls[k].n; x++) {
            job *j = jobs[calls[k].idx[x]];
            const redisReply *e = r->element[x];
            if (e->type == REDIS_REPLY_STRING && e->len > 0) {
                out_status[calls[k].idx[x]] = BP_E_EXISTS;
                size_t len = e->len < sizeof j->id - 1 ? e->len : sizeof j->id - 1;
                memcpy(j->id, e->str, len);
                j->id[len] = '\0';
            } else {
                j->state = j->eta_ms > now ? JOB_SCHEDULED : JOB_PENDING;
                if (j->created_ms <= 0) {
                    j->created_ms = now;
                }
            }
        }
    }
done:
    if (c) {
        pool_put(b, c);
    }
    if (rs) {
        free_replies(rs, total);
    }
    free(rs);
    free(which);
    free(argsv);
    for (size_t k = 0; calls && k < n_calls; k++) {
        free(calls[k].idx);
        args_free(&calls[k].a);
    }
    free(calls);
    free(qidx);
    return rc;
}

/* ============================================================================================
 * exchange, lease_one
 * ========================================================================================== */

typedef struct xq {
    int qi;
    int want;
    bool sated; /* asked for with n = 0: the worker no longer wants this queue's jobs */
    bool poke;
    uint64_t ticket;
    size_t *acks; /* indices into the caller's acks */
    size_t n_acks;
    args a;
    size_t got;
} xq;

static xq *xq_for(xq *v, size_t *n, int qi)
{
    for (size_t i = 0; i < *n; i++) {
        if (v[i].qi == qi) {
            return &v[i];
        }
    }
    v[*n].qi = qi;
    return &v[(*n)++];
}

static int set_worker(broker_redis *b, const char *worker_id, bool *out_changed)
{
    *out_changed = false;
    if (!b->worker_id || strcmp(b->worker_id, worker_id) != 0) {
        char *w = strdup(worker_id);
        if (!w) {
            return BP_E_NOMEM;
        }
        free(b->worker_id);
        b->worker_id = w;
        *out_changed = true;
    }
    return BP_OK;
}

/* The wake thread must rebuild its key set (new queue for the worker, new worker id). */
static void rekey_work_thread(broker_redis *b)
{
    bool started;
    pthread_mutex_lock(&b->lock);
    started = b->work_started;
    pthread_mutex_unlock(&b->lock);
    /* It may be blocked in BZPOPMIN on the old key set: cut that short. The connection is
     * dropped and re-opened, which is fine for something that happens a handful of times in a
     * daemon's life (a new queue, a new worker id). */
    if (started) {
        redis_conn_interrupt(b->work_conn);
    }
}

/* Leased jobs of one script reply -> out array; records them in the id map. */
static int take_leased(broker_redis *b, int qi, const char *worker, int64_t now,
                       const redisReply *r, job ***out, size_t *n, size_t *cap, bp_error *err)
{
    for (size_t i = 0; i < r->elements; i++) {
        job *j = NULL;
        int rc = job_from_lease(r->element[i], worker, now, b->base.opts.lease_ms, &j, err);
        if (rc != BP_OK) {
            return rc;
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            job **v = realloc(*out, nc * sizeof *v);
            if (!v) {
                job_free(j);
                return bp_err(err, BP_E_NOMEM, "out of memory");
            }
            *out = v;
            *cap = nc;
        }
        (*out)[(*n)++] = j;
        /* With on_final, keep the job as leased: its final record is built from it at the ack,
         * instead of reading the record back from Redis on the hot path. */
        job *keep = b->base.opts.on_final ? job_clone(j) : NULL;
        if (b->base.opts.on_final && !keep) {
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        pthread_mutex_lock(&b->lock);
        rc = idmap_put(&b->leased, j->id, qi, keep);
        pthread_mutex_unlock(&b->lock);
        if (rc != BP_OK) {
            return bp_err(err, rc, "out of memory");
        }
    }
    return BP_OK;
}

static int br_exchange(broker *base, const char *worker_id, const broker_ack *acks, size_t n_acks,
                       const broker_want *wants, size_t n_wants, job ***out_jobs, size_t *out_n,
                       bp_error *err)
{
    broker_redis *b = BR(base);
    size_t nq = 0, cap = 0, n_pre = 0, total = 0;
    xq *qs = NULL;
    int *ackq = NULL;
    redis_conn *c = NULL;
    redisReply **rs = NULL;
    const redis_script **which = NULL;
    args **argsv = NULL;
    job **out = NULL;
    size_t nout = 0;
    job_list finals = {0};
    bool rekey = false;
    int64_t now = util_now_ms();
    int rc = BP_OK;

    *out_jobs = NULL;
    *out_n = 0;
    if (!worker_id || !*worker_id) {
        return bp_err(err, BP_E_INVAL, "exchange: no worker id");
    }
    for (size_t i = 0; i < n_wants; i++) {
        if (!valid_name(wants[i].queue) || wants[i].n < 0) {
            return bp_err(err, BP_E_INVAL, "exchange: bad want #%zu (queue '%s', n %d)", i,
                          wants[i].queue ? wants[i].queue : "", wants[i].n);
        }
    }
    for (size_t i = 0; i < n_acks; i++) {
        job_state s = acks[i].state;
        if (!acks[i].id || !*acks[i].id ||
            (s != JOB_SUCCESS && s != JOB_FAILURE && s != JOB_RETRY && s != JOB_REVOKED &&
             s != JOB_PENDING && s != JOB_STARTED)) {
            return bp_err(err, BP_E_INVAL,
                          "exchange: ack #%zu (%s) must say SUCCESS, FAILURE, RETRY, REVOKED, "
                          "PENDING (give back) or STARTED (a notice), not %s",
                          i, acks[i].id ? acks[i].id : "no id", job_state_name(s));
        }
    }
    qs = calloc(n_wants + n_acks + 1, sizeof *qs);
    ackq = calloc(n_acks + 1, sizeof *ackq);
    if (!qs || !ackq) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        goto done;
    }

    /* Which queue does each ack belong to? Ours are in the map; others are looked up. */
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < n_acks; i++) {
        ackq[i] = idmap_get(&b->leased, acks[i].id);
    }
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < n_acks; i++) {
        if (ackq[i] < 0) {
            bp_error e;
            int frc = find_queue(b, c, acks[i].id, &ackq[i], &e);
            if (frc == BP_E_NOTFOUND) {
                log_debug("broker", "ack for unknown job dropped id=%s", acks[i].id);
                ackq[i] = -1;
            } else if (frc != BP_OK) {
                rc = bp_err(err, frc, "exchange: %s", e.msg);
                goto done;
            }
        }
    }

    pthread_mutex_lock(&b->lock);
    if ((rc = set_worker(b, worker_id, &rekey)) != BP_OK) {
        pthread_mutex_unlock(&b->lock);
        rc = bp_err(err, rc, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_wants; i++) {
        int qi = queue_index(b, wants[i].queue);
        if (qi < 0) {
            rc = BP_E_NOMEM;
            break;
        }
        xq *x = xq_for(qs, &nq, qi);
        br_queue *q = b->queues[qi];
        x->want += wants[i].n;
        x->sated = x->sated || wants[i].n == 0;
        if (!q->in_worker) {
            q->in_worker = true;
            rekey = true;
        }
    }
    for (size_t i = 0; i < n_acks && rc == BP_OK; i++) {
        if (ackq[i] >= 0) {
            xq *x = xq_for(qs, &nq, ackq[i]);
            if (!x->acks && !(x->acks = malloc(n_acks * sizeof *x->acks))) {
                rc = BP_E_NOMEM;
                break;
            }
            x->acks[x->n_acks++] = i;
        }
    }
    for (size_t k = 0; k < nq && rc == BP_OK; k++) {
        br_queue *q = b->queues[qs[k].qi];
        if (qs[k].want > 0) {
            /* Optimistic: the worker wants jobs from q. If the script comes back short while
             * the wake thread is not watching q's marker, the script pokes it (see header). */
            qs[k].poke = b->work_started && !q->watched;
            q->hungry = true;
            qs[k].ticket = ++q->ticket;
        } else if (qs[k].sated) {
            /* The wake thread must stop taking q's marker: an idle worker of another daemon
             * needs it. (The script still runs: it leaves the marker when q has work.) */
            rekey = rekey || q->watched;
            q->hungry = false;
            ++q->ticket;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (rc != BP_OK) {
        rc = bp_err(err, rc, "out of memory");
        goto done;
    }
    if (rekey) {
        rekey_work_thread(b);
    }

    for (size_t k = 0; k < nq; k++) {
        xq *x = &qs[k];
        char tag[BR_MAX_NAME + 80], routing[BR_MAX_NAME + 80];
        queue_strings(b, x->qi, tag, sizeof tag, routing, sizeof routing, NULL, 0);
        pthread_mutex_lock(&b->lock);
        if (b->n_spare_args > 0) {
            x->a = b->spare_args[--b->n_spare_args];
        }
        pthread_mutex_unlock(&b->lock);
        args_reset(&x->a);
        args_addc(&x->a, routing);
        args_addc(&x->a, tag);
        args_addi(&x->a, now);
        args_addi(&x->a, b->base.opts.result_ttl_ms);
        args_add(&x->a, b->chan);
        args_add(&x->a, b->base.opts.on_final ? "1" : "0");
        args_add(&x->a, worker_id);
        args_addi(&x->a, b->base.opts.lease_ms);
        args_addi(&x->a, x->want);
        args_add(&x->a, x->poke ? "1" : "0");
        args_addi(&x->a, (int64_t)x->n_acks);
        for (size_t i = 0; i < x->n_acks; i++) {
            const broker_ack *ak = &acks[x->acks[i]];
            bool known = false;
            if (b->base.opts.on_final && ak->state != JOB_STARTED) {
                pthread_mutex_lock(&b->lock);
                const idnode *node = idmap_find(&b->leased, ak->id);
                known = node && node->j;
                pthread_mutex_unlock(&b->lock);
            }
            args_add(&x->a, ak->id);
            args_add(&x->a, job_state_name(ak->state));
            args_add(&x->a, ak->state == JOB_SUCCESS && ak->result ? ak->result : "");
            args_add(&x->a, ak->error ? ak->error : "");
            args_addi(&x->a, ak->state == JOB_RETRY ? ak->retry_at_ms : 0);
            args_addi(&x->a, ak->finished_ms > 0 ? ak->finished_ms : now);
            args_add(&x->a, known ? "1" : "0");
        }
        if (x->a.oom) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
    }
    if (nq == 0) {
        goto done;
    }

    pthread_mutex_lock(&b->lock);
    for (size_t k = 0; k < nq && rc == BP_OK; k++) {
        br_queue *q = b->queues[qs[k].qi];
        if (!q->registered) {
            rc = redis_conn_append(c, err, "SADD %s %s", b->queues_key, q->name);
            n_pre++;
        }
    }
    pthread_mutex_unlock(&b->lock);
    for (size_t k = 0; k < nq && rc == BP_OK; k++) {
        rc = redis_conn_append_eval(c, &scripts[S_EXCHANGE], 1, (int)qs[k].a.n, qs[k].a.v,
                                    qs[k].a.l, err);
    }
    total = redis_conn_pending(c);
    rs = calloc(total + 1, sizeof *rs);
    which = calloc(nq, sizeof *which);
    argsv = calloc(nq, sizeof *argsv);
    if (rc == BP_OK && (!rs || !which || !argsv)) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (rc != BP_OK) {
        if (total > 0) {
            redis_conn_drop(c); /* nothing was sent yet: dropping unsends it */
        }
        goto done;
    }
    if ((rc = redis_conn_read_replies(c, rs, total, err)) != BP_OK) {
        bp_err_prefix(err, "exchange: ");
        goto done;
    }
    for (size_t k = 0; k < nq; k++) {
        which[k] = &scripts[S_EXCHANGE];
        argsv[k] = &qs[k].a;
    }
    if ((rc = redo_noscript(c, rs + n_pre, nq, which, argsv, err)) != BP_OK) {
        goto done;
    }
    if (n_pre > 0 && redis_reply_status(rs[0], "SADD", NULL) == BP_OK) {
        pthread_mutex_lock(&b->lock);
        for (size_t k = 0; k < nq; k++) {
            b->queues[qs[k].qi]->registered = true;
        }
        pthread_mutex_unlock(&b->lock);
    }
    for (size_t k = 0; k < nq; k++) {
        const redisReply *r = rs[n_pre + k];
        if ((rc = script_reply(r, "exchange", err)) != BP_OK) {
            goto done;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[0]->type != REDIS_REPLY_ARRAY || r->element[2]->type != REDIS_REPLY_ARRAY) {
            rc = bp_err(err, BP_E_INTERNAL, "exchange: unexpected reply from the script");
            goto done;
        }
        if ((rc = take_leased(b, qs[k].qi, worker_id, now, r->element[0], &out, &nout, &cap,
                              err)) != BP_OK ||
            (rc = take_finals(r->element[1], &finals, err)) != BP_OK) {
            goto done;
        }
        qs[k].got = r->element[0]->elements;
        /* Acks finished as asked, of jobs we hold a copy of: their final record is built here.
         * A short job's STARTED notice travels in the same exchange as its final ack, with the
         * same id: the notice is no ack, so it is never the record's source. */
        for (size_t e = 0; e < r->element[2]->elements; e++) {
            const char *id = r->element[2]->element[e]->str;
            const broker_ack *ak = NULL;
            for (size_t i = 0; i < qs[k].n_acks && !ak; i++) {
                const broker_ack *cand = &acks[qs[k].acks[i]];
                ak = cand->state != JOB_STARTED && strcmp(cand->id, id) == 0 ? cand : NULL;
            }
            pthread_mutex_lock(&b->lock);
            idnode *node = idmap_find(&b->leased, id);
            job *j = node ? node->j : NULL;
            if (node) {
                node->j = NULL;
            }
            pthread_mutex_unlock(&b->lock);
            if (!j || !ak) {
                job_free(j);
                continue;
            }
            j->state = ak->state;
            j->finished_ms = ak->finished_ms > 0 ? ak->finished_ms : now;
            if ((ak->state == JOB_SUCCESS && job_set_str(&j->result, ak->result) != BP_OK) ||
                job_set_str(&j->error, ak->error) != BP_OK || job_list_push(&finals, j) != BP_OK) {
                rc = bp_err(err, BP_E_NOMEM, "out of memory");
                goto done;
            }
        }
    }
    /* Bookkeeping: acked ids leave the map (a STARTED notice is no ack: the job is still ours);
     * the latest exchange per queue decides hunger. */
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < n_acks; i++) {
        if (acks[i].state != JOB_STARTED) {
            idmap_del(&b->leased, acks[i].id);
        }
    }
    for (size_t k = 0; k < nq; k++) {
        br_queue *q = b->queues[qs[k].qi];
        if (qs[k].want > 0 && qs[k].ticket == q->ticket) {
            q->hungry = qs[k].got < (size_t)qs[k].want;
        }
    }
    pthread_mutex_unlock(&b->lock);
done:
    if (c) {
        pool_put(b, c);
    }
    if (rs) {
        free_replies(rs, total);
    }
    free(rs);
    free(which);
    free(argsv);
    for (size_t k = 0; qs && k < nq; k++) {
        free(qs[k].acks);
        pthread_mutex_lock(&b->lock);
        if (!qs[k].a.oom && b->n_spare_args < (int)BP_ARRAY_LEN(b->spare_args)) {
            b->spare_args[b->n_spare_args++] = qs[k].a;
            memset(&qs[k].a, 0, sizeof qs[k].a);
        }
        pthread_mutex_unlock(&b->lock);
        args_free(&qs[k].a);
    }
    free(qs);
    free(ackq);
    /* The scripts have committed: whatever reached a final state did, even if a later step of
     * this call failed. */
    emit_finals(b, &finals);
    if (rc != BP_OK) {
        for (size_t i = 0; i < nout; i++) {
            job_free(out[i]);
        }
        free(out);
        return rc;
    }
    *out_jobs = out;
    *out_n = nout;
    return BP_OK;
}

static int br_lease_one(broker *base, const char *worker_id, const char *id, job **out,
                        bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply *r = NULL;
    args a = {0};
    job_list finals = {0};
    int qi, rc;
    bool rekey = false;
    int64_t now = util_now_ms();
    *out = NULL;
    if (!worker_id || !*worker_id || !id || !*id) {
        return bp_err(err, BP_E_INVAL, "lease_one: a worker id and a job id are required");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if ((rc = find_queue(b, c, id, &qi, err)) != BP_OK) {
        goto done;
    }
    pthread_mutex_lock(&b->lock);
    args_script(&a, b, b->queues[qi], now);
    if (!b->queues[qi]->in_worker) {
        b->queues[qi]->in_worker = true;
        rekey = b->worker_id && strcmp(b->worker_id, worker_id) == 0;
    }
    pthread_mutex_unlock(&b->lock);
    if (rekey) {
        rekey_work_thread(b);
    }
    args_add(&a, id);
    args_add(&a, worker_id);
    args_addi(&a, b->base.opts.lease_ms);
    if (a.oom) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    rc = redis_conn_eval(c, &scripts[S_LEASE_ONE], 1, (int)a.n, a.v, a.l, &r, err);
    if (rc != BP_OK) {
        goto done;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        rc = bp_err(err, BP_E_INTERNAL, "lease_one: unexpected reply from the script");
    } else if (r->elements != 3 || take_finals(r->element[2], &finals, err) != BP_OK) {
        rc = bp_err(err, BP_E_INTERNAL, "lease_one: unexpected reply from the script");
    } else if (strcmp(r->element[0]->str, "OK") == 0) {
        rc = job_from_lease(r->element[1], worker_id, now, b->base.opts.lease_ms, out, err);
        if (rc == BP_OK) {
            pthread_mutex_lock(&b->lock);
            rc = idmap_put(&b->leased, id, qi, b->base.opts.on_final ? job_clone(*out) : NULL);
            pthread_mutex_unlock(&b->lock);
            if (rc != BP_OK) {
                rc = bp_err(err, rc, "out of memory");
            }
        }
    } else if (strcmp(r->element[0]->str, "NOTFOUND") == 0) {
        rc = bp_err(err, BP_E_NOTFOUND, "no job %s", id);
    } else {
        const char *st = r->elements > 1 ? r->element[1]->str : "?";
        rc = bp_err(err, BP_E_STATE, "job %s is not runnable now (it is %s)", id, st);
    }
done:
    if (r) {
        freeReplyObject(r);
    }
    args_free(&a);
    pool_put(b, c);
    emit_finals(b, &finals);
    return rc;
}

/* ============================================================================================
 * heartbeat, worker_stop, reap
 * ========================================================================================== */

static int br_heartbeat(broker *base, const broker_worker_info *w, const json_t *stats,
                        const json_t *progress, json_t **out_revoked, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    qsnap s = {0};
    args *qa = NULL;
    bool *mine = NULL;
    redisReply **rs = NULL;
    size_t total = 0, nscript = 0;
    char *queues_text = NULL, *stats_text = NULL, *data_text = NULL;
    args beat = {0};
    job_list finals = {0};
    int64_t now = util_now_ms();
    json_t *revoked = NULL;
    bool rekey = false;
    int rc = BP_OK;

    *out_revoked = NULL;
    if (!w || !w->id || !*w->id) {
        return bp_err(err, BP_E_INVAL, "heartbeat: no worker id");
    }
    /* The worker's declared queues join the set its wake thread watches and we renew. */
    pthread_mutex_lock(&b->lock);
    if (set_worker(b, w->id, &rekey) != BP_OK) {
        rc = BP_E_NOMEM;
    }
    if (json_is_object(w->queues)) {
        const char *name;
        json_t *v;
        json_object_foreach((json_t *)(uintptr_t)w->queues, name, v)
        {
            (void)v;
            if (valid_name(name)) {
                int qi = queue_index(b, name);
                if (qi < 0) {
                    rc = BP_E_NOMEM;
                    break;
                }
                if (!b->queues[qi]->in_worker) {
                    b->queues[qi]->in_worker = true;
                    rekey = true;
                }
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (rc != BP_OK) {
        return bp_err(err, rc, "out of memory");
    }
    if (rekey) {
        rekey_work_thread(b);
    }
    if ((rc = qsnap_take(b, &s, err)) != BP_OK) {
        return rc;
    }
    revoked = json_array();
    qa = calloc(s.n + 1, sizeof *qa);
    mine = calloc(s.n + 1, sizeof *mine);
    queues_text = w->queues ? json_dumps(w->queues, JSON_COMPACT) : strdup("{}");
    stats_text = stats ? json_dumps(stats, JSON_COMPACT) : strdup("{}");
    data_text = broker_worker_event_data(w, stats);
    if (!revoked || !qa || !mine || !queues_text || !stats_text || !data_text) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; i < s.n; i++) {
        mine[i] = b->queues[i]->in_worker;
    }
    pthread_mutex_unlock(&b->lock);
    for (size_t i = 0; i < s.n; i++) {
        if (!mine[i]) {
            continue;
        }
        args *a = &qa[i];
        size_t np_slot;
        int64_t np = 0;
        args_add(a, s.routing[i]);
        args_add(a, s.tag[i]);
        args_addi(a, now);
        args_addi(a, b->base.opts.result_ttl_ms);
        args_add(a, b->chan);
        args_add(a, b->base.opts.on_final ? "1" : "0");
        args_add(a, w->id);
        args_addi(a, b->base.opts.lease_ms);
        np_slot = a->n;
        args_add(a, "0");
        if (json_is_object(progress)) {
            const char *id;
            json_t *v;
            json_object_foreach((json_t *)(uintptr_t)progress, id, v)
            {
                pthread_mutex_lock(&b->lock);
                int qi = idmap_get(&b->leased, id);
                pthread_mutex_unlock(&b->lock);
                if (qi != (int)i || !json_is_array(v)) {
                    continue;
                }
                const char *msg = json_string_value(json_array_get(v, 1));
                args_add(a, id);
                args_addd(a, json_number_value(json_array_get(v, 0)));
                args_add(a, msg ? msg : "");
                np++;
            }
        }
        args_addi(a, np);
        if (!a->oom) {
            a->v[np_slot] = a->v[a->n - 1];
            a->l[np_slot] = a->l[a->n - 1];
            a->n--;
        }
        /* what the worker holds (every queue's script sees the whole list: a lease whose reply
         * was lost is in no local map) */
        args_addi(a, w->held ? (int64_t)w->n_held : -1);
        for (size_t k = 0; w->held && k < w->n_held; k++) {
            args_add(a, w->held[k]);
        }
        if (a->oom) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
    }

    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        goto done;
    }
    for (size_t i = 0; i < s.n && rc == BP_OK; i++) {
        if (mine[i]) {
            rc = redis_conn_append_eval(c, &scripts[S_HEARTBEAT], 1, (int)qa[i].n, qa[i].v, qa[i].l,
                                        err);
            nscript++;
        }
    }
    /* The registry entry (its TTL outlives a few missed beats; the reaper decides "offline")
     * and the worker's event, in one script. */
    if (rc == BP_OK) {
        args_reset(&beat);
        args_add(&beat, b->workers_key);
        args_add(&beat, b->gprefix);
        args_add(&beat, w->id);
        args_addi(&beat, now);
        args_addi(&beat, b->base.opts.worker_timeout_ms * 4);
        args_add(&beat, w->host ? w->host : "");
        args_addi(&beat, w->pid);
        args_add(&beat, queues_text);
        args_addi(&beat, w->started_ms);
        args_add(&beat, stats_text);
        args_add(&beat, data_text);
        rc = beat.oom ? bp_err(err, BP_E_NOMEM, "out of memory")
                      : redis_conn_append_eval(c, &scripts[S_WORKER_BEAT], 1, (int)beat.n, beat.v,
                                               beat.l, err);
    }
    total = redis_conn_pending(c);
    rs = calloc(total + 1, sizeof *rs);
    if (rc == BP_OK && !rs) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (rc != BP_OK) {
        if (total > 0) {
            redis_conn_drop(c);
        }
        goto done;
    }
    if ((rc = redis_conn_read_replies(c, rs, total, err)) != BP_OK) {
        bp_err_prefix(err, "heartbeat: ");
        goto done;
    }
    {
        /* NOSCRIPT redo for the script slots */
        size_t k = 0;
        for (size_t i = 0; i < s.n; i++) {
            if (!mine[i]) {
                continue;
            }
            if (redis_reply_is_noscript(rs[k])) {
                freeReplyObject(rs[k]);
                rs[k] = NULL;
                if ((rc = redis_conn_eval(c, &scripts[S_HEARTBEAT], 1, (int)qa[i].n, qa[i].v,
                                          qa[i].l, &rs[k], err)) != BP_OK) {
                    goto done;
                }
            }
            k++;
        }
        if (k < total && redis_reply_is_noscript(rs[k])) {
            freeReplyObject(rs[k]);
            rs[k] = NULL;
            if ((rc = redis_conn_eval(c, &scripts[S_WORKER_BEAT], 1, (int)beat.n, beat.v, beat.l,
                                      &rs[k], err)) != BP_OK) {
                goto done;
            }
        }
    }
    for (size_t k = 0; k < total; k++) {
        if ((rc = redis_reply_status(rs[k], "heartbeat", err)) != BP_OK) {
            goto done;
        }
    }
    /* {{id, flag, ...}, leases given back, finals}: flag '2' is a revoke with terminate */
    for (size_t k = 0; k < nscript; k++) {
        const redisReply *r = rs[k], *rv;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
            r->element[0]->type != REDIS_REPLY_ARRAY) {
            rc = bp_err(err, BP_E_INTERNAL, "heartbeat: unexpected reply from the script");
            goto done;
        }
        rv = r->element[0];
        for (size_t e = 0; e + 1 < rv->elements; e += 2) {
            const redisReply *flag = rv->element[e + 1];
            bool terminate = flag->type == REDIS_REPLY_STRING && strcmp(flag->str, "2") == 0;
            json_array_append_new(revoked, json_pack("{s:s, s:b}", "id", rv->element[e]->str,
                                                     "terminate", terminate));
        }
        if (r->element[1]->integer > 0) {
            log_warn("broker",
                     "heartbeat gave back %lld lease(s) of worker %s that never reached it (an "
                     "exchange reply was lost); those jobs run again",
                     (long long)r->element[1]->integer, w->id);
        }
        if ((rc = take_finals(r->element[2], &finals, err)) != BP_OK) {
            goto done;
        }
    }
done:
    if (c) {
        pool_put(b, c);
    }
    if (rs) {
        free_replies(rs, total);
    }
    free(rs);
    for (size_t i = 0; qa && i < s.n; i++) {
        args_free(&qa[i]);
    }
    free(qa);
    free(mine);
    free(queues_text);
    free(stats_text);
    free(data_text);
    args_free(&beat);
    qsnap_free(&s);
    emit_finals(b, &finals);
    if (rc != BP_OK) {
        json_decref(revoked);
        return rc;
    }
    *out_revoked = revoked;
    return BP_OK;
}

/* Run one script on every known queue (pipelined); replies in *out_rs (s->n of them). */
static int run_on_all(broker_redis *b, redis_conn *c, const qsnap *s, int script,
                      const char *const *extra, size_t n_extra, redisReply ***out_rs, bp_error *err)
{
    args *qa = calloc(s->n + 1, sizeof *qa);
    redisReply **rs = calloc(s->n + 1, sizeof *rs);
    int64_t now = util_now_ms();
    int rc = BP_OK;
    *out_rs = NULL;
    if (!qa || !rs) {
        free(qa);
        free(rs);
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < s->n; i++) {
        args_add(&qa[i], s->routing[i]);
        args_add(&qa[i], s->tag[i]);
        args_addi(&qa[i], now);
        args_addi(&qa[i], b->base.opts.result_ttl_ms);
        args_add(&qa[i], b->chan);
        args_add(&qa[i], b->base.opts.on_final ? "1" : "0");
        for (size_t k = 0; k < n_extra; k++) {
            args_add(&qa[i], extra[k]);
        }
        if (qa[i].oom) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < s->n && rc == BP_OK; i++) {
        rc = redis_conn_append_eval(c, &scripts[script], 1, (int)qa[i].n, qa[i].v, qa[i].l, err);
    }
    if (rc != BP_OK) {
        if (redis_conn_pending(c) > 0) {
            redis_conn_drop(c);
        }
    } else if ((rc = redis_conn_read_replies(c, rs, s->n, err)) == BP_OK) {
        for (size_t i = 0; i < s->n && rc == BP_OK; i++) {
            if (redis_reply_is_noscript(rs[i])) {
                freeReplyObject(rs[i]);
                rs[i] = NULL;
                rc = redis_conn_eval(c, &scripts[script], 1, (int)qa[i].n, qa[i].v, qa[i].l, &rs[i],
                                     err);
            } else {
                rc = script_reply(rs[i], scripts[script].name, err);
            }
        }
    }
    for (size_t i = 0; i < s->n; i++) {
        args_free(&qa[i]);
    }
    free(qa);
    if (rc != BP_OK) {
        free_replies(rs, s->n);
        free(rs);
        return rc;
    }
    *out_rs = rs;
    return BP_OK;
}

/* Take worker `id` out of the registry with a worker-offline event: gone for good after a
 * graceful stop (keep_ms 0), or kept visible as offline for keep_ms. *out_mine (may be NULL):
 * this call took it out (not another reaper). */
static int worker_gone(broker_redis *b, redis_conn *c, const char *id, const char *why,
                       int64_t keep_ms, bool *out_mine, bp_error *err)
{
    args a = {0};
    redisReply *r = NULL;
    int rc;
    args_add(&a, b->workers_key);
    args_add(&a, b->gprefix);
    args_add(&a, id);
    args_addi(&a, util_now_ms());
    args_add(&a, why);
    args_addi(&a, keep_ms);
    rc = a.oom ? bp_err(err, BP_E_NOMEM, "out of memory")
               : redis_conn_eval(c, &scripts[S_WORKER_GONE], 1, (int)a.n, a.v, a.l, &r, err);
    if (rc == BP_OK && out_mine) {
        *out_mine = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    }
    if (r) {
        freeReplyObject(r);
    }
    args_free(&a);
    return rc;
}

static int br_worker_stop(broker *base, const char *worker_id, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply **rs = NULL;
    qsnap s = {0};
    job_list finals = {0};
    int rc;
    if (!worker_id || !*worker_id) {
        return bp_err(err, BP_E_INVAL, "worker_stop: no worker id");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if ((rc = refresh_queues(b, c, err)) != BP_OK || (rc = qsnap_take(b, &s, err)) != BP_OK) {
        goto done;
    }
    const char *extra[] = {worker_id};
    if ((rc = run_on_all(b, c, &s, S_RELEASE, extra, 1, &rs, err)) != BP_OK) {
        goto done;
    }
    int64_t released = 0;
    for (size_t i = 0; i < s.n && rc == BP_OK; i++) {
        if (rs[i]->type != REDIS_REPLY_ARRAY || rs[i]->elements != 2) {
            rc = bp_err(err, BP_E_INTERNAL, "worker_stop: unexpected reply from the script");
            break;
        }
        released += rs[i]->element[0]->integer;
        rc = take_finals(rs[i]->element[1], &finals, err);
    }
    if (rc != BP_OK) {
        goto done;
    }
    rc = worker_gone(b, c, worker_id, "stopped", 0, NULL, err);
    pthread_mutex_lock(&b->lock);
    if (b->worker_id && strcmp(b->worker_id, worker_id) == 0) {
        idmap_clear(&b->leased);
    }
    pthread_mutex_unlock(&b->lock);
    log_info("broker", "worker stopped worker=%s released=%" PRId64, worker_id, released);
done:
    if (rs) {
        free_replies(rs, s.n);
        free(rs);
    }
    qsnap_free(&s);
    pool_put(b, c);
    emit_finals(b, &finals);
    return rc;
}

static int br_reap(broker *base, broker_reap_report *out, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply *dead = NULL;
    redisReply **rs = NULL;
    qsnap s = {0};
    const char **extra = NULL;
    job_list finals = {0};
    int rc;
    broker_reap_report rep = {0};
    char cutoff[32], maxc[16], limit[16], nd[16];

    if (out) {
        memset(out, 0, sizeof *out);
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if ((rc = refresh_queues(b, c, err)) != BP_OK || (rc = qsnap_take(b, &s, err)) != BP_OK) {
        goto done;
    }
    /* Workers whose last heartbeat is older than worker_timeout are gone: their leases are
     * reclaimed now, not when the leases run out. */
    snprintf(cutoff, sizeof cutoff, "(%" PRId64, util_now_ms() - b->base.opts.worker_timeout_ms);
    if ((rc = redis_conn_command(c, &dead, err, "ZRANGEBYSCORE %s -inf %s", b->workers_key,
                                 cutoff)) != BP_OK) {
        goto done;
    }
    extra = calloc(dead->elements + 4, sizeof *extra);
    if (!extra) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    snprintf(maxc, sizeof maxc, "%d", b->base.opts.max_crashes);
    snprintf(limit, sizeof limit, "%d", BR_REAP_LIMIT);
    snprintf(nd, sizeof nd, "%zu", dead->elements);
    extra[0] = maxc;
    extra[1] = limit;
    extra[2] = nd;
    for (size_t i = 0; i < dead->elements; i++) {
        extra[3 + i] = dead->element[i]->str;
    }
    /* A backlog larger than one batch takes a few rounds; dead workers only need the first. */
    for (int round = 0; round < 20; round++) {
        bool more = false;
        if ((rc = run_on_all(b, c, &s, S_REAP, extra, round == 0 ? 3 + dead->elements : 3, &rs,
                             err)) != BP_OK) {
            goto done;
        }
        if (round == 0) {
            nd[0] = '0';
            nd[1] = '\0';
        }
        for (size_t i = 0; i < s.n; i++) {
            const redisReply *r = rs[i];
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 7) {
                continue;
            }
            if ((rc = take_finals(r->element[6], &finals, err)) != BP_OK) {
                free_replies(rs, s.n);
                free(rs);
                rs = NULL;
                goto done;
            }
            rep.requeued += r->element[0]->integer;
            rep.dead += r->element[1]->integer;
            rep.expired += r->element[2]->integer;
            rep.results_purged += r->element[3]->integer;
            for (size_t k = 2; k < 6; k++) {
                if (r->element[k]->integer >= BR_REAP_LIMIT) {
                    more = true;
                }
            }
        }
        free_replies(rs, s.n);
        free(rs);
        rs = NULL;
        if (!more) {
            break;
        }
    }
    for (size_t i = 0; i < dead->elements; i++) {
        const char *id = dead->element[i]->str;
        char why[96];
        bool mine = false;
        snprintf(why, sizeof why, "no heartbeat for %" PRId64 " ms",
                 b->base.opts.worker_timeout_ms);
        /* Only the reaper that took it out counts the loss (several daemons reap). It stays
         * visible as offline for an hour (`betpipe status`). */
        if ((rc = worker_gone(b, c, id, why, BR_OFFLINE_KEEP_MS, &mine, err)) != BP_OK) {
            goto done;
        }
        if (mine) {
            rep.workers_lost++;
            log_warn("broker", "worker offline worker=%s: %s; its jobs were requeued", id, why);
        }
    }
    if (out) {
        *out = rep;
    }
done:
    if (dead) {
        freeReplyObject(dead);
    }
    free(extra);
    qsnap_free(&s);
    pool_put(b, c);
    emit_finals(b, &finals);
    return rc;
}

/* ============================================================================================
 * next_due, get, revoke, purge
 * ========================================================================================== */

static int br_next_due(broker *base, const char *const *queues, size_t n_queues, int64_t *out_ms,
                       bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply **rs = NULL;
    int rc = BP_OK;
    *out_ms = INT64_MAX;
    if (n_queues == 0) {
        return BP_OK;
    }
    for (size_t i = 0; i < n_queues; i++) {
        if (!valid_name(queues[i])) {
            return bp_err(err, BP_E_INVAL, "next_due: '%s' is not a queue name",
                          queues[i] ? queues[i] : "");
        }
    }
    rs = calloc(3 * n_queues, sizeof *rs);
    if (!rs) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        free(rs);
        return rc;
    }
    for (size_t i = 0; i < n_queues && rc == BP_OK; i++) {
        rc = redis_conn_append(c, err, "ZRANGE %s:{%s}:scheduled 0 0 WITHSCORES", b->prefix,
                               queues[i]);
        if (rc == BP_OK) {
            rc = redis_conn_append(c, err, "ZRANGE %s:{%s}:retry 0 0 WITHSCORES", b->prefix,
                                   queues[i]);
        }
        /* the next token of a type whose jobs are parked by its rate limit (a token already
         * due is the next exchange's business, not a reason to wake up) */
        if (rc == BP_OK) {
            rc = redis_conn_append(
                c, err, "ZRANGEBYSCORE %s:{%s}:rlq (%" PRId64 " +inf WITHSCORES LIMIT 0 1",
                b->prefix, queues[i], util_now_ms());
        }
    }
    if (rc != BP_OK) {
        if (redis_conn_pending(c) > 0) {
            redis_conn_drop(c);
        }
    } else if ((rc = redis_conn_read_replies(c, rs, 3 * n_queues, err)) == BP_OK) {
        for (size_t i = 0; i < 3 * n_queues; i++) {
            if ((rc = redis_reply_status(rs[i], "next_due", err)) != BP_OK) {
                break;
            }
            if (rs[i]->type == REDIS_REPLY_ARRAY && rs[i]->elements == 2) {
                /* token times are fractional: round up, never wake a hair too early */
                int64_t due =
                    str_i64(rs[i]->element[1]->str, rs[i]->element[1]->len) + (i % 3 == 2 ? 1 : 0);
                if (due < *out_ms) {
                    *out_ms = due;
                }
            }
        }
        free_replies(rs, 3 * n_queues);
    }
    free(rs);
    pool_put(b, c);
    return rc;
}

/* HGETALL + ZSCORE active for one id in one queue. */
static int fetch_job(redis_conn *c, const char *tag, const char *id, job **out, bp_error *err)
{
    redisReply *rs[2] = {NULL, NULL};
    int rc;
    *out = NULL;
    if ((rc = redis_conn_append(c, err, "HGETALL %sj:%s", tag, id)) != BP_OK) {
        return rc;
    }
    if ((rc = redis_conn_append(c, err, "ZSCORE %sactive %s", tag, id)) != BP_OK) {
        redis_conn_drop(c);
        return rc;
    }
    if ((rc = redis_conn_read_replies(c, rs, 2, err)) != BP_OK) {
        return rc;
    }
    if ((rc = redis_reply_status(rs[0], "get", err)) == BP_OK) {
        if (rs[0]->type != REDIS_REPLY_ARRAY || rs[0]->elements == 0) {
            rc = bp_err(err, BP_E_NOTFOUND, "no job %s", id);
        } else if ((rc = job_from_hash(id, rs[0], out, err)) == BP_OK &&
                   (*out)->state == JOB_STARTED && rs[1]->type == REDIS_REPLY_STRING) {
            (*out)->lease_until_ms = str_i64(rs[1]->str, rs[1]->len);
        }
    }
    free_replies(rs, 2);
    return rc;
}

static int br_get(broker *base, const char *id, job **out, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    char tag[BR_MAX_NAME + 80];
    int qi, rc;
    *out = NULL;
    if (!id || !*id) {
        return bp_err(err, BP_E_INVAL, "get: no job id");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if ((rc = find_queue(b, c, id, &qi, err)) == BP_OK) {
        queue_strings(b, qi, tag, sizeof tag, NULL, 0, NULL, 0);
        rc = fetch_job(c, tag, id, out, err);
    }
    pool_put(b, c);
    return rc;
}

static int br_revoke(broker *base, const char *id, bool terminate, job_state *out_state,
                     bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply *r = NULL;
    args a = {0};
    job_list finals = {0};
    int qi, rc;
    if (!id || !*id) {
        return bp_err(err, BP_E_INVAL, "revoke: no job id");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if ((rc = find_queue(b, c, id, &qi, err)) != BP_OK) {
        goto done;
    }
    pthread_mutex_lock(&b->lock);
    args_script(&a, b, b->queues[qi], util_now_ms());
    pthread_mutex_unlock(&b->lock);
    args_add(&a, id);
    args_add(&a, terminate ? "1" : "0");
    if (a.oom) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = redis_conn_eval(c, &scripts[S_REVOKE], 1, (int)a.n, a.v, a.l, &r, err)) != BP_OK) {
        goto done;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        take_finals(r->element[2], &finals, err) != BP_OK) {
        rc = bp_err(err, BP_E_INTERNAL, "revoke: unexpected reply from the script");
    } else if (strcmp(r->element[0]->str, "NOTFOUND") == 0) {
        rc = bp_err(err, BP_E_NOTFOUND, "no job %s", id);
    } else {
        job_state st = JOB_REVOKED;
        if (job_state_parse(r->element[0]->str, &st) != BP_OK) {
            rc = bp_err(err, BP_E_CORRUPT, "revoke: job %s has state '%s'", id, r->element[0]->str);
        } else {
            if (out_state) {
                *out_state = st;
            }
            if (job_state_is_final(st) && st != JOB_REVOKED) {
                rc = bp_err(err, BP_E_STATE, "job %s already finished (%s); nothing to revoke", id,
                            job_state_name(st));
            } else if (st == JOB_REVOKED && strcmp(r->element[1]->str, "now") != 0) {
                rc = bp_err(err, BP_E_STATE, "job %s already finished (REVOKED); nothing to revoke",
                            id);
            }
        }
        if (rc == BP_OK) {
            log_info("broker", "job revoked id=%s state=%s%s", id, job_state_name(st),
                     terminate && st == JOB_STARTED ? " (terminate)" : "");
        }
    }
done:
    if (r) {
        freeReplyObject(r);
    }
    args_free(&a);
    pool_put(b, c);
    emit_finals(b, &finals);
    return rc;
}

static int br_purge(broker *base, const char *queue, int64_t *out_removed, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    args a = {0};
    int64_t removed = 0;
    int qi, rc;
    if (out_removed) {
        *out_removed = 0;
    }
    if (!valid_name(queue)) {
        return bp_err(err, BP_E_INVAL, "purge: '%s' is not a queue name", queue ? queue : "");
    }
    pthread_mutex_lock(&b->lock);
    qi = queue_index(b, queue);
    pthread_mutex_unlock(&b->lock);
    if (qi < 0) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    for (;;) {
        redisReply *r = NULL;
        pthread_mutex_lock(&b->lock);
        args_script(&a, b, b->queues[qi], util_now_ms());
        pthread_mutex_unlock(&b->lock);
        args_addi(&a, BR_PURGE_LIMIT);
        if (a.oom) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            break;
        }
        if ((rc = redis_conn_eval(c, &scripts[S_PURGE], 1, (int)a.n, a.v, a.l, &r, err)) != BP_OK) {
            break;
        }
        long long n = r->integer;
        freeReplyObject(r);
        removed += n;
        if (n < BR_PURGE_LIMIT) {
            break;
        }
    }
    args_free(&a);
    pool_put(b, c);
    if (out_removed) {
        *out_removed = removed;
    }
    if (rc == BP_OK) {
        log_info("broker", "queue purged queue=%s removed=%" PRId64, queue, removed);
    }
    return rc;
}

/* ============================================================================================
 * stats, list
 * ========================================================================================== */

static json_t *worker_json(const redisReply *h, const char *id, int64_t last, int64_t now,
                           int64_t timeout_ms)
{
    json_t *o = json_object();
    char iso[40];
    int64_t offline = 0;
    if (!o) {
        return NULL;
    }
    json_object_set_new(o, "id", json_string(id));
    for (size_t i = 0; h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        if (field_is(k, "host")) {
            json_object_set_new(o, "host", json_string(v->str));
        } else if (field_is(k, "pid")) {
            json_object_set_new(o, "pid", json_integer(str_i64(v->str, v->len)));
        } else if (field_is(k, "queues") || field_is(k, "stats")) {
            json_t *parsed = json_loads(v->str, 0, NULL);
            json_object_set_new(o, k->str, parsed ? parsed : json_object());
        } else if (field_is(k, "started")) {
            util_format_iso8601(str_i64(v->str, v->len), iso, sizeof iso);
            json_object_set_new(o, "started", json_string(iso));
        } else if (field_is(k, "hb") && last <= 0) {
            last = str_i64(v->str, v->len);
        } else if (field_is(k, "offline")) {
            offline = str_i64(v->str, v->len);
        } else if (field_is(k, "why")) {
            json_object_set_new(o, "offline_reason", json_string(v->str));
        }
    }
    util_format_iso8601(last, iso, sizeof iso);
    json_object_set_new(o, "heartbeat", json_string(iso));
    json_object_set_new(o, "last_heartbeat", json_string(iso));
    json_object_set_new(o, "heartbeat_age_ms", json_integer(now - last));
    json_object_set_new(o, "online", json_boolean(offline == 0 && now - last < timeout_ms));
    if (offline > 0) {
        util_format_iso8601(offline, iso, sizeof iso);
        json_object_set_new(o, "offline_since", json_string(iso));
    }
    return o;
}

/* Jobs parked by their rate limit, per queue (stats): one ZRANGE of the parked types and a
 * ZCARD each, only for queues that have any. */
static int count_throttled(broker_redis *b, redis_conn *c, const qsnap *s, json_t *qobj,
                           bp_error *err)
{
    (void)b;
    for (size_t i = 0; i < s->n; i++) {
        redisReply *types = NULL, **rs = NULL;
        int64_t held = 0;
        json_t *q = json_object_get(qobj, s->name[i]);
        int rc;
        if (!q || json_integer_value(json_object_get(q, "throttled")) == 0) {
            continue;
        }
        if ((rc = redis_conn_command(c, &types, err, "ZRANGE %srlq 0 -1", s->tag[i])) != BP_OK) {
            return rc;
        }
        rs = calloc(types->elements + 1, sizeof *rs);
        if (!rs) {
            freeReplyObject(types);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        for (size_t k = 0; k < types->elements && rc == BP_OK; k++) {
            rc = redis_conn_append(c, err, "ZCARD %srlp:%s", s->tag[i], types->element[k]->str);
        }
        if (rc == BP_OK) {
            rc = redis_conn_read_replies(c, rs, types->elements, err);
        } else if (redis_conn_pending(c)) {
            redis_conn_drop(c);
        }
        for (size_t k = 0; rc == BP_OK && k < types->elements; k++) {
            held += rs[k]->type == REDIS_REPLY_INTEGER ? rs[k]->integer : 0;
        }
        if (rc == BP_OK) {
            free_replies(rs, types->elements);
        }
        free(rs);
        freeReplyObject(types);
        if (rc != BP_OK) {
            return rc;
        }
        /* throttled jobs are waiting too: they count in both */
        json_object_set_new(q, "throttled", json_integer(held));
        json_object_set_new(q, "waiting",
                            json_integer(json_integer_value(json_object_get(q, "waiting")) + held));
    }
    return BP_OK;
}

static int br_stats(broker *base, json_t **out, bp_error *err)
{
    static const char *const names[] = {"waiting", "delayed", "running", "retry",   "succeeded",
                                        "failed",  "dead",    "revoked", "expired", "throttled"};
    static const char *const keys[] = {"pending",      "scheduled",    "active",    "retry",
                                       "done:SUCCESS", "done:FAILURE", "done:DEAD", "done:REVOKED",
                                       "done:EXPIRED", "rlq"};
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply **rs = NULL, *wz = NULL, *oz = NULL, **wh = NULL;
    qsnap s = {0};
    json_t *root = NULL, *qobj = NULL, *workers = NULL;
    size_t per = BP_ARRAY_LEN(keys), total = 0;
    int64_t now = util_now_ms();
    int rc;
    *out = NULL;
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if ((rc = refresh_queues(b, c, err)) != BP_OK || (rc = qsnap_take(b, &s, err)) != BP_OK) {
        goto done;
    }
    rs = calloc(s.n * per + 2, sizeof *rs);
    root = json_object();
    qobj = json_object();
    workers = json_array();
    if (!rs || !root || !qobj || !workers) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < s.n && rc == BP_OK; i++) {
        for (size_t k = 0; k < per && rc == BP_OK; k++) {
            rc = redis_conn_append(c, err, "ZCARD %s%s", s.tag[i], keys[k]);
        }
    }
    if (rc == BP_OK) {
        rc = redis_conn_append(c, err, "ZRANGE %s 0 -1 WITHSCORES", b->workers_key);
    }
    if (rc == BP_OK) {
        rc = redis_conn_append(c, err, "ZRANGE %s 0 -1", b->offline_key);
    }
    total = redis_conn_pending(c);
    if (rc != BP_OK) {
        if (total) {
            redis_conn_drop(c);
        }
        total = 0;
        goto done;
    }
    if ((rc = redis_conn_read_replies(c, rs, total, err)) != BP_OK) {
        total = 0;
        goto done;
    }
    for (size_t i = 0; i < s.n; i++) {
        json_t *q = json_object();
        for (size_t k = 0; k < per; k++) {
            const redisReply *r = rs[i * per + k];
            json_object_set_new(q, names[k],
                                json_integer(r->type == REDIS_REPLY_INTEGER ? r->integer : 0));
        }
        json_object_set_new(qobj, s.name[i], q);
    }
    wz = rs[total - 2];
    oz = rs[total - 1];
    rs[total - 2] = rs[total - 1] = NULL;
    if ((rc = redis_reply_status(wz, "stats", err)) != BP_OK ||
        (rc = redis_reply_status(oz, "stats", err)) != BP_OK ||
        (rc = count_throttled(b, c, &s, qobj, err)) != BP_OK) {
        goto done;
    }
    {
        /* live workers (with their last heartbeat as the score), then those declared offline */
        size_t nw = wz->elements / 2, no = oz->elements, all = nw + no;
        if (all > 0) {
            wh = calloc(all, sizeof *wh);
            if (!wh) {
                rc = bp_err(err, BP_E_NOMEM, "out of memory");
                goto done;
            }
            for (size_t i = 0; i < nw && rc == BP_OK; i++) {
                rc = redis_conn_append(c, err, "HGETALL %s:worker:%s", b->prefix,
                                       wz->element[2 * i]->str);
            }
            for (size_t i = 0; i < no && rc == BP_OK; i++) {
                rc = redis_conn_append(c, err, "HGETALL %s:worker:%s", b->prefix,
                                       oz->element[i]->str);
            }
            if (rc != BP_OK || (rc = redis_conn_read_replies(c, wh, all, err)) != BP_OK) {
                if (redis_conn_pending(c)) {
                    redis_conn_drop(c);
                }
                free(wh);
                wh = NULL;
                goto done;
            }
            for (size_t i = 0; i < nw; i++) {
                const redisReply *idr = wz->element[2 * i], *sc = wz->element[2 * i + 1];
                json_array_append_new(workers,
                                      worker_json(wh[i], idr->str, str_i64(sc->str, sc->len), now,
                                                  b->base.opts.worker_timeout_ms));
            }
            for (size_t i = 0; i < no; i++) {
                if (wh[nw + i]->type == REDIS_REPLY_ARRAY && wh[nw + i]->elements > 0) {
                    json_array_append_new(workers,
                                          worker_json(wh[nw + i], oz->element[i]->str, 0, now,
                                                      b->base.opts.worker_timeout_ms));
                }
            }
            free_replies(wh, all);
            free(wh);
            wh = NULL;
        }
    }
    json_object_set_new(root, "backend", json_string("redis"));
    json_object_set_new(root, "broker", json_string("redis"));
    json_object_set(root, "queues", qobj);
    json_object_set(root, "workers", workers);
    *out = root;
    root = NULL;
done:
    if (rs) {
        free_replies(rs, total);
    }
    free(rs);
    if (wz) {
        freeReplyObject(wz);
    }
    if (oz) {
        freeReplyObject(oz);
    }
    json_decref(root);
    json_decref(qobj);
    json_decref(workers);
    qsnap_free(&s);
    pool_put(b, c);
    return rc;
}

static int cmp_newest_first(const void *pa, const void *pb)
{
    const job *a = *(const job *const *)pa, *b = *(const job *const *)pb;
    if (a->created_ms != b->created_ms) {
        return a->created_ms > b->created_ms ? -1 : 1;
    }
    return -strcmp(a->id, b->id);
}

/* Up to `limit` jobs of one queue matching the filter, newest first, appended to *v. The scan
 * reads an index newest first: the finished set of the asked state, the lease set for STARTED,
 * otherwise the creation index - and stops after BR_LIST_SCAN_MAX entries. */
static int list_queue(redis_conn *c, const char *tag, const broker_filter *f, int limit, job ***v,
                      size_t *n, size_t *cap, bp_error *err)
{
    char key[BR_MAX_NAME + 100];
    const int page = 256;
    int found = 0;
    int rc = BP_OK;
    if (f->state >= 0 && job_state_is_final((job_state)f->state)) {
        snprintf(key, sizeof key, "%sdone:%s", tag, job_state_name((job_state)f->state));
    } else if (f->state == JOB_STARTED) {
        snprintf(key, sizeof key, "%sactive", tag);
    } else {
        snprintf(key, sizeof key, "%sall", tag);
    }
    for (int off = 0; off < BR_LIST_SCAN_MAX && found < limit; off += page) {
        redisReply *ids = NULL, **hs = NULL;
        rc = redis_conn_command(c, &ids, err, "ZREVRANGE %s %d %d", key, off, off + page - 1);
        if (rc != BP_OK) {
            return rc;
        }
        if (ids->elements == 0) {
            freeReplyObject(ids);
            break;
        }
        hs = calloc(ids->elements, sizeof *hs);
        if (!hs) {
            freeReplyObject(ids);
            return bp_err(err, BP_E_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < ids->elements && rc == BP_OK; i++) {
            rc = redis_conn_append(c, err, "HGETALL %sj:%s", tag, ids->element[i]->str);
        }
        if (rc == BP_OK) {
            rc = redis_conn_read_replies(c, hs, ids->elements, err);
        } else if (redis_conn_pending(c)) {
            redis_conn_drop(c);
        }
        for (size_t i = 0; rc == BP_OK && i < ids->elements && found < limit; i++) {
            job *j = NULL;
            if (hs[i]->type != REDIS_REPLY_ARRAY || hs[i]->elements == 0 ||
                job_from_hash(ids->element[i]->str, hs[i], &j, NULL) != BP_OK) {
                continue; /* expired under us, or not a record */
            }
            if ((f->state >= 0 && (int)j->state != f->state) ||
                (f->type && strcmp(f->type, j->type) != 0)) {
                job_free(j);
                continue;
            }
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                job **nv = realloc(*v, nc * sizeof *nv);
                if (!nv) {
                    job_free(j);
                    rc = bp_err(err, BP_E_NOMEM, "out of memory");
                    break;
                }
                *v = nv;
                *cap = nc;
            }
            (*v)[(*n)++] = j;
            found++;
        }
        size_t got = ids->elements;
        if (hs) {
            free_replies(hs, got);
        }
        free(hs);
        freeReplyObject(ids);
        if (rc != BP_OK || got < (size_t)page) {
            break;
        }
    }
    return rc;
}

static int br_list(broker *base, const broker_filter *f, json_t **out, bp_error *err)
{
    broker_redis *b = BR(base);
    broker_filter all = {.queue = NULL, .state = -1, .type = NULL, .limit = 0};
    redis_conn *c = NULL;
    qsnap s = {0};
    job **v = NULL;
    size_t n = 0, cap = 0;
    json_t *arr = NULL;
    int limit, rc;
    *out = NULL;
    if (!f) {
        f = &all;
    }
    limit = f->limit > 0 ? f->limit : 100;
    if (f->queue && !valid_name(f->queue)) {
        return bp_err(err, BP_E_INVAL, "list: '%s' is not a queue name", f->queue);
    }
    if (f->state >= JOB_STATE_COUNT) {
        return bp_err(err, BP_E_INVAL, "list: unknown state %d", f->state);
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if (f->queue) {
        char tag[BR_MAX_NAME + 80];
        snprintf(tag, sizeof tag, "%s:{%s}:", b->prefix, f->queue);
        rc = list_queue(c, tag, f, limit, &v, &n, &cap, err);
    } else if ((rc = refresh_queues(b, c, err)) == BP_OK &&
               (rc = qsnap_take(b, &s, err)) == BP_OK) {
        for (size_t i = 0; i < s.n && rc == BP_OK; i++) {
            rc = list_queue(c, s.tag[i], f, limit, &v, &n, &cap, err);
        }
    }
    pool_put(b, c);
    qsnap_free(&s);
    if (rc == BP_OK) {
        if (n > 1) {
            qsort(v, n, sizeof *v, cmp_newest_first);
        }
        arr = json_array();
        for (size_t i = 0; arr && i < n && i < (size_t)limit; i++) {
            json_t *o = job_to_json(v[i]);
            if (!o || json_array_append_new(arr, o) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        if (!arr) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
        }
    }
    for (size_t i = 0; i < n; i++) {
        job_free(v[i]);
    }
    free(v);
    if (rc == BP_OK) {
        *out = arr;
    }
    return rc;
}

/* ============================================================================================
 * Waking
 * ========================================================================================== */

/* Sleep until `ms` passed or destroy began. */
static void nap(broker_redis *b, int64_t ms)
{
    struct pollfd p = {b->stop_fd, POLLIN, 0};
    if (ms < 10) {
        ms = 10;
    }
    if (ms > 1000) {
        ms = 1000;
    }
    poll(&p, 1, (int)ms);
}

/* Which queue's marker is `key`? -1 if none. Caller holds the lock. */
static int marker_queue(broker_redis *b, const char *key)
{
    for (size_t i = 0; i < b->n_queues; i++) {
        size_t tl = strlen(b->queues[i]->tag);
        if (strncmp(key, b->queues[i]->tag, tl) == 0 && strcmp(key + tl, "marker") == 0) {
            return (int)i;
        }
    }
    return -1;
}

/*
 * The WORK thread: BZPOPMIN over this worker's wn keys and the markers of the queues it is
 * hungry for. See the header comment for the rules; in short: a marker popped for a hungry
 * queue wakes the pool, one popped for a sated queue is put back for someone else.
 */
static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i]);
    }
    free(keys);
}

/* The argv of the next BZPOPMIN; marks the queues whose marker it watches. Caller holds the
 * lock. NULL (and *out_n 0) on allocation failure. */
static char **watch_keys(broker_redis *b, size_t *out_n)
{
    char **keys = calloc(2 * b->n_queues + 4, sizeof *keys);
    size_t n = 0;
    bool ok = keys != NULL, serving = false;
    *out_n = 0;
    for (size_t i = 0; i < b->n_queues; i++) {
        serving = serving || b->queues[i]->in_worker;
    }
    serving = serving && b->worker_id;
    if (ok) {
        ok = (keys[n++] = strdup("BZPOPMIN")) != NULL;
    }
    /* A handle that has not asked for any queue yet listens for work anywhere. */
    if (ok && !serving) {
        ok = (keys[n++] = strdup(b->anywork_key)) != NULL;
    }
    for (size_t i = 0; ok && serving && i < b->n_queues; i++) {
        br_queue *q = b->queues[i];
        q->watched = q->in_worker && q->hungry;
        if (q->in_worker) {
            ok = (keys[n++] = util_asprintf("%swn:%s", q->tag, b->worker_id)) != NULL;
        }
        if (ok && q->watched) {
            ok = (keys[n++] = util_asprintf("%smarker", q->tag)) != NULL;
        }
    }
    if (ok) {
        ok = (keys[n++] = util_asprintf("%d", BR_BLOCK_MS / 1000)) != NULL;
    }
    if (!ok) {
        if (keys) {
            free_keys(keys, n);
        }
        return NULL;
    }
    *out_n = n;
    return keys;
}

static void *work_thread(void *arg)
{
    broker_redis *b = arg;
    bool was_down = false;
    while (!atomic_load(&b->stopping)) {
        char **keys;
        size_t nk = 0;
        if (was_down) {
            /* Say "look again" as soon as Redis is back, not when the next BZPOPMIN returns:
             * whatever was enqueued during the outage is waiting now. */
            if (redis_conn_check(b->work_conn, NULL) != BP_OK) {
                nap(b, redis_conn_retry_in_ms(b->work_conn));
                continue;
            }
            was_down = false;
            signal_wake(b, BROKER_WAKE_WORK);
        }
        pthread_mutex_lock(&b->lock);
        keys = atomic_load(&b->stopping) ? NULL : watch_keys(b, &nk);
        pthread_mutex_unlock(&b->lock);
        if (atomic_load(&b->stopping)) {
            break;
        }
        if (!keys) {
            nap(b, 100);
            continue;
        }

        redisReply *r = NULL;
        bp_error e;
        int rc = redis_conn_command_blocking(b->work_conn, BR_BLOCK_MS, (int)nk,
                                             (const char **)(void *)keys, NULL, &r, &e);
        free_keys(keys, nk);
        if (rc == BP_E_CANCELLED) {
            continue; /* re-key or destroy */
        }
        if (rc != BP_OK) {
            was_down = true;
            pthread_mutex_lock(&b->lock);
            for (size_t i = 0; i < b->n_queues; i++) {
                b->queues[i]->watched = false;
            }
            pthread_mutex_unlock(&b->lock);
            nap(b, redis_conn_retry_in_ms(b->work_conn));
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
            const char *key = r->element[0]->str;
            const char *member = r->element[1]->str;
            pthread_mutex_lock(&b->lock);
            int qi = marker_queue(b, key);
            bool hungry = qi >= 0 && b->queues[qi]->hungry;
            pthread_mutex_unlock(&b->lock);
            if (qi >= 0 && !hungry) {
                /* Not ours to take: put the marker back for an idle worker. */
                redis_conn_command(b->work_conn, NULL, NULL, "ZADD %s 0 w", key);
            } else if (qi >= 0 || strcmp(key, b->anywork_key) == 0) {
                signal_wake(b, BROKER_WAKE_WORK);
            } else if (strcmp(member, "r") == 0) {
                signal_wake(b, BROKER_WAKE_WORK | BROKER_WAKE_REVOKE);
            }
            /* "p": re-key only, which the loop does anyway */
        }
        freeReplyObject(r);
    }
    return NULL;
}

/* The DONE thread: SUBSCRIBE P:done, wake on every message, resubscribe after an outage. */
static void *done_thread(void *arg)
{
    broker_redis *b = arg;
    uint64_t subscribed_gen = redis_conn_generation(b->done_conn);
    bool subscribed = b->done_subscribed; /* subscribe() tried the first SUBSCRIBE */
    while (!atomic_load(&b->stopping)) {
        redisReply *r = NULL;
        bp_error e;
        int rc;
        if (!subscribed || redis_conn_generation(b->done_conn) != subscribed_gen ||
            !redis_conn_is_up(b->done_conn)) {
            rc = redis_conn_command(b->done_conn, &r, &e, "SUBSCRIBE %s", b->chan);
            if (rc != BP_OK) {
                subscribed = false;
                nap(b, redis_conn_retry_in_ms(b->done_conn));
                continue;
            }
            freeReplyObject(r);
            redis_conn_set_subscribed(b->done_conn, true);
            subscribed = true;
            subscribed_gen = redis_conn_generation(b->done_conn);
            signal_wake(b, BROKER_WAKE_DONE); /* messages may have been missed meanwhile */
            continue;
        }
        rc = redis_conn_wait_reply(b->done_conn, BR_BLOCK_MS, &r, &e);
        if (rc == BP_E_TIMEOUT || rc == BP_E_CANCELLED) {
            continue;
        }
        if (rc != BP_OK) {
            subscribed = false;
            continue;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            strcmp(r->element[0]->str, "message") == 0) {
            signal_wake(b, BROKER_WAKE_DONE);
        }
        freeReplyObject(r);
    }
    return NULL;
}

/* The wake threads' connections are lazy: subscribing while Redis restarts must not fail, the
 * threads connect when it is back (the broker itself was opened fail-fast). */
static int open_side_conn(broker_redis *b, const char *name, redis_conn **out, bp_error *err)
{
    redis_conn_options o = b->copts;
    o.client_name = name;
    o.lazy = true;
    return redis_conn_open(b->url, &o, out, err);
}

static int subscribe_locked(broker_redis *b, int kinds, bp_error *err);

static int br_subscribe(broker *base, int kinds, bp_error *err)
{
    broker_redis *b = BR(base);
    int rc;
    if (kinds & ~(BROKER_WAKE_WORK | BROKER_WAKE_DONE | BROKER_WAKE_REVOKE)) {
        return bp_err(err, BP_E_INVAL, "subscribe: unknown kinds 0x%x", (unsigned)kinds);
    }
    pthread_mutex_lock(&b->sub_lock);
    rc = subscribe_locked(b, kinds, err);
    pthread_mutex_unlock(&b->sub_lock);
    return rc;
}

static int subscribe_locked(broker_redis *b, int kinds, bp_error *err)
{
    int rc;
    if (b->wake_fd < 0) {
        b->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (b->wake_fd < 0) {
            return bp_err(err, BP_E_IO, "subscribe: eventfd failed (errno %d)", errno);
        }
    }
    if ((kinds & BROKER_WAKE_DONE) && !b->done_started) {
        redisReply *r = NULL;
        if ((rc = open_side_conn(b, "betpipe-wake-done", &b->done_conn, err)) != BP_OK) {
            return rc;
        }
        /* Subscribe before returning, so that a job finishing after this call wakes the caller.
         * If Redis is away right now, the thread subscribes when it is back and wakes the
         * caller then (who re-reads the state): nothing is missed either way. */
        b->done_subscribed =
            redis_conn_command(b->done_conn, &r, NULL, "SUBSCRIBE %s", b->chan) == BP_OK;
        if (b->done_subscribed) {
            freeReplyObject(r);
            redis_conn_set_subscribed(b->done_conn, true);
        }
        if (pthread_create(&b->done_thr, NULL, done_thread, b) != 0) {
            redis_conn_close(b->done_conn);
            b->done_conn = NULL;
            return bp_err(err, BP_E_NOMEM, "subscribe: cannot start a thread");
        }
        b->done_started = true;
    }
    if ((kinds & (BROKER_WAKE_WORK | BROKER_WAKE_REVOKE)) && !b->work_started) {
        if ((rc = open_side_conn(b, "betpipe-wake-work", &b->work_conn, err)) != BP_OK) {
            return rc;
        }
        pthread_mutex_lock(&b->lock);
        b->work_started = true;
        pthread_mutex_unlock(&b->lock);
        if (pthread_create(&b->work_thr, NULL, work_thread, b) != 0) {
            pthread_mutex_lock(&b->lock);
            b->work_started = false;
            pthread_mutex_unlock(&b->lock);
            redis_conn_close(b->work_conn);
            b->work_conn = NULL;
            return bp_err(err, BP_E_NOMEM, "subscribe: cannot start a thread");
        }
    }
    b->kinds |= kinds;
    return BP_OK;
}

static int br_wake_fd(broker *base)
{
    return BR(base)->wake_fd;
}

static int br_drain_wake(broker *base)
{
    broker_redis *b = BR(base);
    uint64_t v;
    if (b->wake_fd >= 0) {
        while (read(b->wake_fd, &v, sizeof v) == (ssize_t)sizeof v) {
        }
    }
    return atomic_exchange(&b->wake_bits, 0);
}

/* ============================================================================================
 * open / destroy
 * ========================================================================================== */

static void br_destroy(broker *base)
{
    broker_redis *b = BR(base);
    uint64_t one = 1;
    if (!b) {
        return;
    }
    atomic_store(&b->stopping, true);
    if (b->stop_fd >= 0 && write(b->stop_fd, &one, sizeof one) < 0) {
        /* the threads also notice `stopping` at their next timeout */
    }
    if (b->work_started) {
        redis_conn_interrupt(b->work_conn);
        pthread_join(b->work_thr, NULL);
    }
    if (b->done_started) {
        redis_conn_interrupt(b->done_conn);
        pthread_join(b->done_thr, NULL);
    }
    redis_conn_close(b->work_conn);
    redis_conn_close(b->done_conn);
    for (int i = 0; i < BR_MAX_CONNS; i++) {
        redis_conn_close(b->conns[i]);
    }
    for (size_t i = 0; i < b->n_queues; i++) {
        free(b->queues[i]->name);
        free(b->queues[i]->tag);
        free(b->queues[i]->routing);
        free(b->queues[i]);
    }
    free(b->queues);
    idmap_clear(&b->leased);
    for (int i = 0; i < b->n_spare_args; i++) {
        args_free(&b->spare_args[i]);
    }
    if (b->wake_fd >= 0) {
        close(b->wake_fd);
    }
    if (b->stop_fd >= 0) {
        close(b->stop_fd);
    }
    pthread_mutex_destroy(&b->pool_lock);
    pthread_cond_destroy(&b->pool_cond);
    pthread_mutex_destroy(&b->lock);
    pthread_mutex_destroy(&b->sub_lock);
    free(b->url);
    free(b->prefix);
    free(b->chan);
    free(b->queues_key);
    free(b->workers_key);
    free(b->anywork_key);
    free(b->gprefix);
    free(b->offline_key);
    free(b->worker_id);
    free(b);
}

/* ============================================================================================
 * Limits, events, diagnostics
 * ========================================================================================== */

static int br_set_rate_limit(broker *base, const char *type, const char *rate, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply **rs = NULL;
    qsnap s = {0};
    char value[128] = "";
    size_t total = 0;
    int rc;
    if (!valid_name(type) || strchr(type, ' ')) {
        return bp_err(err, BP_E_INVAL, "rate limit: '%s' is not a job type name", type ? type : "");
    }
    if (rate && *rate) {
        int64_t count, period;
        double interval, tolerance;
        if ((rc = broker_rate_parse(rate, &count, &period, err)) != BP_OK) {
            return rc;
        }
        broker_rate_schedule(count, period, &interval, &tolerance);
        snprintf(value, sizeof value, "%.3f %.3f %s", interval, tolerance, rate);
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    if ((rc = refresh_queues(b, c, err)) != BP_OK || (rc = qsnap_take(b, &s, err)) != BP_OK) {
        goto done;
    }
    rc = value[0] ? redis_conn_append(c, err, "HSET %srates %s %s", b->gprefix, type, value)
                  : redis_conn_append(c, err, "HDEL %srates %s", b->gprefix, type);
    /* A new rate starts from a clean schedule, and parked jobs of the type are looked at again
     * by the next exchange of each queue (their next-token time is reset), which the marker
     * makes happen now. */
    if (rc == BP_OK) {
        rc = redis_conn_append(c, err, "HDEL %srtat %s", b->gprefix, type);
    }
    for (size_t i = 0; i < s.n && rc == BP_OK; i++) {
        rc = redis_conn_append(c, err, "ZADD %srlq XX 0 %s", s.tag[i], type);
        if (rc == BP_OK) {
            rc = redis_conn_append(c, err, "ZADD %smarker 0 w", s.tag[i]);
        }
    }
    total = redis_conn_pending(c);
    if (rc != BP_OK) {
        if (total) {
            redis_conn_drop(c);
        }
        goto done;
    }
    if (!(rs = calloc(total, sizeof *rs))) {
        redis_conn_drop(c);
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = redis_conn_read_replies(c, rs, total, err)) == BP_OK) {
        for (size_t i = 0; i < total && rc == BP_OK; i++) {
            rc = redis_reply_status(rs[i], "rate limit", err);
        }
        free_replies(rs, total);
    }
    if (rc == BP_OK) {
        log_info("broker", "rate limit type=%s rate=%s", type, value[0] ? rate : "none");
    }
done:
    free(rs);
    qsnap_free(&s);
    pool_put(b, c);
    return rc;
}

static int br_set_queue_cap(broker *base, const char *queue, int max, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply *rs[3] = {NULL, NULL, NULL};
    int rc, qi;
    if (!valid_name(queue) || max < 0) {
        return bp_err(err, BP_E_INVAL, "queue cap: bad queue '%s' or cap %d", queue ? queue : "",
                      max);
    }
    pthread_mutex_lock(&b->lock);
    qi = queue_index(b, queue);
    pthread_mutex_unlock(&b->lock);
    if (qi < 0) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        return rc;
    }
    rc = redis_conn_append(c, err, "SADD %s %s", b->queues_key, queue);
    if (rc == BP_OK) {
        rc = max > 0 ? redis_conn_append(c, err, "HSET %s:{%s}:meta gc %d", b->prefix, queue, max)
                     : redis_conn_append(c, err, "HDEL %s:{%s}:meta gc", b->prefix, queue);
    }
    if (rc == BP_OK) {
        rc = redis_conn_append(c, err, "ZADD %s:{%s}:marker 0 w", b->prefix, queue);
    }
    if (rc != BP_OK) {
        if (redis_conn_pending(c)) {
            redis_conn_drop(c);
        }
    } else if ((rc = redis_conn_read_replies(c, rs, 3, err)) == BP_OK) {
        for (size_t i = 0; i < 3 && rc == BP_OK; i++) {
            rc = redis_reply_status(rs[i], "queue cap", err);
        }
        free_replies(rs, 3);
    }
    pool_put(b, c);
    return rc;
}

static int br_limits(broker *base, json_t **out, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply *rates = NULL, **caps = NULL;
    qsnap s = {0};
    json_t *rl = json_object(), *qc = json_object();
    int rc;
    *out = NULL;
    if (!rl || !qc) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        goto done;
    }
    if ((rc = refresh_queues(b, c, err)) != BP_OK || (rc = qsnap_take(b, &s, err)) != BP_OK ||
        (rc = redis_conn_command(c, &rates, err, "HGETALL %srates", b->gprefix)) != BP_OK) {
        goto done;
    }
    for (size_t i = 0; i + 1 < rates->elements; i += 2) {
        const char *v = rates->element[i + 1]->str;
        const char *sp = strrchr(v, ' ');
        json_object_set_new(rl, rates->element[i]->str, json_string(sp ? sp + 1 : v));
    }
    if (s.n > 0) {
        if (!(caps = calloc(s.n, sizeof *caps))) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < s.n && rc == BP_OK; i++) {
            rc = redis_conn_append(c, err, "HGET %smeta gc", s.tag[i]);
        }
        if (rc != BP_OK) {
            if (redis_conn_pending(c)) {
                redis_conn_drop(c);
            }
            goto done;
        }
        if ((rc = redis_conn_read_replies(c, caps, s.n, err)) != BP_OK) {
            goto done;
        }
        for (size_t i = 0; i < s.n; i++) {
            if (caps[i]->type == REDIS_REPLY_STRING) {
                json_object_set_new(qc, s.name[i],
                                    json_integer(str_i64(caps[i]->str, caps[i]->len)));
            }
        }
        free_replies(caps, s.n);
    }
    *out = json_pack("{s:O, s:O}", "rate_limits", rl, "queue_caps", qc);
    if (!*out) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
    }
done:
    if (rates) {
        freeReplyObject(rates);
    }
    free(caps);
    json_decref(rl);
    json_decref(qc);
    qsnap_free(&s);
    pool_put(b, c);
    return rc;
}

/* One stream entry read by XREAD, for merging several streams in time order. */
typedef struct ev_entry {
    int64_t ms, seq;
    const redisReply *fields;
} ev_entry;

static int cmp_ev_entry(const void *pa, const void *pb)
{
    const ev_entry *a = pa, *b = pb;
    if (a->ms != b->ms) {
        return a->ms < b->ms ? -1 : 1;
    }
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static const char *entry_field(const redisReply *f, const char *name)
{
    for (size_t i = 0; f && f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        if (field_is(f->element[i], name)) {
            return f->element[i + 1]->str;
        }
    }
    return NULL;
}

/*
 * Events live in one capped stream per queue (P:{q}:events, written by the scripts in the same
 * step as the changes) plus P:events for the workers. The cursor remembers the last id read
 * from each stream, and "t0", the server's time when reading began: a stream seen for the
 * first time (a queue created meanwhile) is read from t0, so nothing that happened since the
 * monitor started is missed.
 */
static int br_events(broker *base, json_t *cursor, int64_t block_ms, json_t **out, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    redisReply *r = NULL;
    qsnap s = {0};
    json_t *ids, *arr = json_array();
    const char **argv = NULL;
    char **owned = NULL;
    ev_entry *ents = NULL;
    size_t n_ents = 0, cap_ents = 0, n_streams, argc = 0, n_owned = 0;
    char t0_id[48];
    int rc;
    *out = NULL;
    if (!json_is_object(cursor) || !arr) {
        json_decref(arr);
        return bp_err(err, BP_E_INVAL, "events: the cursor must be a JSON object");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        json_decref(arr);
        return rc;
    }
    if (!json_is_integer(json_object_get(cursor, "t0"))) {
        redisReply *t = NULL;
        if ((rc = redis_conn_command(c, &t, err, "TIME")) != BP_OK) {
            goto done;
        }
        json_object_set_new(cursor, "t0",
                            json_integer(str_i64(t->element[0]->str, t->element[0]->len) * 1000 +
                                         str_i64(t->element[1]->str, t->element[1]->len) / 1000));
        freeReplyObject(t);
    }
    if (!json_is_object(json_object_get(cursor, "ids"))) {
        json_object_set_new(cursor, "ids", json_object());
    }
    ids = json_object_get(cursor, "ids");
    /* XREAD is exclusive: the last possible id of the millisecond before t0 includes t0-0 */
    snprintf(t0_id, sizeof t0_id, "%" PRId64 "-18446744073709551615",
             (int64_t)json_integer_value(json_object_get(cursor, "t0")) - 1);
    if ((rc = refresh_queues(b, c, err)) != BP_OK || (rc = qsnap_take(b, &s, err)) != BP_OK) {
        goto done;
    }
    n_streams = s.n + 1;
    argv = calloc(2 * n_streams + 8, sizeof *argv);
    owned = calloc(n_streams + 1, sizeof *owned);
    if (!argv || !owned) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto done;
    }
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = "1000";
    char block[24];
    if (block_ms > 0) {
        snprintf(block, sizeof block, "%" PRId64, block_ms);
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    owned[n_owned] = util_asprintf("%sevents", b->gprefix);
    argv[argc++] = owned[n_owned++];
    for (size_t i = 0; i < s.n; i++) {
        owned[n_owned] = util_asprintf("%sevents", s.tag[i]);
        argv[argc++] = owned[n_owned++];
    }
    for (size_t i = 0; i < n_streams; i++) {
        if (!owned[i]) {
            rc = bp_err(err, BP_E_NOMEM, "out of memory");
            goto done;
        }
        const char *last = json_string_value(json_object_get(ids, owned[i]));
        argv[argc++] = last ? last : t0_id;
    }
    rc = block_ms > 0 ? redis_conn_command_blocking(c, block_ms, (int)argc, argv, NULL, &r, err)
                      : redis_conn_command_argv(c, (int)argc, argv, NULL, &r, err);
    if (rc != BP_OK) {
        goto done;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *st = r->element[i];
        const redisReply *entries;
        if (st->type != REDIS_REPLY_ARRAY || st->elements != 2) {
            continue;
        }
        entries = st->element[1];
        for (size_t k = 0; entries->type == REDIS_REPLY_ARRAY && k < entries->elements; k++) {
            const redisReply *e = entries->element[k];
            const char *dash;
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
                continue;
            }
            if (n_ents == cap_ents) {
                size_t nc = cap_ents ? cap_ents * 2 : 256;
                ev_entry *ne = realloc(ents, nc * sizeof *ne);
                if (!ne) {
                    rc = bp_err(err, BP_E_NOMEM, "out of memory");
                    goto done;
                }
                ents = ne;
                cap_ents = nc;
            }
            dash = strchr(e->element[0]->str, '-');
            ents[n_ents].ms = strtoll(e->element[0]->str, NULL, 10);
            ents[n_ents].seq = dash ? strtoll(dash + 1, NULL, 10) : 0;
            ents[n_ents].fields = e->element[1];
            n_ents++;
            if (k + 1 == entries->elements) {
                json_object_set_new(ids, st->element[0]->str, json_string(e->element[0]->str));
            }
        }
    }
    if (n_ents > 1) {
        qsort(ents, n_ents, sizeof *ents, cmp_ev_entry);
    }
    for (size_t i = 0; i < n_ents; i++) {
        const redisReply *f = ents[i].fields;
        broker_event_expand(arr, ents[i].ms, entry_field(f, "e"), entry_field(f, "q"),
                            entry_field(f, "w"), entry_field(f, "ids"), entry_field(f, "types"),
                            entry_field(f, "err"), entry_field(f, "data"));
    }
    *out = arr;
    arr = NULL;
done:
    if (r) {
        freeReplyObject(r);
    }
    free(ents);
    for (size_t i = 0; owned && i < n_owned; i++) {
        free(owned[i]);
    }
    free(owned);
    free(argv);
    json_decref(arr);
    qsnap_free(&s);
    pool_put(b, c);
    return rc;
}

/* CONFIG GET `name` -> its value (new string) or NULL (CONFIG may be disabled on managed Redis). */
static char *config_get(redis_conn *c, const char *name)
{
    redisReply *r = NULL;
    char *v = NULL;
    if (redis_conn_command(c, &r, NULL, "CONFIG GET %s", name) == BP_OK &&
        r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        v = strdup(r->element[1]->str);
    }
    if (r) {
        freeReplyObject(r);
    }
    return v;
}

static int br_diagnose(broker *base, json_t **out, bp_error *err)
{
    broker_redis *b = BR(base);
    redis_conn *c = NULL;
    json_t *w = json_array();
    char *policy = NULL, *aof = NULL, *save = NULL;
    int rc;
    *out = NULL;
    if (!w) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if ((rc = pool_get(b, &c, err)) != BP_OK) {
        json_decref(w);
        return rc;
    }
    policy = config_get(c, "maxmemory-policy");
    aof = config_get(c, "appendonly");
    save = config_get(c, "save");
    if (!policy) {
        json_array_append_new(w, json_sprintf("broker Redis %s: CONFIG GET is not allowed, so its "
                                              "maxmemory-policy could not be checked (it must be "
                                              "noeviction)",
                                              redis_conn_name(c)));
    } else if (strcmp(policy, "noeviction") != 0) {
        json_array_append_new(w, json_sprintf("broker Redis %s has maxmemory-policy %s: when it is "
                                              "full it may evict queue keys and lose jobs; set "
                                              "maxmemory-policy noeviction",
                                              redis_conn_name(c), policy));
    }
    if (aof && save && strcmp(aof, "no") == 0 && save[0] == '\0') {
        json_array_append_new(w, json_sprintf("broker Redis %s has no persistence (appendonly no, "
                                              "no RDB save): a restart of Redis loses every "
                                              "queued job; set appendonly yes",
                                              redis_conn_name(c)));
    }
    free(policy);
    free(aof);
    free(save);
    pool_put(b, c);
    *out = w;
    return BP_OK;
}

static const broker_ops redis_ops = {
    .name = "redis",
    .enqueue = br_enqueue,
    .exchange = br_exchange,
    .lease_one = br_lease_one,
    .heartbeat = br_heartbeat,
    .worker_stop = br_worker_stop,
    .reap = br_reap,
    .next_due = br_next_due,
    .get = br_get,
    .revoke = br_revoke,
    .purge = br_purge,
    .stats = br_stats,
    .list = br_list,
    .subscribe = br_subscribe,
    .wake_fd = br_wake_fd,
    .drain_wake = br_drain_wake,
    .set_rate_limit = br_set_rate_limit,
    .set_queue_cap = br_set_queue_cap,
    .limits = br_limits,
    .events = br_events,
    .diagnose = br_diagnose,
    .destroy = br_destroy,
};

/* Take our own `prefix=` parameter out of the URL (the rest goes to redis_conn). New strings. */
static int split_prefix(const char *url, char **out_url, char **out_prefix, bp_error *err)
{
    const char *q = strchr(url, '?');
    char *u, *prefix = NULL;
    size_t k;
    *out_url = NULL;
    *out_prefix = NULL;
    u = malloc(strlen(url) + 1);
    if (!u) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    if (!q) {
        memcpy(u, url, strlen(url) + 1);
        *out_url = u;
        return BP_OK;
    }
    k = (size_t)(q - url);
    memcpy(u, url, k);
    u[k] = '\0';
    bool first = true;
    for (const char *p = q + 1; *p;) {
        size_t n = strcspn(p, "&");
        if (n > 7 && strncmp(p, "prefix=", 7) == 0) {
            free(prefix);
            prefix = strndup(p + 7, n - 7);
        } else if (n > 0) {
            u[k++] = first ? '?' : '&';
            memcpy(u + k, p, n);
            k += n;
            u[k] = '\0';
            first = false;
        }
        p += n;
        if (*p == '&') {
            p++;
        }
    }
    if (prefix && !valid_name(prefix)) {
        free(u);
        free(prefix);
        return bp_err(err, BP_E_CONFIG,
                      "redis broker: prefix must be 1-%d characters without "
                      "spaces or braces",
                      BR_MAX_NAME);
    }
    *out_url = u;
    *out_prefix = prefix;
    return BP_OK;
}

int broker_redis_split_url(const char *url, char **out_url, char **out_prefix, bp_error *err)
{
    int rc = split_prefix(url ? url : "", out_url, out_prefix, err);
    if (rc == BP_OK && !*out_prefix && !(*out_prefix = strdup("bp"))) {
        free(*out_url);
        *out_url = NULL;
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
    }
    return rc;
}

int broker_redis_open(const char *url, const broker_options *opts, broker **out, bp_error *err)
{
    broker_redis *b;
    redis_conn *first = NULL;
    int rc;
    *out = NULL;
    pthread_once(&scripts_once, scripts_init);
    if (!scripts_ok) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    b = calloc(1, sizeof *b);
    if (!b) {
        return bp_err(err, BP_E_NOMEM, "out of memory");
    }
    b->wake_fd = -1;
    b->stop_fd = -1;
    b->base.ops = &redis_ops;
    pthread_mutex_init(&b->pool_lock, NULL);
    pthread_cond_init(&b->pool_cond, NULL);
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->sub_lock, NULL);
    /* Options: zero means "the default" (broker.h documents them). */
    if (opts) {
        b->base.opts = *opts;
    }
    if (b->base.opts.lease_ms <= 0) {
        b->base.opts.lease_ms = 30000;
    }
    if (b->base.opts.result_ttl_ms <= 0) {
        b->base.opts.result_ttl_ms = 86400000;
    }
    if (b->base.opts.max_crashes <= 0) {
        b->base.opts.max_crashes = 3;
    }
    if (b->base.opts.worker_timeout_ms <= 0) {
        b->base.opts.worker_timeout_ms = b->base.opts.lease_ms;
    }
    if ((rc = split_prefix(url ? url : "", &b->url, &b->prefix, err)) != BP_OK) {
        goto fail;
    }
    if (!b->prefix && !(b->prefix = strdup("bp"))) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    b->chan = util_asprintf("%s:done", b->prefix);
    b->queues_key = util_asprintf("%s:queues", b->prefix);
    b->workers_key = util_asprintf("%s:workers", b->prefix);
    b->anywork_key = util_asprintf("%s:anywork", b->prefix);
    b->gprefix = util_asprintf("%s:", b->prefix);
    b->offline_key = util_asprintf("%s:workers:off", b->prefix);
    b->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!b->chan || !b->queues_key || !b->workers_key || !b->anywork_key || !b->gprefix ||
        !b->offline_key || b->stop_fd < 0) {
        rc = bp_err(err, BP_E_NOMEM, "out of memory");
        goto fail;
    }
    redis_conn_options_default(&b->copts);
    b->copts.client_name = "betpipe-broker";
    b->copts.log_component = "broker";
    /* Fail fast: one connection now, with the scripts loaded, or a clear error. */
    if ((rc = pool_get(b, &first, err)) != BP_OK) {
        bp_err_prefix(err, "redis broker: ");
        goto fail;
    }
    {
        /* A broker Redis that may evict keys can silently drop queued jobs: say so. */
        redisReply *r = NULL;
        if (redis_conn_command(first, &r, NULL, "CONFIG GET maxmemory-policy") == BP_OK &&
            r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            strcmp(r->element[1]->str, "noeviction") != 0) {
            log_warn("broker",
                     "redis maxmemory-policy is %s: Redis may evict queue keys when "
                     "full and lose jobs; set it to noeviction for a broker server=%s",
                     r->element[1]->str, redis_conn_name(first));
        }
        if (r) {
            freeReplyObject(r);
        }
    }
    pool_put(b, first);
    *out = &b->base;
    return BP_OK;
fail:
    br_destroy(&b->base);
    return rc;
}
