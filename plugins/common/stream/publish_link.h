// How the completion of a client publish, which may run on any thread and after its
// connection closed, finds its way back: to the connection's loop, and to the connection only
// if it is still open. One link per connection that ever published, shared (reference-counted)
// by the connection and its publishes in flight; the loop clears `conn` when it closes the
// connection, and the last reference frees the link.
#pragma once

#include <atomic>
#include <cstdint>

#include "connection.h"

namespace flowrelay::stream {

class EventLoop;

struct PublishLink {
  PublishLink(EventLoop* l, Connection* c) : loop(l), conn(c) {}
  EventLoop* const loop;
  Connection* conn;               // [loop thread] null once the connection closed
  std::atomic<uint32_t> refs{1};  // the connection's own, plus one per publish in flight
  void ref() { refs.fetch_add(1, std::memory_order_relaxed); }
  void unref() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

// A completed publish on its way to the loop; holds one reference of the link.
struct PublishAnswer {
  explicit PublishAnswer(PublishLink* l) : link(l) {}
  ~PublishAnswer() { link->unref(); }
  PublishAnswer(const PublishAnswer&) = delete;
  PublishAnswer& operator=(const PublishAnswer&) = delete;
  PublishLink* link;
  PublishOutcome outcome;
};

}  // namespace flowrelay::stream
