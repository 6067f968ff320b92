// Envelope mode (subprotocol flowrelay.v1): the JSON frames of docs/PROTOCOL.md.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace flowrelay::ws {

// {"type":"message","lane":...,"offset":N,"epoch":"E","data":"..."} (offset and epoch left out
// when offset is 0: the message is not in history).
std::string envelope_message(flowrelay_lane lane, uint64_t offset, std::string_view epoch,
                             std::string_view data);
// {"type":"resumed","recovered":B,"offset":N,"epoch":"E"} (offset/epoch left out if unknown).
std::string envelope_resumed(bool recovered, uint64_t offset, std::string_view epoch);
// {"type":"error","code":N,"reason":"..."}
std::string envelope_error(int code, std::string_view reason);

// A client frame: {"type":"publish","lane":"message"|"log","data":"..."}.
struct ClientPublish {
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  std::string data;
};
// Parses `text` (valid UTF-8); on failure returns false with the reason for the error frame.
bool parse_client_frame(std::string_view text, ClientPublish& out, std::string& error);

// Appends `s` as the inside of a JSON string: escapes '"', '\\' and control characters only,
// leaving UTF-8 as it is (valid JSON, RFC 8259). Written by hand because Poco::UTF8::escape
// turns every non-ASCII character into \uXXXX, doubling non-Latin chat text on the hot path.
void append_json_string(std::string& out, std::string_view s);

}  // namespace flowrelay::ws
