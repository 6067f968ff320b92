// An encoded server frame (or raw bytes such as an HTTP response) shared by every connection
// it is queued on: a message fanned out to N sessions is encoded once, then only referenced.
// Transport-neutral: a frame is a transport's head bytes (a WebSocket frame header, nothing for
// an SSE event) followed by its payload.
#pragma once

#include <flowrelay/plugin.h>
#include <time.h>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

namespace flowrelay::stream {

// Where the parts of a reply DELTA frame's JSON payload lie (offsets into payload()), so that
// backpressure can merge two of them without parsing (delta_merge.h). The reply id and the
// epoch are compared as escaped JSON, which is the same as comparing them unescaped.
struct DeltaLayout {
  uint32_t reply_pos = 0, reply_len = 0;
  uint32_t epoch_pos = 0, epoch_len = 0;
  uint32_t data_pos = 0, data_len = 0;
};

class SharedFrame {
 public:
  // `head` then `payload`, tagged with the channel it belongs to (payload() is what follows
  // the head: the JSON of an envelope frame, say).
  static SharedFrame* make(std::string_view channel, std::string_view head,
                           std::string_view payload) {
    const size_t hlen = head.size();
    SharedFrame* f = allocate(hlen + payload.size(), channel.size());
    if (hlen) std::memcpy(f->bytes(), head.data(), hlen);
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
  void set_created_ns(int64_t ns) { _created_ns = ns; }

  // A reply's DELTA frame (envelope mode) covering seqs from..seq; only these are merged.
  void set_delta(uint64_t from, uint64_t seq, const DeltaLayout& layout) {
    _delta = true;
    _from = from;
    _seq = seq;
    _layout = layout;
  }
  bool is_delta() const { return _delta; }
  uint64_t from() const { return _from; }
  uint64_t seq() const { return _seq; }
  const DeltaLayout& layout() const { return _layout; }
  std::string_view reply_json() const { return part(_layout.reply_pos, _layout.reply_len); }
  std::string_view epoch_json() const { return part(_layout.epoch_pos, _layout.epoch_len); }
  std::string_view data_json() const { return part(_layout.data_pos, _layout.data_len); }

  // The relay latency is sampled once per message per loop: the fan-out arms the frame its
  // loop sent (bit = the loop's), and the first write of it on that loop takes the sample.
  void arm_sample(uint64_t bit) { _sample_bits.fetch_or(bit, std::memory_order_relaxed); }
  bool take_sample(uint64_t bit) {
    return (_sample_bits.load(std::memory_order_relaxed) & bit) &&
           (_sample_bits.fetch_and(~bit, std::memory_order_relaxed) & bit);
  }

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
  std::string_view part(uint32_t pos, uint32_t len) const { return payload().substr(pos, len); }
  char* bytes() { return reinterpret_cast<char*>(this + 1); }
  const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }

  std::atomic<uint32_t> _refs{1};
  uint32_t _size;
  uint32_t _channel_len;
  uint8_t _header_len = 0;
  uint8_t _lane = FLOWRELAY_LANE_MESSAGE;
  bool _delta = false;
  int64_t _created_ns = 0;
  uint64_t _offset = 0;
  std::atomic<uint64_t> _sample_bits{0};
  uint64_t _from = 0, _seq = 0;
  DeltaLayout _layout;
};

}  // namespace flowrelay::stream
