// The Lua every broker-redis script starts with (history_scripts.h, reply_scripts.h): a
// channel's state and the one place that trims its history, so that the append, reply and read
// scripts keep the bounds and the byte count exactly alike.
//
// Keys per channel (the hash tag keeps them in one slot):
//  - flowrelay:history:{<channel>}: a stream; messages {o: offset, l: lane m|l, n: origin node,
//    s: origin session, q: origin seq, d: data}; compacted replies {o, k: "r", r: reply id,
//    n, s, z: the reply's last seq, e: reason, x: error, a: ttft_ms, u: duration_ms, d: text}.
//  - flowrelay:entries:{<channel>}: a list, one item per stream entry kept, oldest first:
//    "<stream id> <offset> <data bytes>[ <reply id>]": what trimming needs to know of the entry
//    it drops without reading the stream (exact trimming of a stream marks entries deleted
//    inside its head node, and every later read and delete there scans past them: the append
//    script cost 3x). The stream itself is trimmed a whole node at a time (XTRIM MINID ~) behind
//    the list: it may hold up to one node (100 entries, 4 KiB) of dropped entries, never read.
//  - flowrelay:seq:{<channel>}: a hash: epoch, top (newest offset), c (entries in the stream),
//    b (their data bytes), ob (bytes of the open replies' text), oc (open replies), rn (fields
//    of the replies hash), lost (newest offset dropped from history, 0 none), f (an id at or below
//    the oldest stream entry's, "" none), n:<node> / h:<node> (resends: history_scripts.h).
//  - flowrelay:replies:{<channel>}: a hash, reply id -> "o <last seq> <opened ms> <first delta
//    ms|-1> <last offset> <text bytes>" (open) or "e <reason> <end offset>" (ended, until its
//    entry leaves the stream).
//  - flowrelay:reply-text:{<channel>}:<id>: an open reply's text so far (APPEND: O(1) a delta).
// All of them expire history_max_age_ms after their last write (so `maxmemory-policy
// volatile-lru` may evict any of them: load_state() notices and starts over, or forgets the
// one reply whose text went, counting it as trimmed).
//
// Redis Cluster: every key a script touches should come in KEYS, all in one slot (one hash
// tag), so that Redis can route the call and refuse it whole (-ASK, -TRYAGAIN) while its slot
// migrates: a key reached only inside the script that is missing from a migrating slot fails
// that command mid-script, after the script's earlier writes. The stream, sequence, replies and
// entries keys come first in every script's KEYS (the stream's hash tag decides the slot); the
// text keys of open replies cannot, as only the replies hash says which are open: a reply step
// declares its own (reply_scripts.h), wipe() and the history read reach the others by name.
//
// Trimming is exact, from the oldest end, by the entries list: each dropped entry's bytes, its
// offset (`lost`, the history answers' `trimmed`) and, for a compacted reply, the ended state it
// takes with it.
#pragma once

#include <string_view>

