// The Lua scripts behind history (docs/PROTOCOL.md, "History"). Loaded with SCRIPT LOAD on
// every connect of the publisher link and called by SHA: each runs atomically in Redis, so the
// offsets of a channel are gap-free and monotonic whichever replica publishes. Redis 7
// replicates a script's effects, so reading TIME before writing is allowed.
//
// Keys per channel (the hash tag keeps both in one slot): flowrelay:history:{<channel>}, a
// stream of entries {o: offset, l: lane m|l, d: data}, and flowrelay:seq:{<channel>}, a hash
// {epoch, top}. Both expire history_max_age_ms after the last append: an idle channel starts
// a new epoch.
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

// Common prelude: the server's clock in milliseconds, and age trimming (MINID drops every
// entry whose id, its append time in ms, is older than the bound). Appends trim with '~'
// (whole stream nodes only: exact trimming on every append cost ~17% of Redis' throughput in
// a redis-benchmark of the append script); reads trim exactly, so no entry past its age or
// beyond history_size (the read takes the newest history_size) ever reaches a client.
inline constexpr std::string_view kScriptPrelude = R"lua(
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function trim_by_age(stream, max_age, how)
  redis.call('XTRIM', stream, 'MINID', how, string.format('%d', math.max(0, now_ms - max_age)))
end
)lua";

// EVALSHA <sha> 2 <stream> <seq> <channel> <lane m|l> <data> <maxlen> <max_age_ms>
// -> {offset, epoch}. Appends and publishes in wire_format.h's form.
inline constexpr std::string_view kAppendBody = R"lua(
local stream, seq = KEYS[1], KEYS[2]
local channel, lane, data = ARGV[1], ARGV[2], ARGV[3]
local maxlen, max_age = ARGV[4], tonumber(ARGV[5])
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
local epoch = redis.call('HGET', seq, 'epoch')
if not epoch then
  -- A new history: the clock at microsecond resolution names it, so it differs from every
  -- earlier epoch of the channel, across Redis restarts too. Entries of an older epoch whose
  -- sequence was deleted would collide with the new offsets: drop them.
  epoch = base36(t[1]) .. '-' .. base36(t[2])
  redis.call('DEL', stream)
  redis.call('HSET', seq, 'epoch', epoch, 'top', 0)
end
local offset = string.format('%d', redis.call('HINCRBY', seq, 'top', 1))
redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'o', offset, 'l', lane, 'd', data)
trim_by_age(stream, max_age, '~')
redis.call('PEXPIRE', stream, max_age)
redis.call('PEXPIRE', seq, max_age)
redis.call('PUBLISH', channel, '\030fr1 ' .. lane .. ' ' .. offset .. ' ' .. epoch .. '\n' .. data)
return {tonumber(offset), epoch}
)lua";

// EVALSHA <sha> 2 <stream> <seq> <since> <history_size> <max_age_ms>
// -> {epoch or "", top or 0, offset1, lane1, data1, offset2, ...}: the entries with offset >
// since, oldest first. Entries are contiguous and newest last, so the newest
// min(top - since, history_size) are exactly those still kept.
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
  local f = entries[i][2]
  if tonumber(f[2]) > since then
    out[#out + 1] = f[2]
    out[#out + 1] = f[4]
    out[#out + 1] = f[6]
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
