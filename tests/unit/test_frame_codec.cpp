// Unit tests for the RFC 6455 frame codec (plugins/transport-ws/frame_codec.{h,cpp}).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "frame_codec.h"

namespace ws = flowrelay::ws;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::string string_of(const uint8_t* p, size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

ws::ParseResult parse(const Bytes& b, ws::FrameHeader& h) {
  return ws::parse_header(b.data(), b.size(), h);
}

// A FrameHeader with the given fields (header_len/mask filled in as parse_header would).
ws::FrameHeader header(bool fin, uint8_t rsv, uint8_t opcode, bool masked, uint64_t payload_len) {
  ws::FrameHeader h;
  h.fin = fin;
  h.rsv = rsv;
  h.opcode = opcode;
  h.masked = masked;
  h.payload_len = payload_len;
  if (masked) {
    h.mask[0] = 0x11;
    h.mask[1] = 0x22;
    h.mask[2] = 0x33;
    h.mask[3] = 0x44;
  }
  h.header_len = 2 + (payload_len < 126 ? 0 : payload_len <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
  return h;
}

ws::FrameHeader client(uint8_t opcode, uint64_t payload_len, bool fin = true) {
  return header(fin, 0, opcode, /*masked=*/true, payload_len);
}

constexpr uint64_t kMax = 1 << 20;

}  // namespace

// ---------------------------------------------------------------------------------------------
// parse_header: RFC 6455 section 5.7 examples
// ---------------------------------------------------------------------------------------------

TEST(ParseHeader, Rfc5_7_UnmaskedHello) {
  const Bytes frame = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  ws::FrameHeader h;
  ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.rsv, 0);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Text));
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.payload_len, 5u);
  EXPECT_EQ(h.header_len, 2u);
  EXPECT_EQ(string_of(frame.data() + h.header_len, h.payload_len), "Hello");
}

TEST(ParseHeader, Rfc5_7_MaskedHello) {
  Bytes frame = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  ws::FrameHeader h;
  ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.rsv, 0);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Text));
  EXPECT_TRUE(h.masked);
  EXPECT_EQ(h.payload_len, 5u);
  EXPECT_EQ(h.header_len, 6u);
  EXPECT_EQ(h.mask[0], 0x37);
  EXPECT_EQ(h.mask[1], 0xfa);
  EXPECT_EQ(h.mask[2], 0x21);
  EXPECT_EQ(h.mask[3], 0x3d);
  ws::unmask(frame.data() + h.header_len, h.payload_len, h.mask, 0);
  EXPECT_EQ(string_of(frame.data() + h.header_len, h.payload_len), "Hello");
  EXPECT_EQ(ws::validate_client_frame(h, false, kMax), 0);
}

TEST(ParseHeader, Rfc5_7_FragmentedUnmaskedText) {
  const Bytes first = {0x01, 0x03, 0x48, 0x65, 0x6c};  // "Hel", FIN clear
  const Bytes second = {0x80, 0x02, 0x6c, 0x6f};       // "lo", continuation, FIN set
  ws::FrameHeader h;
  ASSERT_EQ(parse(first, h), ws::ParseResult::Ok);
  EXPECT_FALSE(h.fin);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Text));
  EXPECT_EQ(h.payload_len, 3u);
  EXPECT_EQ(string_of(first.data() + h.header_len, h.payload_len), "Hel");
  ASSERT_EQ(parse(second, h), ws::ParseResult::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Continuation));
  EXPECT_EQ(h.payload_len, 2u);
  EXPECT_EQ(string_of(second.data() + h.header_len, h.payload_len), "lo");
}

TEST(ParseHeader, Rfc5_7_UnmaskedPing) {
  const Bytes frame = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
  ws::FrameHeader h;
  ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Ping));
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.payload_len, 5u);
  EXPECT_EQ(h.header_len, 2u);
}

TEST(ParseHeader, Rfc5_7_MaskedPong) {
  Bytes frame = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  ws::FrameHeader h;
  ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Pong));
  EXPECT_TRUE(h.masked);
  EXPECT_EQ(h.payload_len, 5u);
  EXPECT_EQ(h.header_len, 6u);
  ws::unmask(frame.data() + h.header_len, h.payload_len, h.mask, 0);
  EXPECT_EQ(string_of(frame.data() + h.header_len, h.payload_len), "Hello");
  EXPECT_EQ(ws::validate_client_frame(h, false, kMax), 0);
}

TEST(ParseHeader, Rfc5_7_Binary256Bytes) {
  const Bytes frame = {0x82, 0x7E, 0x01, 0x00};
  ws::FrameHeader h;
  ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Binary));
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.payload_len, 256u);
  EXPECT_EQ(h.header_len, 4u);
}

TEST(ParseHeader, Rfc5_7_Binary64KiB) {
  const Bytes frame = {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
  ws::FrameHeader h;
  ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
  EXPECT_TRUE(h.fin);
  EXPECT_EQ(h.opcode, static_cast<uint8_t>(ws::Opcode::Binary));
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.payload_len, 65536u);
  EXPECT_EQ(h.header_len, 10u);
}

// ---------------------------------------------------------------------------------------------
// parse_header: bit fields, lengths, truncation, malformed encodings
// ---------------------------------------------------------------------------------------------

TEST(ParseHeader, DecodesEveryOpcodeNibble) {
  for (uint8_t op = 0; op < 16; ++op) {
    const Bytes frame = {static_cast<uint8_t>(0x80 | op), 0x00};
    ws::FrameHeader h;
    ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok) << int(op);
    EXPECT_EQ(h.opcode, op);
    EXPECT_TRUE(h.fin);
    EXPECT_EQ(h.rsv, 0);
  }
}

TEST(ParseHeader, DecodesRsvBitsShiftedDown) {
  for (uint8_t rsv = 0; rsv < 8; ++rsv) {
    const Bytes frame = {static_cast<uint8_t>(rsv << 4 | 0x2), 0x00};  // FIN clear
    ws::FrameHeader h;
    ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
    EXPECT_EQ(h.rsv, rsv);
    EXPECT_FALSE(h.fin);
    EXPECT_EQ(h.opcode, 0x2);
  }
  ws::FrameHeader h;
  ASSERT_EQ(parse(Bytes{0x40 | 0x1, 0x00}, h), ws::ParseResult::Ok);  // RSV1
  EXPECT_EQ(h.rsv, 4);
  ASSERT_EQ(parse(Bytes{0x10 | 0x1, 0x00}, h), ws::ParseResult::Ok);  // RSV3
  EXPECT_EQ(h.rsv, 1);
}

TEST(ParseHeader, SevenBitLengthBoundaries) {
  ws::FrameHeader h;
  ASSERT_EQ(parse(Bytes{0x82, 0x00}, h), ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 0u);
  EXPECT_EQ(h.header_len, 2u);
  ASSERT_EQ(parse(Bytes{0x82, 0x7D}, h), ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 125u);
  EXPECT_EQ(h.header_len, 2u);
  ASSERT_EQ(parse(Bytes{0x82, 0xFD, 1, 2, 3, 4}, h), ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 125u);
  EXPECT_EQ(h.header_len, 6u);
}

