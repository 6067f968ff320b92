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

std::optional<WireMessage> parse(std::string_view payload) {
  if (!payload.starts_with(kWirePrefix)) return std::nullopt;
  std::string_view rest = payload.substr(kWirePrefix.size());
  const size_t newline = rest.find('\n');
  if (newline == std::string_view::npos) return std::nullopt;
  const std::string_view header = rest.substr(0, newline);  // "<lane> <offset> <epoch>"
  if (header.size() < 4 || header[1] != ' ') return std::nullopt;
  WireMessage m;
  const auto lane = lane_of(header[0]);
  if (!lane) return std::nullopt;
  m.lane = *lane;
  const char* first = header.data() + 2;
  const char* last = header.data() + header.size();
  if (*first < '0' || *first > '9') return std::nullopt;  // from_chars would take a sign
  const auto [end, ec] = std::from_chars(first, last, m.offset);
  if (ec != std::errc() || end == last || *end != ' ') return std::nullopt;
  m.epoch = header.substr(static_cast<size_t>(end + 1 - header.data()));
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
                        std::string_view data) {
  std::string out(kWirePrefix);
  out += wire_lane(lane).value_or('m');
  out += ' ';
  out += std::to_string(offset);
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

}  // namespace flowrelay::redis
