// An encoded server frame (or raw bytes such as an HTTP response) shared by every connection
// it is queued on: a message fanned out to N sessions is encoded once, then only referenced.
#pragma once

#include <flowrelay/plugin.h>
#include <time.h>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include "frame_codec.h"

namespace flowrelay::ws {

class SharedFrame {
 public:
  // A complete unmasked server frame for `payload`, tagged with the channel it belongs to.
  static SharedFrame* message(std::string_view channel, Opcode opcode, std::string_view payload) {
    uint8_t header[10];
    const size_t hlen = encode_header(header, opcode, payload.size());
    SharedFrame* f = allocate(hlen + payload.size(), channel.size());
    std::memcpy(f->bytes(), header, hlen);
    if (!payload.empty()) std::memcpy(f->bytes() + hlen, payload.data(), payload.size());
    if (!channel.empty()) std::memcpy(f->bytes() + f->_size, channel.data(), channel.size());
    f->_header_len = static_cast<uint8_t>(hlen);
    if (!channel.empty()) f->_created_ns = monotonic_ns();
    return f;
  }
  // Bytes sent as they are (handshake responses).
  static SharedFrame* raw(std::string_view bytes) {
    SharedFrame* f = allocate(bytes.size(), 0);
    if (!bytes.empty()) std::memcpy(f->bytes(), bytes.data(), bytes.size());
    return f;
  }

  const char* data() const { return bytes(); }
  uint32_t size() const { return _size; }
  std::string_view channel() const { return {bytes() + _size, _channel_len}; }
  // When a channel message was encoded (0 for control frames and raw bytes).
  int64_t created_ns() const { return _created_ns; }
  static int64_t monotonic_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  std::string_view payload() const { return {bytes() + _header_len, _size - _header_len}; }
  // The message's lane and history offset (0: not in history), for shedding and resume.
  void set_position(flowrelay_lane lane, uint64_t offset) {
    _lane = static_cast<uint8_t>(lane);
    _offset = offset;
  }
  flowrelay_lane lane() const { return _lane; }
  uint64_t offset() const { return _offset; }

  void ref(uint32_t n = 1) { _refs.fetch_add(n, std::memory_order_relaxed); }
  // Gives back n references known not to be the last (the caller still holds one).
  void release(uint32_t n) { _refs.fetch_sub(n, std::memory_order_relaxed); }
  void unref() {
    if (_refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      this->~SharedFrame();
      std::free(this);
    }
  }

 private:
  SharedFrame(uint32_t size, uint32_t channel_len) : _size(size), _channel_len(channel_len) {}
  static SharedFrame* allocate(size_t size, size_t channel_len) {
    void* mem = std::malloc(sizeof(SharedFrame) + size + channel_len);
    if (!mem) throw std::bad_alloc();
    return new (mem) SharedFrame(static_cast<uint32_t>(size), static_cast<uint32_t>(channel_len));
  }
  char* bytes() { return reinterpret_cast<char*>(this + 1); }
  const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }

  std::atomic<uint32_t> _refs{1};
  uint32_t _size;
  uint32_t _channel_len;
  uint8_t _header_len = 0;
  uint8_t _lane = FLOWRELAY_LANE_MESSAGE;
  int64_t _created_ns = 0;
  uint64_t _offset = 0;
};

}  // namespace flowrelay::ws
