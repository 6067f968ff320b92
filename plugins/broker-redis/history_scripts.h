// The Lua scripts behind history (docs/PROTOCOL.md, "History"). Loaded with SCRIPT LOAD on
// every connect of the publisher link and called by SHA: each runs atomically in Redis, so the
// offsets of a channel are gap-free and monotonic whichever replica publishes. Redis 7
// replicates a script's effects, so reading TIME before writing is allowed. Needs Redis >= 6.2
// (XTRIM MINID, exclusive XREVRANGE ranges).
//
// Keys per channel (the hash tag keeps both in one slot):
//  - flowrelay:history:{<channel>}: a stream of entries
//      {o: offset, l: lane m|l, n: origin node, s: origin session, q: origin seq, d: data}
//  - flowrelay:seq:{<channel>}: a hash {epoch, top, n:<node>: last seq appended from <node>}.
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
// same order, on the next connection. So whenever any copy of (node, s) runs here, every s' < s
// of that node has already run at least once: on the same connection before it, or it was
// answered earlier. The first copy of each seq therefore finds last < seq, and every later copy
// (the old connection's commands that Redis still ran, or the resend) finds seq <= last.
// The scan for the first offset walks back from the newest entry and stops at the first entry
// of that node with a lower seq (a node's entries are in seq order), or after RESEND_SCAN
// entries (a busy channel's stream may hold many of other nodes since).
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
local function first_offset(want, limit)
  local from, scanned = '+', 0
  while scanned < limit do
    local entries = redis.call('XREVRANGE', stream, from, '-', 'COUNT', math.min(100, limit - scanned))
    for i = 1, #entries do
      local e = fields_of(entries[i][2])
      if e.n == node then
        local q = tonumber(e.q)
        if q == want then return tonumber(e.o) end
        if q < want then return 0 end
      end
    end
    if #entries == 0 then return 0 end
    scanned = scanned + #entries
    from = '(' .. entries[#entries][1]
  end
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
    local first = first_offset(tonumber(oseq), RESEND_SCAN)
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
