// The reply script (plugin_reply.h's rules, docs/PROTOCOL.md "Reply streams"): one step of a
// reply (OPEN, DELTA, END), atomically with its offset, its history entry and its PUBLISH,
// whichever node sends it. Keys and trimming: channel_state_lua.h.
//
// While a reply is open its text grows in its own key by APPEND (Lua concatenation would copy
// the whole text per delta); its state (last seq, times, last offset, text length) is a field of
// the replies hash. END compacts it: one stream entry with the whole text, the text key
// deleted and the state marked ended, all in this one script, so no reader ever sees both the
// open reply and its entry, or neither. Stats are on Redis' clock (TIME), the same for every
// node.
//
// Resends need no origin seq (unlike publishes, history_scripts.h): a step is its own identity.
// A DELTA resent after a lost link finds seq <= last (a duplicate, stored once), an END finds
// the reply ended with the same reason (a duplicate), an OPEN finds the reply known.
#pragma once

#include <string>
#include <string_view>

#include "channel_state_lua.h"

namespace flowrelay::redis {

// EVALSHA <sha> 5 <stream> <seq> <replies> <entries> <text key of id> <channel> <step o|d|e> <id>
//   <seq (DELTA)> <reason (END)> <data (DELTA) or error (END)> <history_size> <max_age_ms>
//   <max_bytes> <node> <session> <floor epoch> <floor offset>
// -> {result, offset, epoch, expected_seq, ended, fenced}: fenced 1 if the channel's history had
// regressed below the floor (channel_state_lua.h): a new epoch was started first, so the step
// takes no offset of the lost writes (a DELTA or END of a reply opened before them finds the
// reply unknown: a conflict). result 0 stored (and published in
// wire_format.h's fr3 form), 1 duplicate (offset: the first copy's when known, else 0),
// 2 conflict (expected_seq, or ended = how the reply ended), 3 too big (the channel's open
// replies would hold more than max_bytes of text: history never drops an open reply, so the
// byte bound is kept by refusing).
inline constexpr std::string_view kReplyBody = R"lua(
local stream, seq, replies, text = KEYS[1], KEYS[2], KEYS[3], KEYS[5]
local channel, step, id, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local reason, data = ARGV[5], ARGV[6]
local size, max_age, max_bytes = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local node, session = ARGV[10], ARGV[11]
local st = load_state(stream, seq, replies, true)
local fenced = 0
if regressed(st, ARGV[12], ARGV[13]) then st, fenced = new_state(stream, seq, replies), 1 end
local epoch = st and st.epoch or ''
local r = st and parse_reply(redis.call('HGET', replies, id))
local forgot = false
if r and not r.ended and redis.call('STRLEN', text) ~= r.len then
  forget_open(st, replies, id, r)  -- its text was evicted or expired: an unknown reply now
  r, forgot = nil, true
end
local function answer(result, offset, expected, ended)
  if forgot or fenced == 1 then save_state(seq, st) end
  if fenced == 1 then expire_all(stream, seq, replies, st, max_age) end
  return {result, offset, epoch, expected or 0, ended or '', fenced}
end
if step == 'o' then
  if r then return answer(1, (not r.ended and r.seq == 0) and r.off or 0) end
elseif step == 'd' then
  if r and r.ended then return answer(2, 0, 0, r.ended) end
  local last = r and r.seq or 0
  if n <= last then return answer(1, n == last and r.off or 0) end
  if n > last + 1 then return answer(2, 0, last + 1) end
  if (st and st.ob or 0) + #data > max_bytes then return answer(3, 0) end
elseif r and r.ended then
  if r.ended == reason then return answer(1, r.off) end
  return answer(2, 0, 0, r.ended)
end
if not st then
  st = new_state(stream, seq, replies)
  epoch = st.epoch
end
st.top = st.top + 1
local offset = string.format('%d', st.top)
if not r then
  r = {seq = 0, opened = now_ms, first = -1, off = st.top, len = 0}
  st.rn = st.rn + 1
  if step ~= 'e' then st.oc = st.oc + 1 end
elseif step == 'e' then
  st.oc = st.oc - 1
end
local rseq, tail, payload = 0, ' - -1 -1 0 0', data
if step == 'd' then
  if r.len == 0 then
    -- SET, not APPEND: a text key left over from a lost replies hash is overwritten.
    redis.call('SET', text, data, 'PX', max_age)
  else
    redis.call('APPEND', text, data)
    redis.call('PEXPIRE', text, max_age)
  end
  r.seq, r.off, r.len = n, st.top, r.len + #data
  if r.first < 0 then r.first = now_ms end
  st.ob = st.ob + #data
  rseq = n
elseif step == 'e' then
  local whole = r.len > 0 and redis.call('GET', text) or ''
  local ttft = r.first < 0 and -1 or r.first - r.opened
  local duration = now_ms - r.opened
  local xid = redis.call('XADD', stream, '*', 'o', offset, 'k', 'r', 'r', id, 'n', node,
                         's', session, 'z', r.seq, 'e', reason, 'x', data, 'a', ttft,
                         'u', duration, 'd', whole)
  add_entry(stream, st, xid, offset, #whole, id)
  st.ob = st.ob - r.len
  redis.call('DEL', text)
  rseq = r.seq
  r = {ended = reason, off = st.top}
  tail = ' ' .. reason .. ' ' .. ttft .. ' ' .. duration .. ' ' .. #whole .. ' ' .. #data
else
  payload = ''
end
redis.call('HSET', replies, id, format_reply(r))
trim(stream, replies, st, size, max_bytes, max_age)
save_state(seq, st)
expire_all(stream, seq, replies, st, max_age)
redis.call('PUBLISH', channel, '\030fr3 m ' .. offset .. ' ' .. node .. ' ' .. session .. ' 0 ' ..
           epoch .. ' ' .. step .. ' ' .. id .. ' ' .. rseq .. tail .. '\n' .. payload)
return {0, st.top, epoch, 0, '', fenced}
)lua";

inline std::string reply_script() {
  return std::string(kChannelStateLua) + std::string(kReplyBody);
}

}  // namespace flowrelay::redis