TEST(ParseHeader, SixteenBitLengthIsBigEndian) {
  ws::FrameHeader h;
  ASSERT_EQ(parse(Bytes{0x82, 0x7E, 0x00, 0x7E}, h), ws::ParseResult::Ok);  // minimum: 126
  EXPECT_EQ(h.payload_len, 126u);
  ASSERT_EQ(parse(Bytes{0x82, 0x7E, 0x12, 0x34}, h), ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 0x1234u);
  ASSERT_EQ(parse(Bytes{0x82, 0x7E, 0xFF, 0xFF}, h), ws::ParseResult::Ok);  // maximum
  EXPECT_EQ(h.payload_len, 65535u);
  EXPECT_EQ(h.header_len, 4u);
  ASSERT_EQ(parse(Bytes{0x82, 0xFE, 0xFF, 0xFF, 9, 8, 7, 6}, h), ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 65535u);
  EXPECT_EQ(h.header_len, 8u);
  EXPECT_EQ(h.mask[0], 9);
  EXPECT_EQ(h.mask[3], 6);
}

TEST(ParseHeader, SixtyFourBitLengthIsBigEndian) {
  ws::FrameHeader h;
  ASSERT_EQ(parse(Bytes{0x82, 0x7F, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}, h),
            ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 0x0102030405060708u);
  EXPECT_EQ(h.header_len, 10u);
  ASSERT_EQ(parse(Bytes{0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, h),
            ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 0x7FFFFFFFFFFFFFFFu);
  ASSERT_EQ(parse(Bytes{0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}, h),
            ws::ParseResult::Ok);  // minimum: 65536
  EXPECT_EQ(h.payload_len, 65536u);
}

TEST(ParseHeader, TrailingBytesDoNotChangeTheHeader) {
  Bytes frame = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
  frame.resize(200, 0xAB);
  ws::FrameHeader h;
  ASSERT_EQ(parse(frame, h), ws::ParseResult::Ok);
  EXPECT_EQ(h.payload_len, 5u);
  EXPECT_EQ(h.header_len, 6u);
}

TEST(ParseHeader, NeedMoreAtEveryTruncationOf14ByteHeader) {
  // Masked Binary, 64-bit length 2^32 + 5, mask 0xA1 0xB2 0xC3 0xD4.
  const Bytes full = {0x82, 0xFF, 0x00, 0x00, 0x00, 0x01, 0x00,
                      0x00, 0x00, 0x05, 0xA1, 0xB2, 0xC3, 0xD4};
  ASSERT_EQ(full.size(), 14u);
  for (size_t n = 0; n < full.size(); ++n) {
    ws::FrameHeader h;
    EXPECT_EQ(ws::parse_header(full.data(), n, h), ws::ParseResult::NeedMore) << "len " << n;
  }
  ws::FrameHeader h;
  ASSERT_EQ(ws::parse_header(full.data(), full.size(), h), ws::ParseResult::Ok);
  EXPECT_EQ(h.header_len, 14u);
  EXPECT_EQ(h.payload_len, (uint64_t{1} << 32) + 5);
  EXPECT_TRUE(h.masked);
  EXPECT_EQ(h.mask[0], 0xA1);
  EXPECT_EQ(h.mask[1], 0xB2);
  EXPECT_EQ(h.mask[2], 0xC3);
  EXPECT_EQ(h.mask[3], 0xD4);
}

TEST(ParseHeader, NeedMoreAtEveryTruncationOfShorterHeaders) {
  const std::vector<Bytes> headers = {
      {0x81, 0x05},                          // 2: unmasked 7-bit
      {0x81, 0x85, 1, 2, 3, 4},              // 6: masked 7-bit
      {0x82, 0x7E, 0x01, 0x00},              // 4: unmasked 16-bit
      {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4},  // 8: masked 16-bit
      {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0},  // 10: unmasked 64-bit
  };
  for (const Bytes& full : headers) {
    for (size_t n = 0; n < full.size(); ++n) {
      ws::FrameHeader h;
      EXPECT_EQ(ws::parse_header(full.data(), n, h), ws::ParseResult::NeedMore)
          << "header size " << full.size() << ", len " << n;
    }
    ws::FrameHeader h;
    ASSERT_EQ(parse(full, h), ws::ParseResult::Ok);
    EXPECT_EQ(h.header_len, full.size());
  }
}

TEST(ParseHeader, NullDataWithZeroLengthNeedsMore) {
  ws::FrameHeader h;
  EXPECT_EQ(ws::parse_header(nullptr, 0, h), ws::ParseResult::NeedMore);
}

TEST(ParseHeader, Malformed16BitLengthBelow126) {
  ws::FrameHeader h;
  EXPECT_EQ(parse(Bytes{0x82, 0x7E, 0x00, 0x00}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7E, 0x00, 0x05}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7E, 0x00, 0x7D}, h), ws::ParseResult::Malformed);  // 125
  EXPECT_EQ(parse(Bytes{0x82, 0xFE, 0x00, 0x7D, 1, 2, 3, 4}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7E, 0x00, 0x7E}, h), ws::ParseResult::Ok);  // 126 is minimal
}

TEST(ParseHeader, Malformed64BitLengthBelow65536) {
  ws::FrameHeader h;
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x7D}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0x7E}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, h),
            ws::ParseResult::Malformed);  // 65535
  EXPECT_EQ(parse(Bytes{0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4}, h),
            ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}, h), ws::ParseResult::Ok);
}

TEST(ParseHeader, Malformed64BitLengthWithTopBitSet) {
  ws::FrameHeader h;
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0x80, 0, 0, 0, 0, 1, 0, 0}, h), ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, h),
            ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, h),
            ws::ParseResult::Malformed);
  EXPECT_EQ(parse(Bytes{0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, h),
            ws::ParseResult::Ok);
}

TEST(ParseHeader, MalformedLengthDetectedBeforeMaskArrives) {
  // Fail fast: the bad length is already visible, no need to wait for the mask bytes.
  ws::FrameHeader h;
  const Bytes bad16 = {0x82, 0xFE, 0x00, 0x10};
  EXPECT_EQ(parse(bad16, h), ws::ParseResult::Malformed);
  const Bytes bad64 = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(parse(bad64, h), ws::ParseResult::Malformed);
  // ...but a truncated length field is still NeedMore.
  EXPECT_EQ(ws::parse_header(bad64.data(), 9, h), ws::ParseResult::NeedMore);
  EXPECT_EQ(ws::parse_header(bad16.data(), 3, h), ws::ParseResult::NeedMore);
}

TEST(ParseHeader, UnmaskedFrameHasZeroMask) {
  ws::FrameHeader h;
  h.mask[0] = h.mask[1] = h.mask[2] = h.mask[3] = 0x5A;
  ASSERT_EQ(parse(Bytes{0x81, 0x00}, h), ws::ParseResult::Ok);
  EXPECT_FALSE(h.masked);
  EXPECT_EQ(h.mask[0] | h.mask[1] | h.mask[2] | h.mask[3], 0);
}

// ---------------------------------------------------------------------------------------------
// validate_client_frame
// ---------------------------------------------------------------------------------------------

