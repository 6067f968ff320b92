// The Lua scripts behind history (docs/PROTOCOL.md, "History"). Loaded with SCRIPT LOAD on
// every connect of the publisher link and called by SHA: each runs atomically in Redis, so the
// offsets of a channel are gap-free and monotonic whichever replica publishes. Redis 7
// replicates a script's effects, so reading TIME before writing is allowed. Needs Redis >= 6.2
// (exclusive XRANGE ranges). The keys and the trimming they share: channel_state_lua.h; reply
// steps: reply_scripts.h.
#pragma once

#include <string>
#include <string_view>

#include "channel_state_lua.h"

namespace flowrelay::redis {

inline std::string history_stream_key(std::string_view channel) {
  return "flowrelay:history:{" + std::string(channel) + "}";
}
inline std::string history_seq_key(std::string_view channel) {
  return "flowrelay:seq:{" + std::string(channel) + "}";
}
inline std::string history_entries_key(std::string_view channel) {
  return "flowrelay:entries:{" + std::string(channel) + "}";
}
inline std::string replies_key(std::string_view channel) {
  return "flowrelay:replies:{" + std::string(channel) + "}";
}
inline std::string reply_text_key(std::string_view channel, std::string_view id) {
  return "flowrelay:reply-text:{" + std::string(channel) + "}:" + std::string(id);
}

// EVALSHA <sha> 4 <stream> <seq> <replies> <entries> <channel> <lane m|l> <data> <history_size>
//   <max_age_ms> <max_bytes> <node> <session> <origin seq> <floor epoch> <floor offset>
// -> {offset, epoch, resent, fenced}: resent 0: appended and published in wire_format.h's form;
// 1: a resend of (node, seq) already appended: nothing written, offset is the first one's; 2: a
// resend whose first entry is no longer in the stream (trimmed): offset 0. fenced 1: the
// channel's history had regressed below the floor (channel_state_lua.h's regressed()), so this
// append started a new epoch.
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
local stream, seq, replies = KEYS[1], KEYS[2], KEYS[3]
local channel, lane, data = ARGV[1], ARGV[2], ARGV[3]
local size, max_age, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local node, session, oseq = ARGV[7], ARGV[8], ARGV[9]
local floor_epoch, floor_offset = ARGV[10], ARGV[11]
local RESEND_SCAN = 10000
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
-- Unchecked (no XLEN/HLEN per append): a key lost under the state is noticed by the next read
-- or reply step, which starts the channel over.
local st = load_state(stream, seq, replies, false)
local fenced = 0
if regressed(st, floor_epoch, floor_offset) then
  st, fenced = nil, 1  -- its resend marks went with the lost writes: nothing here is a resend
end
st = st or new_state(stream, seq, replies)
local epoch = st.epoch
local last_key = 'n:' .. node
if node ~= '0' and oseq ~= '0' then
  local last = tonumber(redis.call('HGET', seq, last_key) or '0')
  if tonumber(oseq) <= last then
    local first = first_offset(tonumber(oseq))
    return {first, epoch, first > 0 and 1 or 2, 0}
  end
end
st.top = st.top + 1
local offset = string.format('%d', st.top)
local id = redis.call('XADD', stream, '*', 'o', offset, 'l', lane, 'n', node, 's', session,
                      'q', oseq, 'd', data)
add_entry(stream, st, id, offset, #data)
trim(stream, replies, st, size, max_bytes, max_age)
if node ~= '0' and oseq ~= '0' then
  save_state(seq, st, last_key, oseq)
else
  save_state(seq, st)
end
expire_all(stream, seq, replies, st, max_age)
redis.call('PUBLISH', channel, '\030fr2 ' .. lane .. ' ' .. offset .. ' ' .. node .. ' ' ..
           session .. ' ' .. oseq .. ' ' .. epoch .. '\n' .. data)
return {st.top, epoch, 0, fenced}
)lua";

// EVALSHA <sha> 4 <stream> <seq> <replies> <entries> <since> <history_size> <max_age_ms>
//   <max_bytes> [<floor epoch> <floor offset>]
// -> {epoch or "", top or 0, trimmed, fenced, then per entry with offset > since, oldest first:
// offset, lane, node, session, seq, data, reply, error}. `reply` is "" for a message, else
// "<kind s|r> <id> <seq> <reason|-> <ttft_ms> <duration_ms>": open replies as SNAPSHOTs (their
// text so far, at their newest step's offset), compacted ones as REPLYs; `error` a REPLY's.
// `trimmed`: the newest offset ever dropped from this epoch's history (exact: every drop goes
// through trim() or forget_open()), so every offset above it is in the answer or covered by
// one of its reply entries. The floor (the broker's own gap reads only: transports' reads pass
// none) fences a regressed history as the append script does: the answer is then the new,
// empty epoch, with fenced 1, so that the new epoch starts even if this node never publishes.
inline constexpr std::string_view kHistoryBody = R"lua(
local stream, seq, replies = KEYS[1], KEYS[2], KEYS[3]
local since, size = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_age, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local st = load_state(stream, seq, replies, true)
local fenced = 0
if regressed(st, ARGV[5], ARGV[6]) then
  st, fenced = new_state(stream, seq, replies), 1
  save_state(seq, st)
  expire_all(stream, seq, replies, st, max_age)
end
if not st then return {'', 0, 0, 0} end
local c, rn, lost = st.c, st.rn, st.lost
trim(stream, replies, st, size, max_bytes, max_age)
-- Open replies past `since`, with their text (a text key gone: that reply is trimmed).
local open = {}
local all = redis.call('HGETALL', replies)
for i = 1, #all, 2 do
  local r = parse_reply(all[i + 1])
  if r and not r.ended and r.off > since then
    local text = r.len > 0 and redis.call('GET', text_key(replies, all[i])) or ''
    if not text or #text ~= r.len then
      forget_open(st, replies, all[i], r)
    else
      open[#open + 1] = {r.off, all[i], r.seq, text}
    end
  end
end
if st.c ~= c or st.rn ~= rn or st.lost ~= lost then save_state(seq, st) end
table.sort(open, function(x, y) return x[1] < y[1] end)
local out = {st.epoch, st.top, st.lost, fenced}
local j = 1
local function add_open(before)
  while open[j] and open[j][1] < before do
    local r = open[j]
    for _, v in ipairs({string.format('%d', r[1]), 'm', '0', '0', '0', r[4],
                        's ' .. r[2] .. ' ' .. r[3] .. ' - -1 -1', ''}) do
      out[#out + 1] = v
    end
    j = j + 1
  end
end
local n = math.min(st.top - since, st.c)
local entries = n > 0 and redis.call('XREVRANGE', stream, '+', '-', 'COUNT', n) or {}
for i = #entries, 1, -1 do
  local e = fields_of(entries[i][2])
  local o = tonumber(e.o)
  if o > since then
    add_open(o)
    local reply = ''
    if e.k == 'r' then
      reply = 'r ' .. e.r .. ' ' .. e.z .. ' ' .. e.e .. ' ' .. e.a .. ' ' .. e.u
    end
    for _, v in ipairs({e.o, e.l, e.n, e.s, e.q, e.d, reply, e.x or ''}) do out[#out + 1] = v end
  end
end
add_open(math.huge)
return out
)lua";

// Redis Cluster (mode: cluster): the same scripts publish with SPUBLISH, on the shard channel
// of the keys' own slot (every key of a channel is tagged {channel}), so the master that
// appends is the one whose sharded subscribers hear it.
inline std::string sharded_pubsub(std::string script) {
  const std::string_view plain = "redis.call('PUBLISH',", sharded = "redis.call('SPUBLISH',";
  for (size_t at = script.find(plain); at != std::string::npos;
       at = script.find(plain, at + sharded.size()))
    script.replace(at, plain.size(), sharded);
  return script;
}

inline std::string append_script() {
  return std::string(kChannelStateLua) + std::string(kAppendBody);
}
inline std::string history_script() {
  return std::string(kChannelStateLua) + std::string(kHistoryBody);
}

}  // namespace flowrelay::redis
