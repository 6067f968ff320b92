// One I/O thread: an epoll loop that owns a share of the connections, its own view of which of
// them sit in which channel, and an inbox through which other threads hand it deliveries. It
// does the I/O and the bookkeeping; what the bytes mean is each connection's session (a
// transport's Connection: transport-ws' WebSocket Session, transport-sse's).
// Hand-written rather than Poco::Net::SocketReactor: the reactor allocates a notification per
// event and cannot batch a fan-out into one writev per connection, which is the hot path here.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "connection.h"
#include "net/acceptor.h"
#include "net/deadline_list.h"
#include "net/wake_inbox.h"
#include "publish_link.h"
#include "transport_context.h"

namespace flowrelay::stream {

struct LoopChannel {
  std::string name;
  std::vector<Connection*> members;  // Open sessions: receive deliveries
  std::vector<Connection*> waiting;  // Joining sessions: wait for the broker's confirmation
};

class EventLoop final : private SessionHost {
 public:
  // `index`: the loop's number in its transport (its bit in SharedFrame's relay samples).
  EventLoop(const TransportContext& ctx, int listen_fd, unsigned index = 0);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void start();
  // [any thread] Queue a delivery: the frame for raw and the one for envelope sessions (either
  // may be null); takes over one reference of each. `skip`: the session that published it, when
  // it must not get it back (echo off), else 0.
  void post_deliver(SharedFrame* raw, SharedFrame* envelope, uint64_t skip);
  // [any thread] A history read for a resuming session of this loop completed.
  void post_history(std::unique_ptr<HistoryResult> result);
  // [any thread] A client publish or a connect proxy's verdict for a session of this loop
  // (loop_proxy.cpp).
  void post_published(std::unique_ptr<PublishAnswer> answer);
  void post_authorized(std::unique_ptr<ConnectAnswer> answer);
  // [any thread] The broker confirmed, refused or lost `channel`.
  void post_subscribed(std::string_view channel, flowrelay_status status);
  // [any thread] Say goodbye (1001) to everyone, wait at most timeout_ms, then exit the thread.
  void post_stop(uint32_t timeout_ms);
  void join_thread();
  const LoopStats& stats() const { return _stats; }

 private:
  struct Item {
    enum Kind : uint8_t { Deliver, Subscribed, Stop, History, Published, Authorized };
    explicit Item(Kind k) : kind(k) {}
    Kind kind;
    SharedFrame* frame = nullptr;     // raw
    SharedFrame* envelope = nullptr;  // JSON
    uint64_t skip = 0;
    std::string channel;
    int32_t value = 0;  // status or timeout
    std::unique_ptr<HistoryResult> history;
    std::unique_ptr<PublishAnswer> published;
    std::unique_ptr<ConnectAnswer> connect;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using TimerQueue = net::DeadlineList<Connection>;

  // SessionHost (loop_session.cpp, resume.cpp, loop_proxy.cpp): what the sessions ask for.
  flowrelay_status join(Connection& s, std::string_view conversation) override;
  void leave(Connection& s) override;
  flowrelay_status publish(Connection& s, flowrelay_lane lane, std::string_view data,
                           std::string_view id) override;
  flowrelay_status publish_reply(Connection& s, const ClientReplyStep& step, std::string_view data,
                                 std::string_view id) override;
  flowrelay_status publish_to(Connection& s, std::string_view conversation, flowrelay_lane lane,
                              std::string_view data, std::string_view id) override;
  // publish() and publish_to(): `channel` is the session's, or the conversation's;
  // `answer_success`: published() follows a success without an id too.
  flowrelay_status publish_on(Connection& c, std::string_view channel, flowrelay_lane lane,
                              std::string_view data, std::string_view id, bool answer_success);
  flowrelay_status authorize(Connection& s, std::string_view conversation, std::string_view cookie,
                             std::string_view authorization) override;
  void opened(Connection& s) override;
  void read_history(Connection& s, uint64_t since) override;
  void wants_write(Connection& s) override;
  void set_timer(Connection& s, SessionTimer timer) override;
  void slow_consumer(Connection& s, uint64_t queued) override;
  std::shared_ptr<const AccessPolicy> access_policy() override { return _ctx.policy(); }
  bool take_address_token(Connection& s) override {
    return _ctx.publish_buckets.take(s.ip, _ctx.limits, now_ms());
  }
  int64_t now_ms() override;

  void run();
  void post(Item&& item);
  void drain_inbox();
  void fan_out(LoopChannel& ch, SharedFrame* raw, SharedFrame* envelope, uint64_t skip);
  void on_subscribed(std::string_view channel, flowrelay_status status);
  void on_history(std::unique_ptr<HistoryResult> result);
  void on_published(std::unique_ptr<PublishAnswer> answer);
  void on_authorized(std::unique_ptr<ConnectAnswer> answer);
  void client_event(Connection* c, bool joined);  // join/leave for the backend's events
  void on_accept();
  void on_readable(Connection* c);
  void settle(Connection* c);  // a session that asked to be closed now is closed
  void begin_stop(uint32_t timeout_ms);

  void flush(Connection* c);
  void watch_writable(Connection* c, bool on);  // EPOLLOUT interest while a write is blocked
  void flush_dirty();
  void close_now(Connection* c);  // drop the connection, no goodbye
  void reap();

  LoopChannel* channel_for(std::string_view name);  // created on demand
  void channel_remove(Connection* c);

  void timer_add(Connection* c, SessionTimer timer);
  void timer_remove(Connection* c);
  void expire_timers();
  int next_timeout_ms();
  TimerQueue& queue(SessionTimer t) {
    return t == SessionTimer::Handshake ? _handshakes
           : t == SessionTimer::Closing ? _closings
                                        : _idle;
  }

  const TransportContext& _ctx;
  // This loop's bit in SharedFrame::arm_sample (loops past 64 share bits: fewer samples).
  const uint64_t _sample_bit;
  LoopStats _stats;
  const SessionConfig _session_config;
  int _listen_fd;
  int _epoll_fd = -1;
  net::Acceptor _acceptor;  // accept-and-close when out of file descriptors
  std::thread _thread;

  net::WakeInbox<Item> _inbox;
  std::vector<Item> _work;  // loop-private swap partner of _inbox

  std::unordered_map<std::string, LoopChannel, Hash, std::equal_to<>> _channels;
  std::vector<Connection*> _dirty;
  std::vector<Connection*> _read_again;
  std::vector<Connection*> _dead;
  bool _fanning_out = false;                              // leave() waits until the fan-out is over
  std::vector<Connection*> _leaving;                      // sessions that left during a fan-out
  std::unordered_map<uint64_t, Connection*> _recovering;  // waiting for history, by session id
  std::unordered_map<uint64_t, Connection*> _authorizing;  // waiting for the connect proxy
  TimerQueue _handshakes, _closings, _idle;
  char* _scratch;  // read buffer shared by all connections of this loop

  size_t _connections = 0;
  bool _stopping = false;
  int64_t _stop_deadline_ms = 0;
  int64_t _last_emfile_log_ms = 0;
};

}  // namespace flowrelay::stream