TEST(ValidateClientFrame, AcceptsOrdinaryMaskedFrames) {
  EXPECT_EQ(ws::validate_client_frame(client(0x1, 5), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x2, 0), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x1, 5, /*fin=*/false), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x0, 5), true, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x0, 5, /*fin=*/false), true, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x8, 0), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x8, 2), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x9, 0), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0xA, 125), false, kMax), 0);
}

TEST(ValidateClientFrame, UnmaskedFrameIsProtocolError) {
  for (uint8_t op : {0x1, 0x2, 0x8, 0x9, 0xA}) {
    EXPECT_EQ(ws::validate_client_frame(header(true, 0, op, false, 5), false, kMax), 1002)
        << int(op);
  }
  EXPECT_EQ(ws::validate_client_frame(header(true, 0, 0x0, false, 5), true, kMax), 1002);
  // The RFC 5.7 unmasked example is a server frame: a server must reject it from a client.
  ws::FrameHeader h;
  ASSERT_EQ(parse(Bytes{0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}, h), ws::ParseResult::Ok);
  EXPECT_EQ(ws::validate_client_frame(h, false, kMax), ws::close_code::ProtocolError);
}

TEST(ValidateClientFrame, AnyRsvBitIsProtocolError) {
  for (uint8_t rsv = 1; rsv < 8; ++rsv) {
    EXPECT_EQ(ws::validate_client_frame(header(true, rsv, 0x1, true, 5), false, kMax), 1002)
        << int(rsv);
    EXPECT_EQ(ws::validate_client_frame(header(true, rsv, 0x9, true, 5), false, kMax), 1002)
        << int(rsv);
  }
  // Parsed from the wire: RSV1 on a masked text frame.
  ws::FrameHeader h;
  ASSERT_EQ(parse(Bytes{0xC1, 0x80, 1, 2, 3, 4}, h), ws::ParseResult::Ok);
  EXPECT_EQ(ws::validate_client_frame(h, false, kMax), 1002);
}

TEST(ValidateClientFrame, ReservedOpcodesAreProtocolErrors) {
  for (uint8_t op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(ws::validate_client_frame(client(op, 0), false, kMax), 1002) << int(op);
    EXPECT_EQ(ws::validate_client_frame(client(op, 0), true, kMax), 1002) << int(op);
    EXPECT_EQ(ws::validate_client_frame(client(op, 0, /*fin=*/false), false, kMax), 1002)
        << int(op);
  }
}

TEST(ValidateClientFrame, ControlFramePayloadAbove125IsProtocolError) {
  for (uint8_t op : {0x8, 0x9, 0xA}) {
    EXPECT_EQ(ws::validate_client_frame(client(op, 125), false, kMax), 0) << int(op);
    EXPECT_EQ(ws::validate_client_frame(client(op, 126), false, kMax), 1002) << int(op);
    EXPECT_EQ(ws::validate_client_frame(client(op, 65536), false, kMax), 1002) << int(op);
  }
  // From the wire: a ping announcing 126 bytes via the 16-bit length.
  ws::FrameHeader h;
  ASSERT_EQ(parse(Bytes{0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4}, h), ws::ParseResult::Ok);
  EXPECT_EQ(ws::validate_client_frame(h, false, kMax), 1002);
}

TEST(ValidateClientFrame, FragmentedControlFrameIsProtocolError) {
  for (uint8_t op : {0x8, 0x9, 0xA}) {
    EXPECT_EQ(ws::validate_client_frame(client(op, 0, /*fin=*/false), false, kMax), 1002)
        << int(op);
    EXPECT_EQ(ws::validate_client_frame(client(op, 0, /*fin=*/false), true, kMax), 1002) << int(op);
  }
}

TEST(ValidateClientFrame, ControlFramesMayInterleaveWithFragments) {
  for (uint8_t op : {0x8, 0x9, 0xA}) {
    EXPECT_EQ(ws::validate_client_frame(client(op, 2), true, kMax), 0) << int(op);
  }
}

TEST(ValidateClientFrame, CloseWithOneBytePayloadIsProtocolError) {
  // RFC 6455 5.5.1: a Close body, if present, starts with a 2-byte status code.
  EXPECT_EQ(ws::validate_client_frame(client(0x8, 1), false, kMax), 1002);
  EXPECT_EQ(ws::validate_client_frame(client(0x8, 0), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x8, 2), false, kMax), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x9, 1), false, kMax), 0);  // pings are fine
}

TEST(ValidateClientFrame, ContinuationOutsideFragmentedMessageIsProtocolError) {
  EXPECT_EQ(ws::validate_client_frame(client(0x0, 5), false, kMax), 1002);
  EXPECT_EQ(ws::validate_client_frame(client(0x0, 5, /*fin=*/false), false, kMax), 1002);
  EXPECT_EQ(ws::validate_client_frame(client(0x0, 0), false, kMax), 1002);
}

TEST(ValidateClientFrame, NewDataFrameInsideFragmentedMessageIsProtocolError) {
  for (uint8_t op : {0x1, 0x2}) {
    EXPECT_EQ(ws::validate_client_frame(client(op, 5), true, kMax), 1002) << int(op);
    EXPECT_EQ(ws::validate_client_frame(client(op, 5, /*fin=*/false), true, kMax), 1002) << int(op);
  }
}

TEST(ValidateClientFrame, DataFrameLargerThanMaxMessageIsTooBig) {
  constexpr uint64_t max = 1000;
  EXPECT_EQ(ws::validate_client_frame(client(0x1, max), false, max), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x1, max + 1), false, max), 1009);
  EXPECT_EQ(ws::validate_client_frame(client(0x2, max + 1), false, max), 1009);
  EXPECT_EQ(ws::validate_client_frame(client(0x2, max + 1, /*fin=*/false), false, max), 1009);
  EXPECT_EQ(ws::validate_client_frame(client(0x0, max + 1), true, max), 1009);
  EXPECT_EQ(ws::validate_client_frame(client(0x0, max), true, max), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x2, 0x7FFFFFFFFFFFFFFFull), false, max),
            ws::close_code::TooBig);
  EXPECT_EQ(ws::validate_client_frame(client(0x2, 1), false, 0), 1009);
  EXPECT_EQ(ws::validate_client_frame(client(0x2, 0), false, 0), 0);
}

TEST(ValidateClientFrame, MaxMessageSizeDoesNotApplyToControlFrames) {
  EXPECT_EQ(ws::validate_client_frame(client(0x9, 100), false, 10), 0);
  EXPECT_EQ(ws::validate_client_frame(client(0x8, 100), false, 10), 0);
}

TEST(ValidateClientFrame, ProtocolErrorTakesPrecedenceOverTooBig) {
  constexpr uint64_t max = 10;
  EXPECT_EQ(ws::validate_client_frame(header(true, 0, 0x2, false, 100), false, max), 1002);
  EXPECT_EQ(ws::validate_client_frame(header(true, 1, 0x2, true, 100), false, max), 1002);
  EXPECT_EQ(ws::validate_client_frame(client(0x0, 100), false, max), 1002);
  EXPECT_EQ(ws::validate_client_frame(client(0x2, 100), true, max), 1002);
}

// ---------------------------------------------------------------------------------------------
// unmask
// ---------------------------------------------------------------------------------------------

