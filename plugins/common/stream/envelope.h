// Envelope mode (subprotocol flowrelay.v1): the JSON frames of docs/PROTOCOL.md.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "envelope_reply.h"

namespace flowrelay::stream {

// {"type":"message","lane":...,"offset":N,"epoch":"E","data":"..."} (offset and epoch left out
// when offset is 0: the message is not in history).
std::string envelope_message(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                             std::string_view data);
// {"type":"resumed","recovered":B,"offset":N,"epoch":"E"} (offset/epoch left out if unknown).
std::string envelope_resumed(bool recovered, uint64_t offset, std::string_view epoch);
// {"type":"error","id":"c1","code":N,"reason":"..."} (id left out when empty); `extra`: more
// members as JSON text, e.g. `,"expected_seq":4`.
std::string envelope_error(int code, std::string_view reason, std::string_view id = {},
                           std::string_view extra = {});
// {"type":"ack","id":"c1","offset":N,"epoch":"E"}: id left out when empty, offset when 0, epoch
// when empty
// (as in message frames); "relayed":false added when the backend took it without relaying it,
// "duplicate":true when a reply step had been stored before.
std::string envelope_ack(std::string_view id, uint64_t offset, std::string_view epoch, bool relayed,
                         bool duplicate = false);

// The longest publish id a client may give (printable ASCII, so it is safe to echo anywhere).
inline constexpr size_t kMaxPublishIdLength = 64;

// A client frame: {"type":"publish","id":"c1","lane":"message"|"log","data":"..."}, or a
// producer's reply step (open, delta, end, cancel: envelope_reply.h) when `is_reply`.
struct ClientPublish {
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  std::string data;  // a delta's too
  std::string id;    // empty: none given (no ack wanted)
  bool is_reply = false;
  ClientReplyStep reply;
};
// Parses `text` (valid UTF-8); on failure returns false with the reason for the error frame,
// and `out.id` set if the frame carried a valid id (the error frame then names it).
bool parse_client_frame(std::string_view text, ClientPublish& out, std::string& error);

// Appends `s` as the inside of a JSON string: escapes '"', '\\' and control characters only,
// leaving UTF-8 as it is (valid JSON, RFC 8259). Written by hand because Poco::UTF8::escape
// turns every non-ASCII character into \uXXXX, doubling non-Latin chat text on the hot path.
void append_json_string(std::string& out, std::string_view s);

}  // namespace flowrelay::stream
