#include "slot_map.h"

#include <algorithm>
#include <charconv>

namespace flowrelay::redis {

namespace {

// CRC16 by hand: hiredis 0.14 does not export one (its async cluster support came later, in
// hiredis-cluster), and no Debian library we link has Redis' variant. The table is computed at
// compile time from the polynomial, so there are no 256 pasted constants to get wrong.
constexpr std::array<uint16_t, 256> make_crc_table() {
  std::array<uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    uint16_t c = static_cast<uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b)
      c = static_cast<uint16_t>((c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1);
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint16_t, 256> kCrcTable = make_crc_table();

// A decimal in [lo, hi], the whole of `s`.
std::optional<int> parse_int(std::string_view s, int lo, int hi) {
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi)
    return std::nullopt;
  return v;
}

bool is_integer(const redisReply* r, long long lo, long long hi) {
  return r && r->type == REDIS_REPLY_INTEGER && r->integer >= lo && r->integer <= hi;
}

bool starts_with_word(std::string_view error, std::string_view word) {
  return error.substr(0, word.size()) == word &&
         (error.size() == word.size() || error[word.size()] == ' ');
}

}  // namespace

uint16_t crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char ch : data)
    crc = static_cast<uint16_t>((crc << 8) ^ kCrcTable[((crc >> 8) ^ ch) & 0xFF]);
  return crc;
}

uint16_t key_slot(std::string_view key) {
  // The spec's rule, to the letter: the first '{', then the first '}' after it; an empty tag
  // ("foo{}{bar}") hashes the whole key, and "foo{{bar}}" hashes "{bar".
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<uint16_t>(crc16(key) & (kClusterSlots - 1));
}

SlotMap::SlotMap() { _owner.fill(kNone); }

std::optional<SlotMap> SlotMap::from_cluster_slots(const redisReply* reply,
                                                   const RedisEndpoint& credentials,
                                                   const RedisEndpoint& asked, std::string& error) {
  if (!reply) {
    error = "CLUSTER SLOTS: no reply";
    return std::nullopt;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    error = "CLUSTER SLOTS: " + std::string(reply->str, reply->len);
    return std::nullopt;
  }
  if (reply->type != REDIS_REPLY_ARRAY) {
    error = "CLUSTER SLOTS: not an array";
    return std::nullopt;
  }
  SlotMap map;
  for (size_t i = 0; i < reply->elements; ++i) {
    const redisReply* range = reply->element[i];
    const std::string where = "CLUSTER SLOTS: range " + std::to_string(i) + ": ";
    if (!range || range->type != REDIS_REPLY_ARRAY || range->elements < 3) {
      error = where + "not [start, end, master, replicas...]";
      return std::nullopt;
    }
    const redisReply* start = range->element[0];
    const redisReply* end = range->element[1];
    if (!is_integer(start, 0, kClusterSlots - 1) || !is_integer(end, 0, kClusterSlots - 1) ||
        start->integer > end->integer) {
      error = where + "start and end are not slots with start <= end";
      return std::nullopt;
    }
    // The master: [host, port, id] and, since Redis 7, a 4th element (hostname, ip metadata).
    const redisReply* node = range->element[2];
    if (!node || node->type != REDIS_REPLY_ARRAY || node->elements < 2 ||
        !is_integer(node->element[1], 1, 65535)) {
      error = where + "the master is not [host, port, ...] with a port from 1 to 65535";
      return std::nullopt;
    }
    const redisReply* host = node->element[0];
    if (!host || (host->type != REDIS_REPLY_STRING && host->type != REDIS_REPLY_NIL)) {
      error = where + "the master's host is not a string";
      return std::nullopt;
    }
    RedisEndpoint master = credentials;
    master.unix_path.clear();  // cluster nodes are reached over TCP only
    master.host = host->type == REDIS_REPLY_STRING ? std::string(host->str, host->len) : "";
    if (master.host.empty()) master.host = asked.host;
    master.port = static_cast<int>(node->element[1]->integer);
    if (master.host == "?") continue;  // no address to reach it at: slots unserved
    const uint16_t index = map.index_of(master);
    for (long long s = start->integer; s <= end->integer; ++s) {
      uint16_t& owner = map._owner[static_cast<size_t>(s)];
      if (owner != kNone && owner != index) {
        error = where + "slot " + std::to_string(s) + " claimed by both " +
                map._nodes[owner].describe() + " and " + master.describe();
        return std::nullopt;
      }
      owner = index;
    }
  }
  return map;
}

const RedisEndpoint* SlotMap::owner(uint16_t slot) const {
  if (slot >= kClusterSlots || _owner[slot] == kNone) return nullptr;
  return &_nodes[_owner[slot]];
}

std::vector<RedisEndpoint> SlotMap::masters() const {
  // After assign()s a node may serve nothing any more: only those still serving a slot.
  std::vector<bool> serving(_nodes.size(), false);
  for (uint16_t i : _owner)
    if (i != kNone) serving[i] = true;
  std::vector<RedisEndpoint> out;
  for (size_t i = 0; i < _nodes.size(); ++i)
    if (serving[i]) out.push_back(_nodes[i]);
  return out;
}

bool SlotMap::covers_all() const {
  return std::find(_owner.begin(), _owner.end(), kNone) == _owner.end();
}

void SlotMap::assign(uint16_t slot, const RedisEndpoint& node) {
  if (slot < kClusterSlots) _owner[slot] = index_of(node);
}

uint16_t SlotMap::index_of(const RedisEndpoint& node) {
  for (size_t i = 0; i < _nodes.size(); ++i)
    if (_nodes[i].host == node.host && _nodes[i].port == node.port) return static_cast<uint16_t>(i);
  // A cluster has at most one master per slot, so more distinct nodes than slots can only come
  // from MOVEDs naming ever new ones: forget them all (every slot unserved, so the caller
  // refreshes) rather than let an index reach kNone.
  if (_nodes.size() >= kClusterSlots) {
    _owner.fill(kNone);
    _nodes.clear();
  }
  _nodes.push_back(node);
  return static_cast<uint16_t>(_nodes.size() - 1);
}

std::optional<Redirect> parse_redirect(std::string_view error) {
  Redirect r;
  if (error.substr(0, 6) == "MOVED ") {
    r.kind = Redirect::Moved;
    error.remove_prefix(6);
  } else if (error.substr(0, 4) == "ASK ") {
    r.kind = Redirect::Ask;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const size_t space = error.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  const auto slot = parse_int(error.substr(0, space), 0, kClusterSlots - 1);
  const std::string_view endpoint = error.substr(space + 1);
  const size_t colon = endpoint.rfind(':');
  if (!slot || colon == std::string_view::npos) return std::nullopt;
  const auto port = parse_int(endpoint.substr(colon + 1), 1, 65535);
  std::string_view host = endpoint.substr(0, colon);
  if (!port || host.find(' ') != std::string_view::npos) return std::nullopt;
  // Redis writes IPv6 bare; a bracketed one ("[::1]:6380") is accepted all the same.
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  r.slot = static_cast<uint16_t>(*slot);
  r.host = std::string(host);
  r.port = *port;
  return r;
}

bool is_tryagain(std::string_view error) { return starts_with_word(error, "TRYAGAIN"); }

bool is_clusterdown(std::string_view error) { return starts_with_word(error, "CLUSTERDOWN"); }

}  // namespace flowrelay::redis