namespace {

void naive_unmask(uint8_t* data, size_t len, const uint8_t mask[4], uint64_t offset) {
  for (size_t i = 0; i < len; ++i) data[i] ^= mask[(offset + i) % 4];
}

Bytes pattern(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

}  // namespace

TEST(Unmask, Rfc5_7_Hello) {
  uint8_t payload[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  ws::unmask(payload, sizeof payload, mask, 0);
  EXPECT_EQ(string_of(payload, sizeof payload), "Hello");
}

TEST(Unmask, MatchesNaiveXorForAllSmallLengthsOffsetsAndAlignments) {
  const uint8_t mask[4] = {0xDE, 0xAD, 0xBE, 0xEF};
  for (size_t len = 0; len <= 70; ++len) {
    for (uint64_t offset : {0ull, 1ull, 2ull, 3ull, 4ull, 5ull, 7ull, (1ull << 32) + 3}) {
      for (size_t align = 0; align < 8; ++align) {
        Bytes buf = pattern(len + 16, static_cast<uint32_t>(len * 131 + offset));
        Bytes want = buf;
        naive_unmask(want.data() + align, len, mask, offset);
        ws::unmask(buf.data() + align, len, mask, offset);
        ASSERT_EQ(buf, want) << "len " << len << " offset " << offset << " align " << align;
      }
    }
  }
}

TEST(Unmask, DoesNotTouchBytesOutsideTheRange) {
  const uint8_t mask[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 17u}) {
    Bytes buf(len + 16, 0x00);
    ws::unmask(buf.data() + 8, len, mask, 1);
    for (size_t i = 0; i < buf.size(); ++i) {
      const bool inside = i >= 8 && i < 8 + len;
      EXPECT_EQ(buf[i], inside ? 0xFF : 0x00) << "len " << len << " i " << i;
    }
  }
}

TEST(Unmask, IsAnInvolution) {
  const uint8_t mask[4] = {0x01, 0x80, 0x7F, 0xC3};
  const Bytes original = pattern(1000, 7);
  Bytes buf = original;
  ws::unmask(buf.data(), buf.size(), mask, 2);
  EXPECT_NE(buf, original);
  ws::unmask(buf.data(), buf.size(), mask, 2);
  EXPECT_EQ(buf, original);
}

TEST(Unmask, PiecewiseEqualsWholeAtEverySplitPoint) {
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  for (size_t len : {1u, 5u, 8u, 13u, 37u, 64u}) {
    const Bytes original = pattern(len, static_cast<uint32_t>(len));
    Bytes whole = original;
    ws::unmask(whole.data(), whole.size(), mask, 0);
    for (size_t cut = 0; cut <= len; ++cut) {
      Bytes pieces = original;
      ws::unmask(pieces.data(), cut, mask, 0);
      ws::unmask(pieces.data() + cut, len - cut, mask, cut);
      ASSERT_EQ(pieces, whole) << "len " << len << " cut " << cut;
    }
  }
}

TEST(Unmask, RandomPiecesEqualWholeForSeveralStartOffsets) {
  const uint8_t mask[4] = {0x9A, 0x0B, 0x55, 0xE1};
  std::mt19937 rng(12345);
  for (size_t len : {0u, 3u, 9u, 100u, 1023u, 4096u}) {
    for (uint64_t start : {0ull, 1ull, 2ull, 3ull, 6ull, 0xFFFFFFFFFull}) {
      const Bytes original = pattern(len, static_cast<uint32_t>(len + start));
      Bytes whole = original;
      ws::unmask(whole.data(), whole.size(), mask, start);
      for (int trial = 0; trial < 20; ++trial) {
        Bytes pieces = original;
        size_t pos = 0;
        while (pos < len) {
          const size_t n = std::min<size_t>(len - pos, 1 + rng() % 19);
          ws::unmask(pieces.data() + pos, n, mask, start + pos);
          pos += n;
        }
        ASSERT_EQ(pieces, whole) << "len " << len << " start " << start << " trial " << trial;
      }
    }
  }
}

TEST(Unmask, OffsetOnlyMattersModuloFour) {
  const uint8_t mask[4] = {1, 2, 4, 8};
  const Bytes original = pattern(50, 3);
  for (uint64_t offset : {0ull, 1ull, 2ull, 3ull}) {
    Bytes a = original;
    Bytes b = original;
    ws::unmask(a.data(), a.size(), mask, offset);
    ws::unmask(b.data(), b.size(), mask, offset + (uint64_t{1} << 40) + 4096);
    EXPECT_EQ(a, b) << offset;
  }
  Bytes a = original;
  Bytes b = original;
  ws::unmask(a.data(), a.size(), mask, 0);
  ws::unmask(b.data(), b.size(), mask, 1);
  EXPECT_NE(a, b);
}

// ---------------------------------------------------------------------------------------------
// encode_header
// ---------------------------------------------------------------------------------------------

namespace {

Bytes encode(ws::Opcode op, uint64_t len) {
  uint8_t out[10];
  const size_t n = ws::encode_header(out, op, len);
  return Bytes(out, out + n);
}

}  // namespace

TEST(EncodeHeader, ExactBytesAtLengthBoundaries) {
  EXPECT_EQ(encode(ws::Opcode::Binary, 0), (Bytes{0x82, 0x00}));
  EXPECT_EQ(encode(ws::Opcode::Binary, 125), (Bytes{0x82, 0x7D}));
  EXPECT_EQ(encode(ws::Opcode::Binary, 126), (Bytes{0x82, 0x7E, 0x00, 0x7E}));
  EXPECT_EQ(encode(ws::Opcode::Binary, 65535), (Bytes{0x82, 0x7E, 0xFF, 0xFF}));
  EXPECT_EQ(encode(ws::Opcode::Binary, 65536),
            (Bytes{0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}));
  EXPECT_EQ(encode(ws::Opcode::Binary, (uint64_t{1} << 32) + 5),
            (Bytes{0x82, 0x7F, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05}));
  EXPECT_EQ(encode(ws::Opcode::Binary, 0x0102030405060708ull),
            (Bytes{0x82, 0x7F, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));
}

TEST(EncodeHeader, MatchesRfc5_7Examples) {
  EXPECT_EQ(encode(ws::Opcode::Text, 5), (Bytes{0x81, 0x05}));
  EXPECT_EQ(encode(ws::Opcode::Ping, 5), (Bytes{0x89, 0x05}));
  EXPECT_EQ(encode(ws::Opcode::Binary, 256), (Bytes{0x82, 0x7E, 0x01, 0x00}));
}

TEST(EncodeHeader, SetsFinAndOpcodeNoRsvNoMask) {
  const std::pair<ws::Opcode, uint8_t> cases[] = {
      {ws::Opcode::Continuation, 0x80}, {ws::Opcode::Text, 0x81}, {ws::Opcode::Binary, 0x82},
      {ws::Opcode::Close, 0x88},        {ws::Opcode::Ping, 0x89}, {ws::Opcode::Pong, 0x8A},
  };
  for (const auto& [op, first] : cases) {
    for (uint64_t len : {0ull, 100ull, 1000ull, 100000ull}) {
      const Bytes h = encode(op, len);
      EXPECT_EQ(h[0], first) << int(first) << " len " << len;
      EXPECT_EQ(h[1] & 0x80, 0) << "server frames must not be masked";
    }
  }
}

TEST(EncodeHeader, RoundTripsThroughParseHeader) {
  const uint64_t lengths[] = {
      0, 1, 125, 126, 127, 65535, 65536, 65537, (uint64_t{1} << 32) + 5, 0x7FFFFFFFFFFFFFFFull};
  for (ws::Opcode op : {ws::Opcode::Text, ws::Opcode::Binary, ws::Opcode::Continuation}) {
    for (uint64_t len : lengths) {
      uint8_t buf[10];
      const size_t n = ws::encode_header(buf, op, len);
      const size_t expected_n = len < 126 ? 2 : len <= 65535 ? 4 : 10;
      EXPECT_EQ(n, expected_n) << len;
      ws::FrameHeader h;
      ASSERT_EQ(ws::parse_header(buf, n, h), ws::ParseResult::Ok) << len;
      EXPECT_TRUE(h.fin);
      EXPECT_EQ(h.rsv, 0);
      EXPECT_EQ(h.opcode, static_cast<uint8_t>(op));
      EXPECT_FALSE(h.masked);
      EXPECT_EQ(h.payload_len, len);
      EXPECT_EQ(h.header_len, n);
      // One byte short must not parse.
      EXPECT_EQ(ws::parse_header(buf, n - 1, h), ws::ParseResult::NeedMore) << len;
    }
  }
}

TEST(EncodeHeader, ControlFramesRoundTrip) {
  for (ws::Opcode op : {ws::Opcode::Close, ws::Opcode::Ping, ws::Opcode::Pong}) {
    for (uint64_t len : {0ull, 2ull, 125ull}) {
      uint8_t buf[10];
      const size_t n = ws::encode_header(buf, op, len);
      EXPECT_EQ(n, 2u);
      ws::FrameHeader h;
      ASSERT_EQ(ws::parse_header(buf, n, h), ws::ParseResult::Ok);
      EXPECT_EQ(h.opcode, static_cast<uint8_t>(op));
      EXPECT_EQ(h.payload_len, len);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Utf8Validator
// ---------------------------------------------------------------------------------------------

namespace {

// Returns true iff `b` is complete, valid UTF-8 (fed in one call).
bool utf8_valid(const Bytes& b) {
  ws::Utf8Validator v;
  return v.feed(b.data(), b.size()) && v.complete();
}

// Independent reference: RFC 3629 / Unicode Table 3-7 well-formed byte sequences.
enum class Ref { Invalid, Incomplete, Valid };

Ref reference_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const uint8_t b = s[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b == 0xE0) {
      need = 2, lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      need = 2;
    } else if (b == 0xED) {
      need = 2, hi = 0x9F;
    } else if (b == 0xF0) {
      need = 3, lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      need = 3;
    } else if (b == 0xF4) {
      need = 3, hi = 0x8F;
    } else {
      return Ref::Invalid;
    }
    for (size_t k = 1; k <= need; ++k) {
      if (i + k >= n) return Ref::Incomplete;
      const uint8_t c = s[i + k];
      const uint8_t l = k == 1 ? lo : 0x80;
      const uint8_t h = k == 1 ? hi : 0xBF;
      if (c < l || c > h) return Ref::Invalid;
    }
    i += need + 1;
  }
  return Ref::Valid;
}

Ref reference_utf8(const Bytes& b) { return reference_utf8(b.data(), b.size()); }

Bytes encode_utf8(uint32_t cp) {
  if (cp < 0x80) return {static_cast<uint8_t>(cp)};
  if (cp < 0x800) {
    return {static_cast<uint8_t>(0xC0 | cp >> 6), static_cast<uint8_t>(0x80 | (cp & 0x3F))};
  }
  if (cp < 0x10000) {
    return {static_cast<uint8_t>(0xE0 | cp >> 12), static_cast<uint8_t>(0x80 | (cp >> 6 & 0x3F)),
            static_cast<uint8_t>(0x80 | (cp & 0x3F))};
  }
  return {static_cast<uint8_t>(0xF0 | cp >> 18), static_cast<uint8_t>(0x80 | (cp >> 12 & 0x3F)),
          static_cast<uint8_t>(0x80 | (cp >> 6 & 0x3F)), static_cast<uint8_t>(0x80 | (cp & 0x3F))};
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const Bytes kKosme = {0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5};  // κόσμε

}  // namespace

TEST(Utf8Validator, EmptyIsValid) {  // Autobahn 6.1
  ws::Utf8Validator v;
  EXPECT_TRUE(v.feed(nullptr, 0));
  EXPECT_TRUE(v.complete());
  EXPECT_EQ(v.state, 0u);
}

TEST(Utf8Validator, ValidMultiByteText) {  // Autobahn 6.2, 6.3.1, 6.5
  EXPECT_TRUE(utf8_valid(
      bytes_of("Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!")));
  EXPECT_TRUE(utf8_valid(kKosme));
  EXPECT_TRUE(utf8_valid(bytes_of("\xe2\x82\xac")));                          // EURO SIGN, 3 bytes
  EXPECT_TRUE(utf8_valid(bytes_of("\xf0\x9f\x98\x80")));                      // U+1F600, 4 bytes
  EXPECT_TRUE(utf8_valid(bytes_of("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e")));  // 日本語
}

TEST(Utf8Validator, FirstAndLastCodePointOfEachLength) {  // Autobahn 6.7, 6.9
  EXPECT_TRUE(utf8_valid(Bytes{0x00}));
  EXPECT_TRUE(utf8_valid(Bytes{0xc2, 0x80}));
  EXPECT_TRUE(utf8_valid(Bytes{0xe0, 0xa0, 0x80}));
  EXPECT_TRUE(utf8_valid(Bytes{0xf0, 0x90, 0x80, 0x80}));
  EXPECT_TRUE(utf8_valid(Bytes{0x7f}));
  EXPECT_TRUE(utf8_valid(Bytes{0xdf, 0xbf}));
  EXPECT_TRUE(utf8_valid(Bytes{0xef, 0xbf, 0xbf}));
  EXPECT_TRUE(utf8_valid(Bytes{0xf4, 0x8f, 0xbf, 0xbf}));  // U+10FFFF
}

TEST(Utf8Validator, OtherBoundaryConditions) {              // Autobahn 6.11
  EXPECT_TRUE(utf8_valid(Bytes{0xed, 0x9f, 0xbf}));         // U+D7FF
  EXPECT_TRUE(utf8_valid(Bytes{0xee, 0x80, 0x80}));         // U+E000
  EXPECT_TRUE(utf8_valid(Bytes{0xef, 0xbf, 0xbd}));         // U+FFFD
  EXPECT_TRUE(utf8_valid(Bytes{0xf4, 0x8f, 0xbf, 0xbf}));   // U+10FFFF
  EXPECT_FALSE(utf8_valid(Bytes{0xf4, 0x90, 0x80, 0x80}));  // U+110000
}

TEST(Utf8Validator, NoncharactersAreValid) {               // Autobahn 6.22, 6.23
  EXPECT_TRUE(utf8_valid(Bytes{0xef, 0xbf, 0xbe}));        // U+FFFE
  EXPECT_TRUE(utf8_valid(Bytes{0xef, 0xbf, 0xbf}));        // U+FFFF
  EXPECT_TRUE(utf8_valid(Bytes{0xef, 0xb7, 0x90}));        // U+FDD0
  EXPECT_TRUE(utf8_valid(Bytes{0xf0, 0x9f, 0xbf, 0xbe}));  // U+1FFFE
  EXPECT_TRUE(utf8_valid(Bytes{0xf4, 0x8f, 0xbf, 0xbe}));  // U+10FFFE
  EXPECT_TRUE(utf8_valid(Bytes{0xef, 0xbf, 0xbd}));        // U+FFFD
}

TEST(Utf8Validator, RejectsFiveAndSixByteSequences) {  // Autobahn 6.8, 6.10
  EXPECT_FALSE(utf8_valid(Bytes{0xf8, 0x88, 0x80, 0x80, 0x80}));
  EXPECT_FALSE(utf8_valid(Bytes{0xfc, 0x84, 0x80, 0x80, 0x80, 0x80}));
  EXPECT_FALSE(utf8_valid(Bytes{0xf7, 0xbf, 0xbf, 0xbf}));  // U+1FFFFF
  EXPECT_FALSE(utf8_valid(Bytes{0xfb, 0xbf, 0xbf, 0xbf, 0xbf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xfd, 0xbf, 0xbf, 0xbf, 0xbf, 0xbf}));
}

TEST(Utf8Validator, RejectsCodePointsAboveU10FFFF) {
  EXPECT_FALSE(utf8_valid(Bytes{0xf4, 0x90, 0x80, 0x80}));  // U+110000
  EXPECT_FALSE(utf8_valid(Bytes{0xf4, 0xbf, 0xbf, 0xbf}));  // U+13FFFF
  EXPECT_FALSE(utf8_valid(Bytes{0xf5, 0x80, 0x80, 0x80}));  // U+140000
  EXPECT_FALSE(utf8_valid(Bytes{0xf6, 0x80, 0x80, 0x80}));
}

TEST(Utf8Validator, RejectsUnexpectedContinuationBytes) {  // Autobahn 6.12
  for (int c = 0x80; c <= 0xBF; ++c) {
    EXPECT_FALSE(utf8_valid(Bytes{static_cast<uint8_t>(c)})) << std::hex << c;
    EXPECT_FALSE(utf8_valid(Bytes{'a', static_cast<uint8_t>(c)})) << std::hex << c;
  }
  EXPECT_FALSE(utf8_valid(Bytes{0x80, 0xbf}));
  EXPECT_FALSE(utf8_valid(Bytes{0x80, 0xbf, 0x80}));
  EXPECT_FALSE(utf8_valid(Bytes{0x80, 0xbf, 0x80, 0xbf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xc2, 0x80, 0x80}));  // one continuation too many
  EXPECT_FALSE(utf8_valid(cat({kKosme, Bytes{0xbf}})));
}

TEST(Utf8Validator, RejectsLonelyStartBytes) {  // Autobahn 6.13
  for (int lead = 0xC0; lead <= 0xFD; ++lead) {
    EXPECT_FALSE(utf8_valid(Bytes{static_cast<uint8_t>(lead), 0x20})) << std::hex << lead;
  }
}

TEST(Utf8Validator, IncompleteSequencesAreNotComplete) {  // Autobahn 6.14, 6.15, 6.6
  const std::vector<Bytes> truncated = {
      {0xc2}, {0xdf}, {0xe0, 0xa0}, {0xef, 0xbf}, {0xf0, 0x90, 0x80}, {0xf4, 0x8f, 0xbf},
  };
  for (const Bytes& b : truncated) {
    ws::Utf8Validator v;
    EXPECT_TRUE(v.feed(b.data(), b.size())) << "a valid prefix must not be rejected";
    EXPECT_FALSE(v.complete());
    EXPECT_NE(v.state, 0u);
    EXPECT_NE(v.state, 1u);
  }
  // Sequences with the last continuation byte missing that are not valid prefixes.
  EXPECT_FALSE(utf8_valid(Bytes{0xc0}));
  EXPECT_FALSE(utf8_valid(Bytes{0xe0, 0x80}));
  EXPECT_FALSE(utf8_valid(Bytes{0xf0, 0x80, 0x80}));
  EXPECT_FALSE(utf8_valid(Bytes{0xf7, 0xbf, 0xbf}));
  // Concatenation of incomplete sequences (6.15).
  EXPECT_FALSE(utf8_valid(Bytes{0xc2, 0xe0, 0xa0, 0xf0, 0x90, 0x80, 0xdf, 0xef, 0xbf}));
  // Truncated κόσμε (6.6.x): every prefix is a valid prefix, only some are complete.
  for (size_t n = 0; n <= kKosme.size(); ++n) {
    ws::Utf8Validator v;
    EXPECT_TRUE(v.feed(kKosme.data(), n)) << n;
    const bool boundary = n == 0 || n == 2 || n == 5 || n == 7 || n == 9 || n == 11;
    EXPECT_EQ(v.complete(), boundary) << n;
  }
}

TEST(Utf8Validator, RejectsImpossibleBytes) {  // Autobahn 6.16
  EXPECT_FALSE(utf8_valid(Bytes{0xfe}));
  EXPECT_FALSE(utf8_valid(Bytes{0xff}));
  EXPECT_FALSE(utf8_valid(Bytes{0xfe, 0xfe, 0xff, 0xff}));
  EXPECT_FALSE(utf8_valid(Bytes{'a', 'b', 0xff}));
}

TEST(Utf8Validator, RejectsOverlongEncodings) {  // Autobahn 6.17, 6.18, 6.19
  // Overlong '/'.
  EXPECT_FALSE(utf8_valid(Bytes{0xc0, 0xaf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xe0, 0x80, 0xaf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xf0, 0x80, 0x80, 0xaf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xf8, 0x80, 0x80, 0x80, 0xaf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xfc, 0x80, 0x80, 0x80, 0x80, 0xaf}));
  // Maximum overlong sequences.
  EXPECT_FALSE(utf8_valid(Bytes{0xc1, 0xbf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xe0, 0x9f, 0xbf}));
  EXPECT_FALSE(utf8_valid(Bytes{0xf0, 0x8f, 0xbf, 0xbf}));
  // Overlong NUL.
  EXPECT_FALSE(utf8_valid(Bytes{0xc0, 0x80}));
  EXPECT_FALSE(utf8_valid(Bytes{0xe0, 0x80, 0x80}));
  EXPECT_FALSE(utf8_valid(Bytes{0xf0, 0x80, 0x80, 0x80}));
}

TEST(Utf8Validator, RejectsSurrogates) {  // Autobahn 6.20, 6.21
  const std::vector<Bytes> single = {
      {0xed, 0xa0, 0x80}, {0xed, 0xad, 0xbf}, {0xed, 0xae, 0x80}, {0xed, 0xaf, 0xbf},
      {0xed, 0xb0, 0x80}, {0xed, 0xbe, 0x80}, {0xed, 0xbf, 0xbf},
  };
  for (const Bytes& b : single) EXPECT_FALSE(utf8_valid(b));
  const std::vector<Bytes> paired = {
      {0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80}, {0xed, 0xa0, 0x80, 0xed, 0xbf, 0xbf},
      {0xed, 0xad, 0xbf, 0xed, 0xb0, 0x80}, {0xed, 0xad, 0xbf, 0xed, 0xbf, 0xbf},
      {0xed, 0xae, 0x80, 0xed, 0xb0, 0x80}, {0xed, 0xae, 0x80, 0xed, 0xbf, 0xbf},
      {0xed, 0xaf, 0xbf, 0xed, 0xb0, 0x80}, {0xed, 0xaf, 0xbf, 0xed, 0xbf, 0xbf},
  };
  for (const Bytes& b : paired) EXPECT_FALSE(utf8_valid(b));
  // CESU-8 style encoding of U+1F600 is not UTF-8 either.
  EXPECT_FALSE(utf8_valid(Bytes{0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80}));
  // The surrogate is rejected at its second byte, not only at the end.
  ws::Utf8Validator v;
  EXPECT_TRUE(v.feed(Bytes{0xed}.data(), 1));
  EXPECT_FALSE(v.feed(Bytes{0xa0}.data(), 1));
}

TEST(Utf8Validator, FourByteCodePointSplitAtEveryPosition) {
  const Bytes cps[] = {
      {0xf0, 0x90, 0x80, 0x80},  // U+10000
      {0xf0, 0x9f, 0x98, 0x80},  // U+1F600
      {0xf4, 0x8f, 0xbf, 0xbf},  // U+10FFFF
  };
  for (const Bytes& cp : cps) {
    const Bytes text = cat({bytes_of("ab"), cp, bytes_of("cd")});
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      ws::Utf8Validator v;
      EXPECT_TRUE(v.feed(text.data(), cut)) << "cut " << cut;
      const bool mid_code_point = cut > 2 && cut < 6;
      EXPECT_EQ(v.complete(), !mid_code_point) << "cut " << cut;
      EXPECT_TRUE(v.feed(text.data() + cut, text.size() - cut)) << "cut " << cut;
      EXPECT_TRUE(v.complete()) << "cut " << cut;
    }
  }
}

TEST(Utf8Validator, FourByteCodePointFedOneByteAtATime) {
  const Bytes cp = {0xf0, 0x9f, 0x98, 0x80};
  ws::Utf8Validator v;
  for (size_t i = 0; i < cp.size(); ++i) {
    ASSERT_TRUE(v.feed(&cp[i], 1)) << i;
    EXPECT_EQ(v.complete(), i == cp.size() - 1) << i;
  }
}

TEST(Utf8Validator, InvalidFourByteSequenceSplitAtEveryPositionIsRejected) {
  const Bytes bad = {'a', 'b', 0xf4, 0x90, 0x80, 0x80, 'c'};  // U+110000
  for (size_t cut = 0; cut <= bad.size(); ++cut) {
    ws::Utf8Validator v;
    const bool first = v.feed(bad.data(), cut);
    EXPECT_EQ(first, cut <= 3) << "cut " << cut;  // 0xf4 alone is still a valid prefix
    EXPECT_FALSE(first && v.feed(bad.data() + cut, bad.size() - cut)) << "cut " << cut;
    EXPECT_FALSE(v.complete());
  }
}

TEST(Utf8Validator, FailFastBeforeMessageEnds) {  // Autobahn 6.4.1 - 6.4.4
  const Bytes tail = bytes_of("edited");
  {
    // 6.4.1: κόσμε | f4 90 80 80 | "edited": the second fragment is already invalid.
    ws::Utf8Validator v;
    EXPECT_TRUE(v.feed(kKosme.data(), kKosme.size()));
    const Bytes bad = {0xf4, 0x90, 0x80, 0x80};
    EXPECT_FALSE(v.feed(bad.data(), bad.size()));
    EXPECT_FALSE(v.feed(tail.data(), tail.size())) << "rejection is sticky";
    EXPECT_FALSE(v.complete());
  }
  {
    // 6.4.2: κόσμε f4 | 90 80 80 "edited": rejected at the first byte of the second fragment.
    ws::Utf8Validator v;
    const Bytes first = cat({kKosme, Bytes{0xf4}});
    EXPECT_TRUE(v.feed(first.data(), first.size()));
    EXPECT_FALSE(v.feed(Bytes{0x90}.data(), 1));
  }
  {
    // 6.4.3 / 6.4.4: κόσμε | f4 | 90 | 80 80 | edited
    ws::Utf8Validator v;
    EXPECT_TRUE(v.feed(kKosme.data(), kKosme.size()));
    EXPECT_TRUE(v.feed(Bytes{0xf4}.data(), 1));
    EXPECT_FALSE(v.feed(Bytes{0x90}.data(), 1));
    EXPECT_FALSE(v.feed(Bytes{0x80, 0x80}.data(), 2));
  }
  {
    // 6.3.2: κόσμε ed a0 80 "edited" in one piece.
    EXPECT_FALSE(utf8_valid(cat({kKosme, Bytes{0xed, 0xa0, 0x80}, tail})));
  }
}

TEST(Utf8Validator, RejectStateIsOneAndStickyUntilReset) {
  ws::Utf8Validator v;
  EXPECT_FALSE(v.feed(Bytes{0xff}.data(), 1));
  EXPECT_EQ(v.state, 1u);
  EXPECT_FALSE(v.complete());
  EXPECT_FALSE(v.feed(Bytes{'a'}.data(), 1));
  EXPECT_FALSE(v.feed(nullptr, 0));
  EXPECT_EQ(v.state, 1u);
  v.reset();
  EXPECT_TRUE(v.complete());
  EXPECT_TRUE(v.feed(Bytes{'a'}.data(), 1));
  EXPECT_TRUE(v.complete());
}

TEST(Utf8Validator, StateMidSequenceIsNeitherAcceptNorReject) {
  ws::Utf8Validator v;
  EXPECT_TRUE(v.feed(Bytes{0xe2, 0x82}.data(), 2));
  EXPECT_NE(v.state, 0u);
  EXPECT_NE(v.state, 1u);
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_EQ(v.state, 0u);
}

TEST(Utf8Validator, AsciiFastPathFindsInvalidByteAtEveryPosition) {
  for (size_t len : {1u, 7u, 8u, 9u, 16u, 40u, 65u}) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (uint8_t bad : {0x80, 0xbf, 0xc0, 0xf5, 0xff}) {
        for (size_t align = 0; align < 8; ++align) {
          Bytes buf(align + len, 'x');
          buf[align + pos] = bad;
          ws::Utf8Validator v;
          EXPECT_FALSE(v.feed(buf.data() + align, len))
              << "len " << len << " pos " << pos << " bad " << int(bad) << " align " << align;
        }
      }
    }
  }
}

TEST(Utf8Validator, AsciiFastPathHandlesMultiByteAtEveryPosition) {
  const Bytes euro = {0xe2, 0x82, 0xac};
  for (size_t len : {3u, 8u, 11u, 24u, 33u}) {
    for (size_t pos = 0; pos + 3 <= len; ++pos) {
      Bytes buf(len, 'y');
      std::copy(euro.begin(), euro.end(), buf.begin() + static_cast<std::ptrdiff_t>(pos));
      EXPECT_TRUE(utf8_valid(buf)) << "len " << len << " pos " << pos;
      // The same with a truncated sequence at the very end.
      Bytes trunc = buf;
      trunc.resize(pos + 2);
      ws::Utf8Validator v;
      EXPECT_TRUE(v.feed(trunc.data(), trunc.size()));
      EXPECT_FALSE(v.complete()) << "len " << len << " pos " << pos;
    }
  }
  // A stray continuation byte right after a valid multi-byte sequence inside an ASCII run.
  Bytes buf(32, 'z');
  std::copy(euro.begin(), euro.end(), buf.begin() + 5);
  buf[8] = 0x80;
  EXPECT_FALSE(utf8_valid(buf));
}

TEST(Utf8Validator, LongAsciiIsValidAndHighBitInLastWordIsCaught) {
  Bytes buf(4096);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i % 128);
  EXPECT_TRUE(utf8_valid(buf));
  buf.back() = 0x80;
  EXPECT_FALSE(utf8_valid(buf));
}

