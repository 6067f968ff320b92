#include "wire_format.h"

#include <charconv>
#include <cstdint>

namespace flowrelay::redis {

namespace {

constexpr size_t kMaxEpochLength = 64;

std::optional<flowrelay_lane> lane_of(char c) {
  if (c == 'm') return FLOWRELAY_LANE_MESSAGE;
  if (c == 'l') return FLOWRELAY_LANE_LOG;
  return std::nullopt;
}

// Epochs are made by the append script of [0-9a-z-]; anything else is not ours.
bool valid_epoch(std::string_view epoch) {
  if (epoch.size() > kMaxEpochLength) return false;
  for (char c : epoch)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-')) return false;
  return true;
}

// A decimal number followed by a space, at `at`; moves `at` past the space.
bool number(const char*& at, const char* last, uint64_t& out) {
  if (at == last || *at < '0' || *at > '9') return false;  // from_chars would take a sign
  const auto [end, ec] = std::from_chars(at, last, out);
  if (ec != std::errc() || end == last || *end != ' ') return false;
  at = end + 1;
  return true;
}

// The next space-separated token of `rest` (moved past it and its space).
std::string_view token(std::string_view& rest) {
  const size_t space = rest.find(' ');
  const std::string_view t = rest.substr(0, space);
  rest = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  return t;
}

bool whole_number(std::string_view s, uint64_t& out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// A duration in ms, or -1 (unknown).
bool duration(std::string_view s, int64_t& out) {
  if (s == "-1") {
    out = -1;
    return true;
  }
  uint64_t n = 0;
  if (!whole_number(s, n) || n > INT64_MAX) return false;
  out = static_cast<int64_t>(n);
  return true;
}

constexpr std::string_view kKinds = "modesr";  // indexed by flowrelay_kind

bool valid_reply_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

// "<kind> <id> <seq> <reason> <ttft_ms> <duration_ms>" at the start of `rest` (moved past).
bool reply_fields(std::string_view& rest, flowrelay_reply& r) {
  const std::string_view kind = token(rest), id = token(rest), seq = token(rest),
                         reason = token(rest), ttft = token(rest), dur = token(rest);
  const size_t k = kind.size() == 1 ? kKinds.find(kind[0]) : std::string_view::npos;
  if (k == std::string_view::npos || k == FLOWRELAY_KIND_MESSAGE || !valid_reply_id(id) ||
      !whole_number(seq, r.seq) || reason.empty() || !duration(ttft, r.ttft_ms) ||
      !duration(dur, r.duration_ms))
    return false;
  r.struct_size = sizeof r;
  r.kind = static_cast<flowrelay_kind>(k);
  r.id = {id.data(), id.size()};
  r.reason = reason == "-" ? flowrelay_str{"", 0} : flowrelay_str{reason.data(), reason.size()};
  return true;
}

// The fr3 tail of the header ("<reply fields> <bytes> <error length>") and the payload.
bool parse_reply(std::string_view tail, std::string_view payload, WireMessage& m) {
  flowrelay_reply& r = m.reply;
  if (!reply_fields(tail, r)) return false;
  const std::string_view bytes = token(tail), error_length = tail;
  uint64_t elen = 0;
  if (!whole_number(bytes, r.bytes) || !whole_number(error_length, elen) || elen > payload.size())
    return false;
  r.error = {payload.data(), static_cast<size_t>(elen)};
  m.data = payload.substr(elen);
  m.has_reply = true;
  return true;
}

std::optional<WireMessage> parse(std::string_view payload) {
  const bool reply = payload.starts_with(kWireReplyPrefix);
  if (!reply && !payload.starts_with(kWirePrefix)) return std::nullopt;
  std::string_view rest = payload.substr(kWirePrefix.size());
  const size_t newline = rest.find('\n');
  if (newline == std::string_view::npos) return std::nullopt;
  // "<lane> <offset> <node> <session> <seq> <epoch>"
  const std::string_view header = rest.substr(0, newline);
  if (header.size() < 2 || header[1] != ' ') return std::nullopt;
  WireMessage m;
  const auto lane = lane_of(header[0]);
  if (!lane) return std::nullopt;
  m.lane = *lane;
  const char* at = header.data() + 2;
  const char* last = header.data() + header.size();
  uint64_t node = 0, session = 0, seq = 0;
  if (!number(at, last, m.offset) || !number(at, last, node) || !number(at, last, session) ||
      !number(at, last, seq))
    return std::nullopt;
  m.origin = {node, session, seq};
  std::string_view tail(at, static_cast<size_t>(last - at));
  m.epoch = reply ? token(tail) : tail;
  if (!valid_epoch(m.epoch) || (m.offset == 0) != m.epoch.empty()) return std::nullopt;
  m.data = rest.substr(newline + 1);
  if (reply && !parse_reply(tail, m.data, m)) return std::nullopt;
  return m;
}

}  // namespace

std::optional<char> wire_lane(flowrelay_lane lane) {
  if (lane == FLOWRELAY_LANE_MESSAGE) return 'm';
  if (lane == FLOWRELAY_LANE_LOG) return 'l';
  return std::nullopt;
}

std::string encode_wire(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                        const flowrelay_origin& origin, std::string_view data) {
  std::string out;
  out.reserve(kWirePrefix.size() + 80 + epoch.size() + data.size());
  out += kWirePrefix;
  out += wire_lane(lane).value_or('m');
  for (uint64_t n : {offset, origin.node, origin.session, origin.seq}) {
    out += ' ';
    out += std::to_string(n);
  }
  out += ' ';
  out += epoch;
  out += '\n';
  out += data;
  return out;
}

std::string encode_wire(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                        const flowrelay_origin& origin, std::string_view data,
                        const flowrelay_reply& reply) {
  const std::string_view id(reply.id.ptr, reply.id.len), reason(reply.reason.ptr, reply.reason.len),
      error(reply.error.ptr, reply.error.len);
  std::string out = encode_wire(lane, offset, epoch, origin, "");
  out.pop_back();  // the newline
  out.replace(0, kWireReplyPrefix.size(), kWireReplyPrefix);
  out += ' ';
  out += reply.kind < kKinds.size() ? kKinds[reply.kind] : 'm';
  out += ' ';
  out += id;
  for (const std::string& s :
       {std::to_string(reply.seq), reason.empty() ? std::string("-") : std::string(reason),
        std::to_string(reply.ttft_ms < 0 ? -1 : reply.ttft_ms),
        std::to_string(reply.duration_ms < 0 ? -1 : reply.duration_ms), std::to_string(reply.bytes),
        std::to_string(error.size())}) {
    out += ' ';
    out += s;
  }
  out += '\n';
  out += error;
  out += data;
  return out;
}

bool parse_history_reply(std::string_view fields, flowrelay_reply& out) {
  return reply_fields(fields, out) && fields.empty();
}

WireMessage decode_wire(std::string_view payload) {
  if (auto m = parse(payload)) return *m;
  WireMessage raw;
  raw.data = payload;
  return raw;
}

flowrelay_message to_message(const WireMessage& wire) {
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = wire.lane;
  m.offset = wire.offset;
  m.epoch = {wire.epoch.data(), wire.epoch.size()};
  m.origin = wire.origin;
  m.data = {wire.data.data(), wire.data.size()};
  m.reply = wire.has_reply ? &wire.reply : nullptr;
  return m;
}

}  // namespace flowrelay::redis
