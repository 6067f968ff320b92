// The Lua scripts behind history (docs/PROTOCOL.md, "History"). Loaded with SCRIPT LOAD on
// every connect of the publisher link and called by SHA: each runs atomically in Redis, so the
// offsets of a channel are gap-free and monotonic whichever replica publishes. Redis 7
// replicates a script's effects, so reading TIME before writing is allowed. Needs Redis >= 6.2
// (XTRIM MINID, exclusive XREVRANGE ranges).
//
// Keys per channel (the hash tag keeps both in one slot):
//  - flowrelay:history:{<channel>}: a stream of entries
//      {o: offset, l: lane m|l, n: origin node, s: origin session, q: origin seq, d: data}
//  - flowrelay:seq:{<channel>}: a hash {epoch, top, n:<node>: last seq appended from <node>,
//    h:<node>: where the last resend from <node> was found (kAppendBody)}.
// Both expire history_max_age_ms after the last append: an idle channel starts a new epoch.
#pragma once

#include <string>
#include <string_view>

namespace flowrelay::redis {

inline std::string history_stream_key(std::string_view channel) {
  return "flowrelay:history:{" + std::string(channel) + "}";
}
inline std::string history_seq_key(std::string_view channel) {
  return "flowrelay:seq:{" + std::string(channel) + "}";
}

// Common prelude: the server's clock in milliseconds, age trimming (MINID drops every entry
// whose id, its append time in ms, is older than the bound), and an entry's fields by name
// (entries may lack the origin fields: those read as "0"). Appends trim with '~' (whole stream
// nodes only: exact trimming on every append cost ~17% of Redis' throughput in a
// redis-benchmark of the append script); reads trim exactly, so no entry past its age or beyond
// history_size (the read takes the newest history_size) ever reaches a client.
inline constexpr std::string_view kScriptPrelude = R"lua(
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function trim_by_age(stream, max_age, how)
  redis.call('XTRIM', stream, 'MINID', how, string.format('%d', math.max(0, now_ms - max_age)))
end
local function fields_of(f)
  local e = {o = '0', l = 'm', n = '0', s = '0', q = '0', d = ''}
  for j = 1, #f, 2 do e[f[j]] = f[j + 1] end
  return e
end
)lua";

