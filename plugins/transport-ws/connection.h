// Per-connection state, kept small: an idle open connection is this struct and nothing else
// (input and fragment buffers exist only while a partial frame or message is pending).
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "frame_codec.h"
#include "shared_frame.h"

namespace flowrelay::ws {

struct LoopChannel;

// A session resuming with ?since=N: exists from its 101 until its history has been replayed.
// Live frames arriving meanwhile wait here, so they follow the replay without a gap.
struct Resume {
  uint64_t since = 0;
  std::string epoch;
  std::vector<SharedFrame*> held;
  uint64_t held_bytes = 0;
  bool overflow = false;  // more than max_outbound_bytes arrived meanwhile: slow consumer
  ~Resume() {
    for (SharedFrame* f : held) f->unref();
  }
};

// FIFO of frames waiting to be written, as a growable ring of references.
class OutQueue {
 public:
  ~OutQueue() { clear(); }
  bool empty() const { return _count == 0; }
  uint32_t count() const { return _count; }
  uint64_t bytes() const { return _bytes; }  // not yet written
  // Takes over one reference of `f`.
  void push(SharedFrame* f) {
    if (_count == _cap) grow();
    _ring[(_head + _count) & (_cap - 1)] = f;
    ++_count;
    _bytes += f->size();
  }
  SharedFrame* at(uint32_t i) const { return _ring[(_head + i) & (_cap - 1)]; }
  uint32_t head_offset() const { return _head_offset; }
  // Marks n bytes written, releasing the frames fully written (each passed to `written`
  // first).
  template <typename F>
  void consume(size_t n, F&& written) {
    _bytes -= n;
    while (n > 0) {
      SharedFrame* f = _ring[_head];
      const size_t left = f->size() - _head_offset;
      if (n < left) {
        _head_offset += static_cast<uint32_t>(n);
        return;
      }
      n -= left;
      written(f);
      pop();
    }
    if (_count == 0 && _cap > 16) release();  // a burst is over: give the memory back
  }
  // Drops every frame not yet started (a partly written head stays, so the stream remains
  // valid frames); returns the bytes dropped.
  uint64_t drop_unstarted() {
    const uint32_t keep = _head_offset > 0 ? 1 : 0;
    uint64_t dropped = 0;
    while (_count > keep) {
      const uint32_t last = (_head + _count - 1) & (_cap - 1);
      dropped += _ring[last]->size();
      _ring[last]->unref();
      --_count;
    }
    _bytes -= dropped;
    return dropped;
  }
  void clear() {
    while (_count) pop();
    _bytes = 0;
    release();
  }

 private:
  void pop() {
    _ring[_head]->unref();
    _head = (_head + 1) & (_cap - 1);
    --_count;
    _head_offset = 0;
  }
  void grow() {
    const uint32_t cap = _cap ? _cap * 2 : 4;
    auto** ring = static_cast<SharedFrame**>(std::malloc(sizeof(SharedFrame*) * cap));
    if (!ring) throw std::bad_alloc();
    for (uint32_t i = 0; i < _count; ++i) ring[i] = at(i);
    std::free(_ring);
    _ring = ring;
    _cap = cap;
    _head = 0;
  }
  void release() {
    std::free(_ring);
    _ring = nullptr;
    _cap = _head = 0;
  }

  SharedFrame** _ring = nullptr;
  uint32_t _cap = 0;  // a power of two
  uint32_t _head = 0;
  uint32_t _count = 0;
  uint32_t _head_offset = 0;  // bytes of the head frame already written
  uint64_t _bytes = 0;
};

enum class ConnState : uint8_t {
  Handshake,  // reading the HTTP upgrade request
  Joining,    // request accepted, waiting for the broker to confirm the channel
  Open,       // WebSocket frames flow
  Closing,    // our close frame (or HTTP error) is queued; waiting for the peer to go
  Dead,       // fd closed; freed at the end of the loop iteration
};

// Which timer list a connection is on (each list has one timeout, so it stays sorted).
enum class TimerList : uint8_t { None, Handshake, Closing, Idle };

struct Connection {
  uint64_t id = 0;  // unique within its loop
  int fd = -1;
  ConnState state = ConnState::Handshake;
  TimerList timer = TimerList::None;
  bool dirty = false;         // on the loop's flush list
  bool read_pending = false;  // read budget exhausted; on the loop's read list
  bool write_shut = false;    // shutdown(SHUT_WR) done
  bool want_write = false;    // EPOLLOUT registered: the socket buffer was full
  bool can_publish = true;    // granted by the token (always, without auth)
  bool ping_sent = false;     // idle: we pinged and wait for any frame
  bool capped = false;        // counted in ConnectionCaps: release() owed
  bool slow = false;          // dropped as a slow consumer: takes no more frames
  bool counted = false;       // subscribe() succeeded or is pending: unsubscribe() owed
  bool envelope = false;      // subprotocol flowrelay.v1: JSON frames, both lanes
  uint8_t frag_opcode = 0;    // opcode of the fragmented message being received, 0 if none
  uint32_t member_index = 0;  // position in channel->members (Open) or channel->waiting
  LoopChannel* channel = nullptr;
  OutQueue out;
  std::string* in = nullptr;          // unparsed input carried over between reads
  std::string* message = nullptr;     // payload of a fragmented message so far
  SharedFrame* accept_101 = nullptr;  // the 101 held back while Joining
  Resume* resume = nullptr;           // set while a resume's history is being read
  uint64_t seam_offset = 0;           // after a resume: live frames up to this offset were replayed
  Utf8Validator utf8;                 // over `message`
  int64_t deadline_ms = 0;
  float tokens = 0;              // publish token bucket
  uint32_t tokens_at_ms = 0;     // last refill (loop clock, wraps after 49 days: harmless)
  std::array<uint8_t, 16> ip{};  // peer address (IPv4-mapped), for the per-IP cap
  Connection* prev = nullptr;    // timer list links
  Connection* next = nullptr;

  ~Connection() {
    delete in;
    delete message;
    if (accept_101) accept_101->unref();
    delete resume;
  }
};

}  // namespace flowrelay::ws
