// One thread of the HTTP listener: an epoll loop that owns a share of the connections and runs
// each through read head -> read body -> dispatch -> write answer -> next request or close.
// One request at a time per connection: pipelined requests wait in the buffer until the
// answer before them is written. Answers come back through the inbox from any thread.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http_route.h"
#include "net/acceptor.h"
#include "net/deadline_list.h"
#include "net/http_head.h"
#include "net/wake_inbox.h"

namespace flowrelay {

struct HttpListenerStats {
  std::atomic<uint64_t> accepted{0}, requests{0}, refused_at_cap{0}, header_timeouts{0},
      idle_closed{0}, bad_requests{0};  // 400 411 413 431 505 answered by the listener
  std::atomic<uint32_t> open{0};
};

struct HttpLoopConfig {
  uint32_t header_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 60000;
  uint32_t max_connections = 16384;  // over all loops (HttpListenerStats::open)
  size_t max_head_bytes = 16384;
  std::atomic<uint64_t>* max_body_bytes = nullptr;  // live (SIGHUP)
};

// Finds the handler for a request; answers 404 itself when there is none.
using HttpDispatch = std::function<void(const HttpRequest&, HttpReply)>;

class HttpLoop {
 public:
  HttpLoop(int listen_fd, const HttpLoopConfig& config, HttpListenerStats& stats,
           HttpDispatch dispatch);
  ~HttpLoop();
  HttpLoop(const HttpLoop&) = delete;
  HttpLoop& operator=(const HttpLoop&) = delete;

  void start();
  // [any thread] Close every connection and end the thread; later answers are dropped.
  void stop();
  void join();
  // [any thread] Run `fn` on this loop's thread after `ms` (dropped if the loop stops first).
  void after(uint32_t ms, std::function<void()> fn);

 private:
  struct Posted {
    uint64_t conn = 0;  // 0: a timer (after())
    uint64_t request = 0;
    HttpAnswer answer;
    std::function<void()> fn;
    uint32_t ms = 0;
  };
  using Inbox = net::WakeInbox<Posted>;

  enum class State : uint8_t { Head, Body, Dispatched, Writing, Lingering };
  enum class Timer : uint8_t { None, Header, Idle, Linger };
  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    State state = State::Head;
    Timer timer = Timer::None;
    bool dead = false;
    bool peer_closed = false;  // read() gave 0: answer what was asked, then close
    uint32_t events = 0;       // the epoll interest now registered
    uint64_t requests = 0;     // requests dispatched: names the one an answer is for
    std::string in;            // received, not yet consumed
    size_t scanned = 0;        // bytes of `in` already searched for the end of the head
    size_t head_len = 0;
    net::RequestHead head;
    std::string out;
    size_t out_done = 0;
    std::string remote;
    int64_t deadline_ms = 0;
    Conn* prev = nullptr;  // timer list links
    Conn* next = nullptr;
  };

  void run();
  void drain_inbox();
  void on_accept();
  void on_readable(Conn* c);
  void on_writable(Conn* c);
  void advance(Conn* c);  // parse and dispatch what the buffer holds
  void dispatch(Conn* c);
  HttpReply reply_for(Conn* c);
  void answer(Conn* c, HttpAnswer&& a);
  void refuse(Conn* c, int status, const std::string& reason);  // answer, then close
  void after_written(Conn* c);
  void flush(Conn* c);
  void linger(Conn* c);
  void set_events(Conn* c);
  void close_now(Conn* c);
  void set_timer(Conn* c, Timer t);
  void expire_timers();
  int next_timeout_ms();
  net::DeadlineList<Conn>& list(Timer t) {
    return t == Timer::Header ? _header : t == Timer::Idle ? _idle : _linger;
  }

  const HttpLoopConfig& _config;
  HttpListenerStats& _stats;
  HttpDispatch _dispatch;
  net::Acceptor _acceptor;
  int _epoll_fd = -1;
  std::shared_ptr<Inbox> _inbox;  // shared with every HttpReply handed out
  std::vector<Posted> _work;
  std::thread _thread;
  bool _stopping = false;
  std::atomic<bool> _stop_requested{false};
  uint64_t _next_id = 1;
  std::unordered_map<uint64_t, Conn*> _conns;
  std::vector<Conn*> _dead;
  net::DeadlineList<Conn> _header, _idle, _linger;
  std::multimap<int64_t, std::function<void()>> _timers;  // after()
  int64_t _last_emfile_log_ms = 0;
};

}  // namespace flowrelay