TEST(Utf8Validator, ExhaustiveOneTwoAndThreeByteSequencesMatchReference) {
  uint8_t b[3];
  for (uint32_t x = 0; x < 256; ++x) {
    b[0] = static_cast<uint8_t>(x);
    ws::Utf8Validator v;
    const bool fed = v.feed(b, 1);
    const Ref r = reference_utf8(b, 1);
    ASSERT_EQ(fed, r != Ref::Invalid) << std::hex << x;
    ASSERT_EQ(fed && v.complete(), r == Ref::Valid) << std::hex << x;
  }
  for (uint32_t x = 0; x < (1u << 16); ++x) {
    b[0] = static_cast<uint8_t>(x >> 8);
    b[1] = static_cast<uint8_t>(x);
    ws::Utf8Validator v;
    const bool fed = v.feed(b, 2);
    const Ref r = reference_utf8(b, 2);
    ASSERT_EQ(fed, r != Ref::Invalid) << std::hex << x;
    ASSERT_EQ(fed && v.complete(), r == Ref::Valid) << std::hex << x;
  }
  size_t valid3 = 0;
  for (uint32_t x = 0; x < (1u << 24); ++x) {
    b[0] = static_cast<uint8_t>(x >> 16);
    b[1] = static_cast<uint8_t>(x >> 8);
    b[2] = static_cast<uint8_t>(x);
    if (b[0] < 0x80 && b[1] < 0x80 && b[2] < 0x80) continue;  // pure ASCII: covered above
    ws::Utf8Validator v;
    const bool fed = v.feed(b, 3);
    const Ref r = reference_utf8(b, 3);
    ASSERT_EQ(fed, r != Ref::Invalid) << std::hex << x;
    ASSERT_EQ(fed && v.complete(), r == Ref::Valid) << std::hex << x;
    if (b[0] >= 0xE0 && fed && v.complete()) ++valid3;
  }
  // Every 3-byte code point U+0800..U+FFFF except the 2048 surrogates.
  EXPECT_EQ(valid3, 0x10000u - 0x800u - 0x800u);
}

