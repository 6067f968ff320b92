// The Lua scripts behind presence (docs/PROTOCOL.md, "Presence"), after Centrifugo's Redis
// presence model: per channel, a hash node -> clients and a sorted set node -> expiry time.
// Each node rewrites its own entries every presence_ttl_ms / 3; the read first drops the nodes
// whose entry expired (a crashed node stops refreshing) and sums the rest. Times are Redis'
// TIME, shared by every node, so the nodes' clocks do not matter.
//
// Keys per channel (the hash tag is the channel's, as for the history keys, so that all of a
// channel's keys share one Redis Cluster slot):
//  - flowrelay:presence:{<channel>}: a hash {<node id>: clients on that node}
//  - flowrelay:presence-expiry:{<channel>}: a sorted set {<node id>: expiry in ms}
// Both expire (PEXPIRE) one ttl after the last write of any node: a channel whose nodes all
// vanished leaves nothing behind.
#pragma once

#include <string>
#include <string_view>

namespace flowrelay::redis {

inline std::string presence_hash_key(std::string_view channel) {
  return "flowrelay:presence:{" + std::string(channel) + "}";
}
inline std::string presence_expiry_key(std::string_view channel) {
  return "flowrelay:presence-expiry:{" + std::string(channel) + "}";
}

inline constexpr std::string_view kPresenceClock = R"lua(
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
)lua";

// EVALSHA <sha> 2 <hash> <expiry> <node> <clients> <ttl_ms> -> 1
// clients 0 removes the node's entry; the keys' own expiry only ever grows (another node may
// use a longer ttl).
inline constexpr std::string_view kPresenceSetBody = R"lua(
local hash, expiry = KEYS[1], KEYS[2]
local node, clients, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if clients == '0' then
  redis.call('HDEL', hash, node)
  redis.call('ZREM', expiry, node)
  return 1
end
redis.call('HSET', hash, node, clients)
redis.call('ZADD', expiry, now_ms + ttl, node)
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 1
)lua";

// EVALSHA <sha> 2 <hash> <expiry> -> {clients, nodes}: the sum over the nodes whose entry has
// not expired, and how many of them have clients.
inline constexpr std::string_view kPresenceReadBody = R"lua(
local hash, expiry = KEYS[1], KEYS[2]
local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', now_ms)
for i = 1, #gone, 1000 do
  redis.call('HDEL', hash, unpack(gone, i, math.min(i + 999, #gone)))
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', expiry, '-inf', now_ms) end
local clients, nodes = 0, 0
for _, v in ipairs(redis.call('HVALS', hash)) do
  local n = tonumber(v) or 0
  if n > 0 then
    clients = clients + n
    nodes = nodes + 1
  end
end
return {clients, nodes}
)lua";

inline std::string presence_set_script() {
  return std::string(kPresenceClock) + std::string(kPresenceSetBody);
}
inline std::string presence_read_script() {
  return std::string(kPresenceClock) + std::string(kPresenceReadBody);
}

}  // namespace flowrelay::redis
