#include "wire_format.h"

#include <charconv>

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

std::optional<WireMessage> parse(std::string_view payload) {
  if (!payload.starts_with(kWirePrefix)) return std::nullopt;
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
  m.epoch = std::string_view(at, static_cast<size_t>(last - at));
  if (!valid_epoch(m.epoch) || (m.offset == 0) != m.epoch.empty()) return std::nullopt;
  m.data = rest.substr(newline + 1);
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
  return m;
}

}  // namespace flowrelay::redis