TEST(Utf8Validator, FourByteSequencesFedBytewiseMatchReference) {
  const uint8_t interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xFF};
  for (uint32_t lead = 0; lead < 256; ++lead) {
    for (uint8_t c1 : interesting) {
      for (uint8_t c2 : interesting) {
        for (uint8_t c3 : interesting) {
          const uint8_t s[4] = {static_cast<uint8_t>(lead), c1, c2, c3};
          ws::Utf8Validator v;
          bool alive = true;
          for (size_t i = 0; i < 4; ++i) {
            alive = v.feed(&s[i], 1);
            const Ref r = reference_utf8(s, i + 1);
            ASSERT_EQ(alive, r != Ref::Invalid)
                << std::hex << lead << ' ' << int(c1) << ' ' << int(c2) << ' ' << int(c3);
            ASSERT_EQ(alive && v.complete(), r == Ref::Valid);
            if (!alive) break;
          }
        }
      }
    }
  }
}

TEST(Utf8Validator, EveryCodePointIsAcceptedExceptSurrogates) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const Bytes b = encode_utf8(cp);
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    ASSERT_EQ(utf8_valid(b), !surrogate) << std::hex << cp;
  }
}

TEST(Utf8Validator, RandomTextInRandomPiecesMatchesOneShotAndReference) {
  std::mt19937 rng(2024);
  for (int trial = 0; trial < 300; ++trial) {
    Bytes text;
    const int n = 1 + static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) {
      const uint32_t kind = rng() % 4;
      uint32_t cp = kind == 0   ? rng() % 0x80
                    : kind == 1 ? 0x80 + rng() % (0x800 - 0x80)
                    : kind == 2 ? 0x800 + rng() % (0x10000 - 0x800)
                                : 0x10000 + rng() % (0x110000 - 0x10000);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'q';
      const Bytes e = encode_utf8(cp);
      text.insert(text.end(), e.begin(), e.end());
    }
    if (trial % 2 == 1) {  // corrupt one byte half of the time
      text[rng() % text.size()] = static_cast<uint8_t>(rng());
    }
    const Ref want = reference_utf8(text);
    ws::Utf8Validator whole;
    const bool whole_ok = whole.feed(text.data(), text.size());
    EXPECT_EQ(whole_ok, want != Ref::Invalid) << trial;
    EXPECT_EQ(whole_ok && whole.complete(), want == Ref::Valid) << trial;

    ws::Utf8Validator pieces;
    bool ok = true;
    size_t pos = 0;
    while (pos < text.size() && ok) {
      const size_t len = std::min<size_t>(text.size() - pos, rng() % 13);
      ok = pieces.feed(text.data() + pos, len);
      // At each step the verdict matches the reference on the prefix fed so far.
      EXPECT_EQ(ok, reference_utf8(text.data(), pos + len) != Ref::Invalid)
          << trial << " at " << pos;
      pos += len;
    }
    EXPECT_EQ(ok && pieces.complete(), want == Ref::Valid) << trial;
  }
}

