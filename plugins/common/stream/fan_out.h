// The per-delivery loop of a fan-out, written once and compiled per session type: a transport
// instantiates fan_out_to<ItsSession> (a final class), so each member's deliver() is a direct,
// inlinable call instead of a virtual one. The loop makes one indirect call per message per
// loop (TransportIdentity::fan_out), not one per recipient: the fan-out is the hot path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "connection.h"

namespace flowrelay::stream {

struct FanOutCounts {
  uint32_t used_plain = 0;     // members that took the plain frame (a reference each)
  uint32_t used_envelope = 0;  // ... the envelope frame
  uint32_t sent = 0;           // offered to their queues
  uint64_t bytes = 0;
};

using FanOutFn = void (*)(Connection* const* members, size_t n, SharedFrame* plain,
                          SharedFrame* envelope, uint64_t skip, FanOutCounts& out);

template <class Session>
void fan_out_to(Connection* const* members, size_t n, SharedFrame* plain, SharedFrame* envelope,
                uint64_t skip, FanOutCounts& out) {
  for (size_t i = 0; i < n; ++i) {
    auto* c = static_cast<Session*>(members[i]);
    if (c->id() == skip) continue;  // its own message, echo off (ids are never 0)
    const bool envelope_mode = c->envelope();
    SharedFrame* f = envelope_mode ? envelope : plain;
    if (!f) continue;  // e.g. raw WebSocket sessions do not get the log lane
    ++(envelope_mode ? out.used_envelope : out.used_plain);
    const uint32_t size = f->size();
    if (c->Session::deliver(f)) {
      ++out.sent;
      out.bytes += size;
    }
  }
}

}  // namespace flowrelay::stream
