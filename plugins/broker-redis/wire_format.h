// How a message of flowrelay travels on a Redis channel (docs/PROTOCOL.md, "History"):
//   "\x1efr2 " lane " " offset " " node " " session " " seq " " epoch "\n" data
// lane: m (message) or l (log); offset, node, session, seq: decimal; epoch: [0-9a-z-]{0,64},
// empty iff offset is 0 (no history). The append script (history_scripts.h) writes the same
// form. Anything else on a channel is a raw PUBLISH from outside (a backend's
// `PUBLISH chat:42 hello`): message lane, offset 0, origin {0, 0, 0}.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace flowrelay::redis {

inline constexpr std::string_view kWirePrefix =
    "\x1e"
    "fr2 ";

struct WireMessage {
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  uint64_t offset = 0;
  std::string_view epoch;  // empty iff offset is 0
  flowrelay_origin origin{};
  std::string_view data;
};

// The one-letter lane of the wire form ('m' or 'l'); nullopt for a lane with no wire name.
std::optional<char> wire_lane(flowrelay_lane lane);

// The wire form of a message (the script builds it itself when it assigns the offset).
std::string encode_wire(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                        const flowrelay_origin& origin, std::string_view data);

// The message a payload received from Redis carries: views into `payload`. A payload not in
// the wire form, or malformed (no newline, unknown lane, bad number or epoch), is raw.
WireMessage decode_wire(std::string_view payload);

// The message as the host takes it: views into `wire`, valid as long as its payload.
flowrelay_message to_message(const WireMessage& wire);

}  // namespace flowrelay::redis
