// A complete WebSocket server frame is a SharedFrame (plugins/common/stream) whose head is the
// RFC 6455 frame header.
#pragma once

#include <string_view>

#include "frame_codec.h"
#include "shared_frame.h"

namespace flowrelay::ws {

// A complete unmasked server frame for `payload`, tagged with the channel it belongs to.
inline SharedFrame* ws_frame(std::string_view channel, Opcode opcode, std::string_view payload) {
  uint8_t header[10];
  const size_t hlen = encode_header(header, opcode, payload.size());
  return SharedFrame::make(channel, {reinterpret_cast<const char*>(header), hlen}, payload);
}

}  // namespace flowrelay::ws
