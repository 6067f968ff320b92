// How a message of flowrelay travels on a Redis channel (docs/PROTOCOL.md, "History"):
//   "\x1efr2 " lane " " offset " " node " " session " " seq " " epoch "\n" data
// lane: m (message) or l (log); offset, node, session, seq: decimal; epoch: [0-9a-z-]{0,64},
// empty iff offset is 0 (no history). The append script (history_scripts.h) writes the same
// form. A reply step (reply_scripts.h) extends the header:
//   "\x1efr3 " <the fr2 fields> " " kind " " id " " reply_seq " " reason " " ttft_ms " "
//   duration_ms " " bytes " " error_length "\n" error data
// kind: o d e s r (OPEN DELTA END SNAPSHOT REPLY); id: the reply id (0x21-0x7E, 1 to 64);
// reason: done|error|cancelled|producer_lost, "-" for none; ttft_ms, duration_ms: decimal or
// -1; the payload is the error text (its first error_length bytes), then the data.
// Anything else on a channel is a raw PUBLISH from outside (a backend's
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
inline constexpr std::string_view kWireReplyPrefix =
    "\x1e"
    "fr3 ";

struct WireMessage {
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  uint64_t offset = 0;
  std::string_view epoch;  // empty iff offset is 0
  flowrelay_origin origin{};
  std::string_view data;
  // Set (kind not MESSAGE) for a reply's message; its strings view the payload (or whatever
  // the message was copied from).
  bool has_reply = false;
  flowrelay_reply reply{};
};

// The one-letter lane of the wire form ('m' or 'l'); nullopt for a lane with no wire name.
std::optional<char> wire_lane(flowrelay_lane lane);

// The wire form of a message (the script builds it itself when it assigns the offset).
std::string encode_wire(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                        const flowrelay_origin& origin, std::string_view data);

// The wire form of a reply's message (the reply script builds it itself).
std::string encode_wire(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                        const flowrelay_origin& origin, std::string_view data,
                        const flowrelay_reply& reply);

// The message a payload received from Redis carries: views into `payload`. A payload not in
// the wire form, or malformed (no newline, unknown lane, bad number or epoch), is raw.
WireMessage decode_wire(std::string_view payload);

// A history entry's reply fields ("<kind> <id> <seq> <reason|-> <ttft_ms> <duration_ms>",
// history_scripts.h) into `out` (strings view `fields`); false if malformed.
bool parse_history_reply(std::string_view fields, flowrelay_reply& out);

// The message as the host takes it: views into `wire` (its reply too), valid as long as
// `wire` and its payload.
flowrelay_message to_message(const WireMessage& wire);

}  // namespace flowrelay::redis
