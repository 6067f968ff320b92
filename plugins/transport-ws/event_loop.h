// One I/O thread: an epoll loop that owns a share of the connections, its own view of which of
// them sit in which channel, and an inbox through which other threads hand it deliveries.
// Hand-written rather than Poco::Net::SocketReactor: the reactor allocates a notification per
// event and cannot batch a fan-out into one writev per connection, which is the hot path here.
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connection.h"
#include "transport_context.h"

namespace flowrelay::ws {

// channels.echo = false: a session must not receive its own messages back. The broker does
// not say who sent a message, so each loop remembers what its sessions published, in order
// (brokers deliver one publisher's messages in order), and skips the sender when the next
// delivery of the channel carries the same bytes. Entries not matched within kOwnTtlMs (the
// message was lost or reordered) expire, so a mismatch degrades to an echo, never to a loss.
struct OwnPublish {
  uint64_t session;  // Connection::id
  std::size_t hash;  // of the payload
  int64_t at_ms;
};

struct LoopChannel {
  std::string name;
  std::vector<Connection*> members;  // Open sessions: receive deliveries
  std::vector<Connection*> waiting;  // Joining sessions: wait for the broker's confirmation
  std::deque<OwnPublish> own;        // only used when channels.echo is false
};

// What a history read returned, copied for the loop (the broker's views die with its call).
struct HistoryResult {
  struct Entry {
    uint64_t offset;
    flowrelay_lane lane;
    std::string data;
  };
  uint64_t session = 0;  // Connection::id
  flowrelay_status status = FLOWRELAY_OK;
  std::string epoch;
  uint64_t top = 0;
  std::vector<Entry> entries;
};

class EventLoop {
 public:
  EventLoop(const TransportContext& ctx, int listen_fd);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void start();
  // [any thread] Queue a delivery: the frame for raw and the one for envelope sessions (either
  // may be null); takes over one reference of each. `hash` of the data when echo is off.
  void post_deliver(SharedFrame* raw, SharedFrame* envelope, std::size_t hash);
  // [any thread] A history read for a resuming session of this loop completed.
  void post_history(std::unique_ptr<HistoryResult> result);
  // [any thread] The broker confirmed or refused `channel`.
  void post_subscribed(std::string_view channel, flowrelay_status status);
  // [any thread] Say goodbye (1001) to everyone, wait at most timeout_ms, then exit the thread.
  void post_stop(uint32_t timeout_ms);
  void join();
  const LoopStats& stats() const { return _stats; }

 private:
  struct Item {
    enum Kind : uint8_t { Deliver, Subscribed, Stop, History };
    explicit Item(Kind k) : kind(k) {}
    Kind kind;
    SharedFrame* frame = nullptr;     // raw
    SharedFrame* envelope = nullptr;  // JSON
    std::size_t hash = 0;
    std::string channel;
    int32_t value = 0;  // status or timeout
    std::unique_ptr<HistoryResult> history;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  void run();
  void post(Item&& item);
  void drain_inbox();
  void fan_out(LoopChannel& ch, SharedFrame* raw, SharedFrame* envelope, std::size_t hash);
  void on_accept();
  void on_readable(Connection* c);
  void on_input(Connection* c, char* data, size_t len);
  size_t on_handshake(Connection* c, char* data, size_t len);
  size_t on_frames(Connection* c, char* data, size_t len);
  void on_frame(Connection* c, const FrameHeader& h, char* payload);
  void on_close_frame(Connection* c, const char* payload, size_t len);
  void on_message(Connection* c, std::string_view text);  // a complete text message
  void publish(Connection* c, std::string_view payload, flowrelay_lane lane);
  void send_error(Connection* c, int code, std::string_view reason);  // envelope error frame
  // Resume (resume.cpp): read history after `since`, hold live frames meanwhile, then replay.
  void start_resume(Connection* c);
  void finish_resume(Connection* c, const HistoryResult& result);
  void hold(Connection* c, SharedFrame* f);  // takes the reference
  // True if `f` repeats what the resume replay sent (drop it); passing the seam closes it.
  bool replayed_already(Connection* c, const SharedFrame* f);
  void open(Connection* c);                                 // send 101, join the channel's members
  void process_held_input(Connection* c);                   // frames received while Joining
  void begin_closing(Connection* c, SharedFrame* goodbye);  // leave channel, send, linger

  void send(Connection* c, SharedFrame* f);  // queue (takes the reference) and mark dirty
  void send_close(Connection* c, uint16_t code, std::string_view reason);
  void send_http_and_close(Connection* c, const std::string& response);
  void flush(Connection* c);
  void watch_writable(Connection* c, bool on);  // EPOLLOUT interest while a write is blocked
  void flush_dirty();
  void close_now(Connection* c);  // drop the connection, no goodbye
  void reap();

  void timer_add(Connection* c, TimerList list, uint32_t timeout_ms);
  void timer_remove(Connection* c);
  void expire_timers();
  int next_timeout_ms() const;

  LoopChannel* channel_for(std::string_view name);  // created on demand
  void channel_remove(Connection* c);
  void begin_stop(uint32_t timeout_ms);

  const TransportContext& _ctx;
  int _listen_fd;
  int _epoll_fd = -1;
  int _wake_fd = -1;
  int _spare_fd = -1;  // released to accept-and-close when out of file descriptors
  std::thread _thread;

  std::mutex _inbox_mutex;
  std::vector<Item> _inbox;
  bool _wake_pending = false;  // guarded by _inbox_mutex
  std::vector<Item> _work;     // loop-private swap partner of _inbox

  std::unordered_map<std::string, LoopChannel, Hash, std::equal_to<>> _channels;
  std::vector<Connection*> _dirty;
  std::vector<Connection*> _read_again;
  std::vector<Connection*> _dead;
  std::vector<Connection*> _slow;  // slow consumers to take off their channel after fan-out
  std::unordered_map<uint64_t, Connection*> _recovering;  // resuming sessions by id
  bool _self_posted = false;  // this thread posted to its own inbox: do not sleep
  void leave_slow_consumers();
  struct TimerQueue {
    Connection* head = nullptr;
    Connection* tail = nullptr;
  } _handshakes, _closings, _idle;
  TimerQueue& queue(TimerList list) {
    return list == TimerList::Handshake ? _handshakes
           : list == TimerList::Closing ? _closings
                                        : _idle;
  }
  void touch(Connection* c);       // a frame arrived: restart the idle timer
  bool take_token(Connection* c);  // publish rate limit
  char* _scratch;                  // read buffer shared by all connections of this loop

  LoopStats _stats;
  size_t _connections = 0;
  uint64_t _next_session_id = 1;
  bool _stopping = false;
  int64_t _stop_deadline_ms = 0;
  int64_t _last_emfile_log_ms = 0;
};

}  // namespace flowrelay::ws
