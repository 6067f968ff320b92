#include "support/ws_frame.h"

#include <Poco/Base64Encoder.h>
#include <Poco/SHA1Engine.h>

#include <cstring>
#include <random>
#include <sstream>

#include "support/text.h"

namespace flowrelay::test {

uint16_t Frame::close_code() const {
  if (payload.size() < 2) return 0;
  return static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                               static_cast<uint8_t>(payload[1]));
}

std::string Frame::close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }

std::string Frame::describe() const {
  std::ostringstream s;
  s << "frame{fin=" << fin << " rsv=" << int(rsv) << " opcode=" << int(opcode)
    << " masked=" << masked << " len=" << payload.size();
  if (opcode == kClose && has_close_code()) s << " code=" << close_code();
  if (opcode == kText || opcode == kClose || opcode == kPong) {
    s << " payload=\"" << payload.substr(0, 80) << (payload.size() > 80 ? "..." : "") << "\"";
  }
  s << "}";
  return s.str();
}

std::string encode_frame(const FrameSpec& spec) {
  std::string out;
  const uint64_t len = spec.declared_len.value_or(spec.payload.size());
  out.push_back(
      static_cast<char>((spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0f)));
  const uint8_t mask_bit = spec.masked ? 0x80 : 0;
  int bits = spec.len_bits;
  if (bits == 0) bits = len < 126 ? 7 : (len <= 0xffff ? 16 : 64);
  if (bits == 7) {
    out.push_back(static_cast<char>(mask_bit | len));
  } else if (bits == 16) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>((len >> 8) & 0xff));
    out.push_back(static_cast<char>(len & 0xff));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  }
  if (spec.masked) {
    for (uint8_t b : spec.mask) out.push_back(static_cast<char>(b));
  }
  for (size_t i = 0; i < spec.payload.size(); ++i) {
    uint8_t b = static_cast<uint8_t>(spec.payload[i]);
    if (spec.masked) b ^= spec.mask[i % 4];
    out.push_back(static_cast<char>(b));
  }
  return out;
}

std::optional<Frame> take_frame(std::string& buffer) {
  const auto* d = reinterpret_cast<const uint8_t*>(buffer.data());
  const size_t n = buffer.size();
  if (n < 2) return std::nullopt;
  Frame f;
  f.fin = (d[0] & 0x80) != 0;
  f.rsv = (d[0] >> 4) & 7;
  f.opcode = d[0] & 0x0f;
  f.masked = (d[1] & 0x80) != 0;
  uint64_t len = d[1] & 0x7f;
  size_t pos = 2;
  if (len == 126) {
    if (n < 4) return std::nullopt;
    len = (uint64_t{d[2]} << 8) | d[3];
    pos = 4;
  } else if (len == 127) {
    if (n < 10) return std::nullopt;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | d[2 + i];
    pos = 10;
  }
  uint8_t mask[4] = {0, 0, 0, 0};
  if (f.masked) {
    if (n < pos + 4) return std::nullopt;
    std::memcpy(mask, d + pos, 4);
    pos += 4;
  }
  if (n - pos < len) return std::nullopt;
  f.payload.assign(buffer, pos, len);
  if (f.masked) {
    for (size_t i = 0; i < f.payload.size(); ++i) f.payload[i] ^= static_cast<char>(mask[i % 4]);
  }
  buffer.erase(0, pos + len);
  return f;
}

std::string close_payload(uint16_t code, std::string_view reason) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xff));
  p.append(reason);
  return p;
}

std::optional<std::string> HttpHead::header(std::string_view name) const {
  const std::string n = lower(name);
  for (const auto& [k, v] : headers) {
    if (lower(k) == n) return v;
  }
  return std::nullopt;
}

std::optional<HttpHead> take_head(std::string& buffer) {
  const size_t end = buffer.find("\r\n\r\n");
  if (end == std::string::npos) return std::nullopt;
  std::istringstream in(buffer.substr(0, end));
  buffer.erase(0, end + 4);
  HttpHead head;
  std::string line;
  std::getline(in, line);
  head.status_line = trim(line);
  // "HTTP/1.1 101 Switching Protocols"
  const auto sp = head.status_line.find(' ');
  if (sp != std::string::npos) {
    try {
      head.status = std::stoi(head.status_line.substr(sp + 1, 3));
    } catch (...) {
      head.status = 0;
    }
  }
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    head.headers.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return head;
}

std::string make_ws_key() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string raw(16, '\0');
  for (auto& c : raw) c = static_cast<char>(rng() & 0xff);
  std::ostringstream s;
  Poco::Base64Encoder enc(s);
  enc << raw;
  enc.close();
  return s.str();
}

std::string expected_accept(const std::string& key) {
  Poco::SHA1Engine sha1;
  sha1.update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const Poco::DigestEngine::Digest& d = sha1.digest();
  std::ostringstream s;
  Poco::Base64Encoder enc(s);
  enc.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
  enc.close();
  return s.str();
}

std::string handshake_request(const std::string& path, const std::string& key,
                              const std::string& extra_headers) {
  return "GET " + path +
         " HTTP/1.1\r\n"
         "Host: 127.0.0.1\r\n"
         "Upgrade: websocket\r\n"
         "Connection: Upgrade\r\n"
         "Sec-WebSocket-Key: " +
         key +
         "\r\n"
         "Sec-WebSocket-Version: 13\r\n" +
         extra_headers + "\r\n";
}

}  // namespace flowrelay::test
