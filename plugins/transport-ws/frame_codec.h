// RFC 6455 frame codec: pure functions over byte buffers, no I/O, no allocation.
// Written by hand because Poco::Net::WebSocket only reads frames from a blocking socket it
// owns; the event loop needs to parse whatever bytes a non-blocking read() returned.
#pragma once

#include <cstddef>
#include <cstdint>

#include "close_code.h"
#include "utf8_repair.h"

namespace flowrelay::ws {

enum class Opcode : uint8_t {
  Continuation = 0x0,
  Text = 0x1,
  Binary = 0x2,
  Close = 0x8,
  Ping = 0x9,
  Pong = 0xA,
};

// transport-ws is built on the stream library (plugins/common/stream): its names (the close
// codes shared with transport-sse's close event, the UTF-8 validator, shared frames, the event
// loop) are visible in this namespace unqualified.
using namespace flowrelay::stream;

struct FrameHeader {
  bool fin = false;
  uint8_t rsv = 0;  // the three RSV bits, shifted down (0..7)
  uint8_t opcode = 0;
  bool masked = false;
  uint8_t mask[4] = {0, 0, 0, 0};
  uint64_t payload_len = 0;
  size_t header_len = 0;  // bytes of header before the payload (2..14)
};

enum class ParseResult {
  Ok,         // header parsed into `out`; payload starts at data + header_len
  NeedMore,   // not enough bytes for the header yet
  Malformed,  // non-minimal length encoding or 64-bit length with the top bit set
};

// Parses a frame header from data[0..len). Does not check semantics (masking, opcodes, RSV,
// control frame rules): see validate_client_frame.
ParseResult parse_header(const uint8_t* data, size_t len, FrameHeader& out);

// Semantic checks of a client->server frame header (RFC 6455 5.1-5.5). Returns 0 if the frame
// is acceptable, otherwise the close code to send (1002 protocol error, 1009 too big).
// `in_fragmented_message` = a Text/Binary frame without FIN was received and not finished.
uint16_t validate_client_frame(const FrameHeader& h, bool in_fragmented_message,
                               uint64_t max_message_size);

// XORs payload bytes with the mask; `offset` is the payload position of data[0] (so a payload
// can be unmasked in pieces).
void unmask(uint8_t* data, size_t len, const uint8_t mask[4], uint64_t offset);

// Writes an unmasked server frame header (FIN set) for a payload of payload_len bytes into
// out (at least 10 bytes). Returns the header length (2, 4 or 10).
size_t encode_header(uint8_t* out, Opcode opcode, uint64_t payload_len);

// A close code a peer may send (1000-1003, 1007-1011, the IANA-registered 1012-1014, 3000-4999);
// 1004-1006, 1015 and undefined ranges are protocol errors.
bool is_valid_close_code(uint16_t code);

}  // namespace flowrelay::ws