namespace flowrelay::redis {

inline constexpr std::string_view kChannelStateLua = R"lua(
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function fields_of(f)
  local e = {o = '0', l = 'm', n = '0', s = '0', q = '0', d = ''}
  for j = 1, #f, 2 do e[f[j]] = f[j + 1] end
  return e
end
local function base36(n)
  local digits, s = '0123456789abcdefghijklmnopqrstuvwxyz', ''
  n = tonumber(n)
  repeat
    local d = n % 36
    s = string.sub(digits, d + 1, d + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  return s
end
local STATE = {'epoch', 'top', 'c', 'b', 'ob', 'rn', 'lost', 'f', 'oc'}
-- The text key of reply `id`, next to the replies hash `replies` (same hash tag). Not declared
-- in KEYS: which replies are open is only known here (see "Redis Cluster" above).
local function text_key(replies, id)
  return 'flowrelay:reply-text:' .. string.sub(replies, 19) .. ':' .. id
end
-- Every script's first four keys: the channel's stream, sequence hash, replies hash and ENTRIES
-- list (a script's own keys follow). A caller passing others is refused before any write.
local ENTRIES = KEYS[4]
local TAG = string.sub(KEYS[1] or '', 19)
if #KEYS < 4 or KEYS[1] ~= 'flowrelay:history:' .. TAG or KEYS[2] ~= 'flowrelay:seq:' .. TAG or
   KEYS[3] ~= 'flowrelay:replies:' .. TAG or ENTRIES ~= 'flowrelay:entries:' .. TAG then
  return redis.error_reply('ERR flowrelay: KEYS must start with the stream, sequence, ' ..
                           'replies and entries keys of one channel')
end
local function parse_reply(v)
  if not v then return nil end
  if string.sub(v, 1, 1) == 'e' then
    local reason, off = string.match(v, '^e (%S+) (%d+)$')
    return {ended = reason, off = tonumber(off)}
  end
  local s, o, f, l, n = string.match(v, '^o (%d+) (%d+) (%-?%d+) (%d+) (%d+)$')
  return {seq = tonumber(s), opened = tonumber(o), first = tonumber(f), off = tonumber(l),
          len = tonumber(n)}
end
local function format_reply(r)
  if r.ended then return 'e ' .. r.ended .. ' ' .. string.format('%d', r.off) end
  return string.format('o %d %d %d %d %d', r.seq, r.opened, r.first, r.off, r.len)
end
-- Everything of the channel, open replies' texts included.
local function wipe(stream, seq, replies)
  local all = redis.call('HGETALL', replies)
  for i = 1, #all, 2 do
    if string.sub(all[i + 1], 1, 1) == 'o' then redis.call('DEL', text_key(replies, all[i])) end
  end
  redis.call('DEL', stream, seq, replies, ENTRIES)
end
-- The channel's state, nil if it has none. A state whose stream or replies hash no longer
-- matches it lost a key (evicted, deleted): its history has a hole nobody could name, so the
-- channel starts over (its readers are told recovered:false with a new epoch).
local function load_state(stream, seq, replies, check)
  local v = redis.call('HMGET', seq, unpack(STATE))
  if not v[1] then return nil end
  if not v[3] then
    -- Written by a broker-redis before reply streams (no counts): its entries cannot be
    -- accounted for, so that history ends here (a new epoch: readers get recovered:false).
    wipe(stream, seq, replies)
    return nil
  end
  local st = {epoch = v[1], top = tonumber(v[2]) or 0, c = tonumber(v[3]),
              b = tonumber(v[4]) or 0, ob = tonumber(v[5]) or 0, rn = tonumber(v[6]) or 0,
              lost = tonumber(v[7]) or 0, f = v[8] or '', oc = tonumber(v[9]) or 0}
  if check and (redis.call('LLEN', ENTRIES) ~= st.c or
                redis.call('XLEN', stream) < st.c or redis.call('HLEN', replies) ~= st.rn) then
    wipe(stream, seq, replies)
    return nil
  end
  return st
end
-- A new history: the clock at microsecond resolution names it, so it differs from every
-- earlier epoch of the channel, across Redis restarts too. Whatever is left of an older epoch
-- (a sequence evicted or expired first) would collide with the new offsets: gone.
local function new_state(stream, seq, replies)
  wipe(stream, seq, replies)
  return {epoch = base36(t[1]) .. '-' .. base36(t[2]), top = 0, c = 0, b = 0, ob = 0, rn = 0,
          lost = 0, f = '', oc = 0}
end
-- The regression fence (docs/PROTOCOL.md "Failover and lost writes"): `floor_epoch` and
-- `floor_offset` are the newest place the calling node knows this channel reached (from its
-- acknowledged writes and its deliveries; "" and 0 when unknown). A state of that epoch whose
-- top is below it lost acknowledged writes (a failover to a replica that lagged): appending
-- there would hand the lost offsets to other messages in the same epoch, which resuming clients
-- and live subscribers would take for ones they already have.
local function regressed(st, floor_epoch, floor_offset)
  return st ~= nil and floor_epoch ~= nil and floor_epoch ~= '' and st.epoch == floor_epoch and
         st.top < (tonumber(floor_offset) or 0)
end
local function save_state(seq, st, ...)
  redis.call('HSET', seq, 'epoch', st.epoch, 'top', string.format('%d', st.top), 'c', st.c,
             'b', st.b, 'ob', st.ob, 'rn', st.rn, 'lost', string.format('%d', st.lost),
             'f', st.f, 'oc', st.oc, ...)
end
local function expire_all(stream, seq, replies, st, max_age)
  redis.call('PEXPIRE', stream, max_age)
  redis.call('PEXPIRE', ENTRIES, max_age)
  redis.call('PEXPIRE', seq, max_age)
  if st.rn > 0 then redis.call('PEXPIRE', replies, max_age) end
end
-- An open reply whose text key went (expired or evicted): forgotten, counted as trimmed.
local function forget_open(st, replies, id, r)
  redis.call('HDEL', replies, id)
  st.rn, st.ob, st.oc = st.rn - 1, st.ob - r.len, st.oc - 1
  if r.off > st.lost then st.lost = r.off end
end
-- A stream entry just added (`id` from XADD), of `bytes` data; `reply`: a compacted reply's id.
local function add_entry(stream, st, id, offset, bytes, reply)
  redis.call('RPUSH', ENTRIES, id .. ' ' .. offset .. ' ' .. bytes ..
             (reply and ' ' .. reply or ''))
  if st.c <= 0 then st.f = id end
  st.c, st.b = math.max(st.c, 0) + 1, st.b + bytes
end
-- Drops the `n` oldest entries (from the list); the id of the last one dropped, nil if none.
local function drop(stream, replies, st, n)
  local items = redis.call('LPOP', ENTRIES, n)
  if not items or #items == 0 then
    st.c, st.b = 0, 0  -- cannot happen with a checked state; never loop on it
    return nil
  end
  local last
  for i = 1, #items do
    local id, o, bytes, reply = string.match(items[i], '^(%S+) (%d+) (%d+) ?(%S*)$')
    st.c, st.b = st.c - 1, st.b - tonumber(bytes)
    if tonumber(o) > st.lost then st.lost = tonumber(o) end
    if reply ~= '' and redis.call('HDEL', replies, reply) == 1 then st.rn = st.rn - 1 end
    last = id
  end
  return last
end
-- Drops entries from the oldest end: those older than max_age (their id is their append
-- time), then while more than `size` are kept (entries and open replies: an open reply is one
-- entry of history, never dropped) or the channel's bytes (entries and open texts) exceed
-- max_bytes. st.f is never above the oldest entry's id: the last one dropped after a
-- count or byte trim (no read of the next one per append), the oldest itself after an age trim
-- (so a quiet channel is not read again on every append).
local function trim(stream, replies, st, size, max_bytes, max_age)
  local min_ms, last = now_ms - max_age, nil
  if st.c > 0 and tonumber(string.match(st.f, '^(%d+)') or '0') < min_ms then
    while st.c > 0 do
      local head = redis.call('LINDEX', ENTRIES, 0)
      local id = head and string.match(head, '^(%S+)')
      if not id or tonumber(string.match(id, '^(%d+)')) >= min_ms then
        st.f = id or ''
        break
      end
      last = drop(stream, replies, st, 1)
    end
  end
  while st.c > 0 and (st.c + st.oc > size or st.b + st.ob > max_bytes) do
    local excess = math.min(st.c + st.oc - size, st.c, 1000)
    local dropped = drop(stream, replies, st, excess > 0 and excess or 1)
    if not dropped then break end
    last, st.f = dropped, dropped
  end
  if last then
    local ms, n = string.match(last, '^(%d+)-(%d+)$')
    redis.call('XTRIM', stream, 'MINID', '~', ms .. '-' .. string.format('%d', tonumber(n) + 1))
  end
end
)lua";

}  // namespace flowrelay::redis
