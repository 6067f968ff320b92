// A connection as its event loop sees it: the protocol Session plus the socket and the loop's
// bookkeeping (flush list, timer list, channel membership, connection caps). Kept small: an idle
// open connection is this struct and nothing else.
#pragma once

#include <array>
#include <cstdint>

#include "session.h"

namespace flowrelay::ws {

struct LoopChannel;
struct PublishLink;

struct Connection : Session {
  using Session::Session;

  int fd = -1;
  bool dead = false;          // fd closed; freed at the end of the loop pass
  bool dirty = false;         // on the loop's flush list
  bool read_pending = false;  // read budget exhausted; on the loop's read list
  bool write_shut = false;    // shutdown(SHUT_WR) done
  bool want_write = false;    // EPOLLOUT registered: the socket buffer was full
  bool capped = false;        // counted in ConnectionCaps: release() owed
  bool counted = false;       // subscribe() succeeded or is pending: unsubscribe() owed
  bool recovering = false;    // in the loop's map of sessions waiting for a history answer
  bool authorizing = false;   // in the loop's map of sessions waiting for the connect proxy
  bool joined_event = false;  // the backend was told it joined: a leave event is owed
  SessionTimer timer = SessionTimer::None;  // the timer list it is on
  uint32_t member_index = 0;                // position in channel->members or channel->waiting
  LoopChannel* channel = nullptr;
  int64_t deadline_ms = 0;
  uint16_t port = 0;             // peer port (remote_addr for the backend)
  std::array<uint8_t, 16> ip{};  // peer address (IPv4-mapped), for the per-IP cap
  PublishLink* link = nullptr;   // made on the first publish (publish_link.h)
  Connection* prev = nullptr;    // timer list links
  Connection* next = nullptr;
};

}  // namespace flowrelay::ws