// ---------------------------------------------------------------------------------------------
// is_valid_close_code
// ---------------------------------------------------------------------------------------------

TEST(IsValidCloseCode, SpotChecks) {
  for (uint16_t c : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                     3999, 4000, 4999}) {
    EXPECT_TRUE(ws::is_valid_close_code(c)) << c;
  }
  for (uint16_t c : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    EXPECT_FALSE(ws::is_valid_close_code(c)) << c;
  }
}

TEST(IsValidCloseCode, NamedConstants) {
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::Normal));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::GoingAway));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::ProtocolError));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::UnsupportedData));
  EXPECT_FALSE(ws::is_valid_close_code(ws::close_code::NoStatus));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::InvalidPayload));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::PolicyViolation));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::TooBig));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::InternalError));
  EXPECT_TRUE(ws::is_valid_close_code(ws::close_code::TryAgainLater));
}

TEST(IsValidCloseCode, ExhaustiveOverAllUint16) {
  size_t valid = 0;
  for (uint32_t c = 0; c <= 0xFFFF; ++c) {
    const bool expected =
        (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
    ASSERT_EQ(ws::is_valid_close_code(static_cast<uint16_t>(c)), expected) << c;
    valid += expected;
  }
  EXPECT_EQ(valid, 4u + 8u + 2000u);
}
