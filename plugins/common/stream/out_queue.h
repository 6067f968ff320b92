// The outbound queue of one session: frames waiting to be written, as a growable ring of shared
// references (a fan-out queues the same frame on every member, no copy).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <new>

#include "shared_frame.h"

namespace flowrelay::stream {

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
  SharedFrame* back() const { return at(_count - 1); }  // not empty
  // Puts `f` in place of the last frame (not empty, not partly written), releasing that one.
  // Takes over one reference of `f`.
  void replace_back(SharedFrame* f) {
    SharedFrame*& slot = _ring[(_head + _count - 1) & (_cap - 1)];
    _bytes = _bytes - slot->size() + f->size();
    slot->unref();
    slot = f;
  }
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

}  // namespace flowrelay::stream