// EVALSHA <sha> 2 <stream> <seq> <channel> <lane m|l> <data> <maxlen> <max_age_ms> <node>
//   <session> <origin seq>
// -> {offset, epoch, resent}: resent 0: appended and published in wire_format.h's form; 1: a
// resend of (node, seq) already appended: nothing written, offset is the first one's; 2: a
// resend whose first entry is no longer in the stream (trimmed): offset 0.
//
// Why "seq <= last appended from that node" means a resend: a node numbers its publishes in
// the order it queues them (one counter, under the lock that orders its outbox) and writes them
// to one connection in that order; after a lost reply it resends everything unanswered, in the
// same order, on the next connection. A publish refused with NOSCRIPT did not run, but a later
// one may have (another node reloaded the scripts in between): unless an earlier copy may have
// run, its retry takes a new seq, as does everything never written behind it (publisher.cpp),
// so its old seq never runs. So whenever any copy of (node, s) runs here, every s' < s of that
// node that ever runs has already run at least once: on the same connection before it, or it
// was answered earlier. The first copy of each seq therefore finds last < seq, and every later
// copy (the old connection's commands that Redis still ran, or the resend) finds seq <= last.
// Left uncovered: a publish whose copy on a lost link may have run, refused with NOSCRIPT on the
// next link while a later seq runs, keeps its seq; its retry is taken for a resend (and is lost
// if that copy did not run).
//
// Finding a resend's first offset: a node's entries are in seq order along the stream (each
// appended one has seq > last), which is trimmed at its oldest end only. So the entry of seq s,
// if kept, lies after every entry of that node with a lower seq and before every one with a
// higher seq: a walk stops at the first of either. h:<node> in the seq hash is where the node's
// last resend was found ("<id> 1" if no entry of that node precedes it). Resends come in seq
// order, so the next one walks forward from there (a step or so); one below the node's first
// entry was trimmed. Without a hint the walk goes from both ends (recent resends lie near the
// newest end, trimmed ones before the node's first entry near the oldest). A burst of N resends
// so reads about N entries plus the first one's distance, not N^2/2 (3000 took Redis ~10 s);
// past RESEND_SCAN entries read, a resend is answered as trimmed.
inline constexpr std::string_view kAppendBody = R"lua(
local stream, seq = KEYS[1], KEYS[2]
local channel, lane, data = ARGV[1], ARGV[2], ARGV[3]
local maxlen, max_age = ARGV[4], tonumber(ARGV[5])
local node, session, oseq = ARGV[6], ARGV[7], ARGV[8]
local RESEND_SCAN = 10000
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
local HINT = 'h:' .. node
-- One walk through the stream from `from` (exclusive '(<id>', or '+'/'-'), newest first if
-- `back`. Each step reads one batch, growing from one entry (the next resend's entry is
-- usually the next one), and hands its entries to visit(id, fields): a result ends the walk.
-- A step returns that result, false at the end of the stream, nil to go on.
local scanned = 0
local function walk(from, back)
  local n = 1
  return function(visit)
    local batch = back and redis.call('XREVRANGE', stream, from, '-', 'COUNT', n)
                        or redis.call('XRANGE', stream, from, '+', 'COUNT', n)
    scanned = scanned + #batch
    for i = 1, #batch do
      local r = visit(batch[i][1], fields_of(batch[i][2]))
      if r ~= nil then return r end
    end
    if #batch < n then return false end
    from, n = '(' .. batch[#batch][1], math.min(n * 4, 100)
  end
end
local function found(id, e, first)
  redis.call('HSET', seq, HINT, id .. ' ' .. first)
  return tonumber(e.o)
end
local function first_offset(want)
  local hint = redis.call('HGET', seq, HINT)
  local hid, hfirst = string.match(hint or '', '^(%S+) ([01])$')
  local at = hid and redis.call('XRANGE', stream, hid, hid)[1]
  local h = at and fields_of(at[2])
  if h and h.n == node then
    local q = tonumber(h.q)
    if q == want then return tonumber(h.o) end
    if q > want and hfirst == '1' then return 0 end
    if q < want then
      local step, r = walk('(' .. hid, false)
      repeat
        r = step(function(id, e)
          if e.n ~= node then return nil end
          local eq = tonumber(e.q)
          if eq == want then return found(id, e, '0') end
          if eq > want then return 0 end
        end)
      until r ~= nil or scanned >= RESEND_SCAN
      if r ~= nil then return r or 0 end
    end
  end
  -- From both ends at once, until they meet (lo, hi: the offsets each reached).
  local back, fwd, lo, hi, first = walk('+', true), walk('-', false), 0, math.huge, '1'
  repeat
    local r = back(function(id, e)
      local o = tonumber(e.o)
      if o <= lo then return 0 end
      hi = o
      if e.n ~= node then return nil end
      local eq = tonumber(e.q)
      if eq == want then return found(id, e, '0') end
      if eq < want then return 0 end
    end)
    if r == nil then
      r = fwd(function(id, e)
        local o = tonumber(e.o)
        if o >= hi then return 0 end
        lo = o
        if e.n ~= node then return nil end
        local eq, f = tonumber(e.q), first
        first = '0'
        if eq == want then return found(id, e, f) end
        if eq > want then
          if f == '1' then redis.call('HSET', seq, HINT, id .. ' 1') end
          return 0
        end
      end)
    end
    if r ~= nil then return r or 0 end
  until scanned >= RESEND_SCAN
  return 0
end
local epoch = redis.call('HGET', seq, 'epoch')
if not epoch then
  -- A new history: the clock at microsecond resolution names it, so it differs from every
  -- earlier epoch of the channel, across Redis restarts too. Entries of an older epoch whose
  -- sequence was deleted would collide with the new offsets: drop them.
  epoch = base36(t[1]) .. '-' .. base36(t[2])
  redis.call('DEL', stream)
  redis.call('HSET', seq, 'epoch', epoch, 'top', 0)
end
local last_key = 'n:' .. node
if node ~= '0' and oseq ~= '0' then
  local last = tonumber(redis.call('HGET', seq, last_key) or '0')
  if tonumber(oseq) <= last then
    local first = first_offset(tonumber(oseq))
    return {first, epoch, first > 0 and 1 or 2}
  end
end
local offset = string.format('%d', redis.call('HINCRBY', seq, 'top', 1))
redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'o', offset, 'l', lane, 'n', node,
           's', session, 'q', oseq, 'd', data)
if node ~= '0' and oseq ~= '0' then redis.call('HSET', seq, last_key, oseq) end
trim_by_age(stream, max_age, '~')
redis.call('PEXPIRE', stream, max_age)
redis.call('PEXPIRE', seq, max_age)
redis.call('PUBLISH', channel, '\030fr2 ' .. lane .. ' ' .. offset .. ' ' .. node .. ' ' ..
           session .. ' ' .. oseq .. ' ' .. epoch .. '\n' .. data)
return {tonumber(offset), epoch, 0}
)lua";

// EVALSHA <sha> 2 <stream> <seq> <since> <history_size> <max_age_ms>
// -> {epoch or "", top or 0, offset1, lane1, node1, session1, seq1, data1, offset2, ...}: the
// entries with offset > since, oldest first. Entries are contiguous and newest last, so the
// newest min(top - since, history_size) are exactly those still kept.
inline constexpr std::string_view kHistoryBody = R"lua(
local stream, seq = KEYS[1], KEYS[2]
local since, size, max_age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
trim_by_age(stream, max_age, '=')
local epoch = redis.call('HGET', seq, 'epoch')
if not epoch then return {'', 0} end
local top = tonumber(redis.call('HGET', seq, 'top'))
local out = {epoch, top}
local n = math.min(top - since, size)
if n <= 0 then return out end
local entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', n)
for i = #entries, 1, -1 do
  local e = fields_of(entries[i][2])
  if tonumber(e.o) > since then
    out[#out + 1] = e.o
    out[#out + 1] = e.l
    out[#out + 1] = e.n
    out[#out + 1] = e.s
    out[#out + 1] = e.q
    out[#out + 1] = e.d
  end
end
return out
)lua";

inline std::string append_script() {
  return std::string(kScriptPrelude) + std::string(kAppendBody);
}
inline std::string history_script() {
  return std::string(kScriptPrelude) + std::string(kHistoryBody);
}

}  // namespace flowrelay::redis
