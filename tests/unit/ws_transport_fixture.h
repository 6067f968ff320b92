// transport-ws as the daemon loads it (dlopen, flowrelay_plugin_entry_v2, its C table) with a
// fake host in this process and blocking WebSocket clients on loopback. The host stands in for
// the daemon with broker-local: each publish is delivered back to the transport at once, with
// an offset. Its ABI 2.1 slots (publish_client, authorize, client_event) can answer at once,
// or hold the completion for the test to fire later, from its own thread.
#pragma once

#include <arpa/inet.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <flowrelay/plugin.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "session_test_host.h"

// What a client_info or connect request said, copied.
struct ClientSeen {
  uint64_t session = 0;
  std::string conversation, user, remote_addr, transport, cookie, authorization;
  int joined = -1;  // client_event only
};

struct flowrelay_host {
  enum class Reply { Publish, Hold, Private, Refuse };
  uint64_t node = 42;
  std::atomic<uint64_t> sessions{0};
  const flowrelay_transport_vtable* vt = nullptr;
  flowrelay_transport* self = nullptr;
  std::mutex mutex;
  std::map<std::string, int> members;  // subscribe - unsubscribe, per channel
  std::vector<flowrelay_origin> origins;
  uint64_t offset = 0;  // the channel's last offset (all channels share it)
  // publish_client: what it does with the next messages, and what it saw.
  Reply reply = Reply::Publish;
  uint32_t refuse_code = 403;
  std::string refuse_reason = "refused by the backend";
  std::vector<ClientSeen> publishers;
  std::vector<std::function<void()>> held;  // completions waiting for fire()
  // authorize: EUNSUPPORTED (no connect proxy) or hold the request.
  bool connect_proxy = false;
  std::vector<ClientSeen> connects;
  std::vector<std::pair<flowrelay_connect_fn, void*>> held_connects;
  std::vector<ClientSeen> events;
  struct ReplyState {
    uint64_t last = 0;
    std::string ended;
  };
  std::map<std::string, ReplyState> replies;  // publish_reply's, per reply id
};

namespace ws_transport_test {

using namespace flowrelay::ws::testing;
using flowrelay::sdk::view;
using flowrelay::ws::Opcode;

inline void host_log(flowrelay_host*, flowrelay_log_level, flowrelay_str) {}
inline uint64_t host_session_id(flowrelay_host* h) { return ++h->sessions; }
inline flowrelay_status host_subscribe(flowrelay_host* h, flowrelay_str channel) {
  std::lock_guard lock(h->mutex);
  ++h->members[std::string(view(channel))];
  return FLOWRELAY_OK;
}
inline void host_unsubscribe(flowrelay_host* h, flowrelay_str channel) {
  std::lock_guard lock(h->mutex);
  --h->members[std::string(view(channel))];
}
// Stores (an offset) and delivers, as the daemon with broker-local; returns the offset.
inline uint64_t store_and_deliver(flowrelay_host* h, flowrelay_str channel,
                                  const flowrelay_message* m) {
  flowrelay_message delivered = *m;
  delivered.origin.node = h->node;  // what the daemon adds
  {
    std::lock_guard lock(h->mutex);
    h->origins.push_back(delivered.origin);
    delivered.offset = ++h->offset;
  }
  delivered.epoch = {"E", 1};
  h->vt->deliver(h->self, channel, &delivered);
  return delivered.offset;
}
inline flowrelay_status host_publish(flowrelay_host* h, flowrelay_str channel,
                                     const flowrelay_message* m, flowrelay_published_fn done,
                                     void* ctx) {
  const uint64_t offset = store_and_deliver(h, channel, m);
  if (done) done(ctx, FLOWRELAY_OK, offset, {"E", 1});
  return FLOWRELAY_OK;
}
inline flowrelay_status host_history(flowrelay_host*, flowrelay_str, uint64_t, flowrelay_history_fn,
                                     void*) {
  return FLOWRELAY_EUNSUPPORTED;
}
inline ClientSeen seen(const flowrelay_client_info& c) {
  return {c.session,
          std::string(view(c.conversation)),
          std::string(view(c.user)),
          std::string(view(c.remote_addr)),
          std::string(view(c.transport)),
          {},
          {}};
}
inline flowrelay_status host_publish_client(flowrelay_host* h, flowrelay_str channel,
                                            const flowrelay_message* m,
                                            const flowrelay_client_info* client,
                                            flowrelay_client_published_fn done, void* ctx) {
  flowrelay_host::Reply reply;
  {
    std::lock_guard lock(h->mutex);
    h->publishers.push_back(seen(*client));
    reply = h->reply;
  }
  auto answer = [h, done, ctx, reply, channel = std::string(view(channel)),
                 data = std::string(view(m->data)), message = *m] {
    flowrelay_client_published r{sizeof r, FLOWRELAY_OK, 1, 0, 0, {}, {}};
    if (reply == flowrelay_host::Reply::Publish || reply == flowrelay_host::Reply::Hold) {
      flowrelay_message copy = message;
      copy.data = {data.data(), data.size()};
      r.offset = store_and_deliver(h, {channel.data(), channel.size()}, &copy);
      r.epoch = {"E", 1};
    } else if (reply == flowrelay_host::Reply::Private) {
      r.relayed = 0;
    } else {
      r.status = FLOWRELAY_EINVAL;
      r.relayed = 0;
      r.code = h->refuse_code;
      r.reason = {h->refuse_reason.data(), h->refuse_reason.size()};
    }
    done(ctx, &r);
  };
  if (reply == flowrelay_host::Reply::Hold) {
    std::lock_guard lock(h->mutex);
    h->held.push_back(std::move(answer));
  } else {
    answer();  // from inside the call, as the daemon may
  }
  return FLOWRELAY_OK;
}
inline flowrelay_status host_authorize(flowrelay_host* h, const flowrelay_connect_request* r,
                                       flowrelay_connect_fn done, void* ctx) {
  if (!h->connect_proxy) return FLOWRELAY_EUNSUPPORTED;
  std::lock_guard lock(h->mutex);
  h->connects.push_back({0,
                         std::string(view(r->conversation)),
                         {},
                         std::string(view(r->remote_addr)),
                         std::string(view(r->transport)),
                         std::string(view(r->cookie)),
                         std::string(view(r->authorization))});
  h->held_connects.emplace_back(done, ctx);
  return FLOWRELAY_OK;
}
// A broker-local stand-in for reply steps: seq rules per reply id (plugin.h publish_reply),
// each accepted step stored (an offset) and delivered with its reply info.
inline flowrelay_status host_publish_reply(flowrelay_host* h, flowrelay_str channel,
                                           const flowrelay_message* m,
                                           const flowrelay_client_info* client,
                                           flowrelay_reply_published_fn done, void* ctx) {
  const flowrelay_reply* r = flowrelay_reply_of(m);
  if (!r) return FLOWRELAY_EINVAL;
  flowrelay_reply_published out{sizeof out, FLOWRELAY_OK, 0, 0, {"E", 1}, 0, {}};
  {  // the broker's rules, in short (an ended state never changes: `out` may view it)
    std::lock_guard lock(h->mutex);
    if (client) h->publishers.push_back(seen(*client));
    auto& state = h->replies[std::string(view(r->id))];
    const bool end = r->kind == FLOWRELAY_KIND_END, delta = r->kind == FLOWRELAY_KIND_DELTA;
    if (!state.ended.empty()) {
      out.duplicate = end && view(r->reason) == state.ended;
      if (!out.duplicate)
        out.status = FLOWRELAY_ECONFLICT, out.ended = {state.ended.data(), state.ended.size()};
    } else if (delta && r->seq <= state.last) {
      out.duplicate = 1;
    } else if (delta && r->seq > state.last + 1) {
      out.status = FLOWRELAY_ECONFLICT;
      out.expected_seq = state.last + 1;
    } else {
      if (delta) state.last = r->seq;
      if (end) state.ended = std::string(view(r->reason));
    }
  }
  if (out.status == FLOWRELAY_OK && !out.duplicate) out.offset = store_and_deliver(h, channel, m);
  done(ctx, &out);
  return FLOWRELAY_OK;
}
inline void host_client_event(flowrelay_host* h, int32_t joined,
                              const flowrelay_client_info* client) {
  std::lock_guard lock(h->mutex);
  h->events.push_back(seen(*client));
  h->events.back().joined = joined;
}

inline uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// A blocking WebSocket client that reads one server frame at a time.
class Client {
 public:
  // `wait`: read the answer to the upgrade now (else call read_head()).
  Client(uint16_t port, const std::string& path, const std::string& headers = {}, bool wait = true)
      : _fd(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    _sent = connect(_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            send(upgrade_request(path, headers));
    if (wait) read_head();
  }
  ~Client() { close(_fd); }
  bool upgraded() const { return _status == 101; }
  int status() const { return _status; }
  const std::string& head() const { return _head; }
  // The HTTP answer: its status, 0 if none came within `ms`.
  int read_head(int ms = 3000) {
    while (_sent && _buf.find("\r\n\r\n") == std::string::npos)
      if (!fill(ms)) return _status;
    if (!_sent) return _status;
    const size_t end = _buf.find("\r\n\r\n") + 4;
    _head = _buf.substr(0, end);
    _status = _head.rfind("HTTP/1.1 ", 0) == 0 ? std::atoi(_head.c_str() + 9) : -1;
    _buf.erase(0, end);
    if (_status != 101) _head += _buf;  // an error's body
    return _status;
  }
  bool send(const std::string& bytes) {
    return ::send(_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == ssize_t(bytes.size());
  }
  bool send_text(const std::string& text) { return send(client_frame(Opcode::Text, text)); }
  // The next frame within `ms`, or nothing (timeout or EOF).
  std::optional<ServerFrame> next(int ms = 3000) {
    for (;;) {
      Output o = parse_output(_buf, false);
      if (!o.frames.empty()) {
        _buf.erase(0, frame_size(o.frames[0]));
        return o.frames[0];
      }
      if (!fill(ms)) return std::nullopt;
    }
  }

 private:
  static size_t frame_size(const ServerFrame& f) {
    const size_t n = f.payload.size();
    return n + (n < 126 ? 2 : n <= 0xFFFF ? 4 : 10);
  }
  bool fill(int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    setsockopt(_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char chunk[4096];
    const ssize_t n = recv(_fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    _buf.append(chunk, size_t(n));
    return true;
  }
  int _fd;
  bool _sent = false;
  int _status = 0;
  std::string _head;
  std::string _buf;
};

class WsTransport : public ::testing::Test {
 protected:
  flowrelay_host host;
  flowrelay_transport_host_api api{};
  void* dl = nullptr;
  uint16_t port = free_port();

  void SetUp() override {
    const std::string path = std::string(FLOWRELAY_PLUGIN_DIR) + "/flowrelay-transport-ws.so";
    dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(dl, nullptr) << dlerror();
    auto entry = reinterpret_cast<flowrelay_plugin_entry_fn>(dlsym(dl, FLOWRELAY_ENTRY_SYMBOL));
    ASSERT_NE(entry, nullptr);
    host.vt = entry(FLOWRELAY_ABI_MINOR)->transport;
    ASSERT_NE(host.vt, nullptr);
    api = {sizeof api,
           FLOWRELAY_ABI_MINOR,
           host.node,
           {"", 0},
           {"chat:", 5},
           1,
           host_log,
           host_session_id,
           host_subscribe,
           host_unsubscribe,
           host_publish,
           host_history,
           host_publish_client,
           host_authorize,
           host_client_event,
           host_publish_reply};
  }
  void TearDown() override {
    fire_held();  // every completion is owed exactly once, even at the end of a test
    fire_connects(503, 0, "", "");
    if (host.self) {
      host.vt->stop(host.self, 1000);
      host.vt->destroy(host.self);
    }
    if (dl) dlclose(dl);
  }
  flowrelay_status create(std::vector<std::pair<std::string, std::string>> options,
                          std::string* error = nullptr) {
    options.emplace_back("listen", "127.0.0.1:" + std::to_string(port));
    std::vector<flowrelay_option> opts;
    for (const auto& [k, v] : options) opts.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
    char err[512] = "";
    const flowrelay_status s =
        host.vt->create(&api, &host, opts.data(), opts.size(), &host.self, err, sizeof err);
    if (error) *error = err;
    return s;
  }
  void start(bool echo) {
    api.echo = echo ? 1 : 0;
    ASSERT_EQ(create({{"io_threads", "2"}}), FLOWRELAY_OK);
    char err[256] = "";
    ASSERT_EQ(host.vt->start(host.self, err, sizeof err), FLOWRELAY_OK) << err;
  }
  void deliver(const std::string& text, flowrelay_origin origin) {
    flowrelay_message m = flowrelay::sdk::make_message(FLOWRELAY_LANE_MESSAGE, text);
    m.origin = origin;
    host.vt->deliver(host.self, {"chat:1", 6}, &m);
  }
  int members(const std::string& channel) {
    std::lock_guard lock(host.mutex);
    return host.members[channel];
  }
  // Runs the publish completions held so far (Reply::Hold), from this thread.
  void fire_held() {
    std::vector<std::function<void()>> held;
    {
      std::lock_guard lock(host.mutex);
      held.swap(host.held);
    }
    for (auto& f : held) f();
  }
  // Answers the held connect requests.
  void fire_connects(uint32_t code, int32_t can_publish, const std::string& user,
                     const std::string& reason) {
    std::vector<std::pair<flowrelay_connect_fn, void*>> held;
    {
      std::lock_guard lock(host.mutex);
      held.swap(host.held_connects);
    }
    const flowrelay_connect_result r{
        sizeof r, code, can_publish, {user.data(), user.size()}, {reason.data(), reason.size()}};
    for (auto& [done, ctx] : held) done(ctx, &r);
  }
  // Waits until `ready` holds (under the host's lock), at most 2 s.
  bool wait_for(const std::function<bool()>& ready) {
    for (int i = 0; i < 200; ++i) {
      {
        std::lock_guard lock(host.mutex);
        if (ready()) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  std::string metrics() {
    std::string text;
    host.vt->metrics(
        host.self,
        [](void* ctx, flowrelay_str piece) {
          static_cast<std::string*>(ctx)->append(piece.ptr, piece.len);
        },
        &text);
    return text;
  }
};

inline std::string text_of(const std::optional<ServerFrame>& f) {
  return f ? (f->opcode == uint8_t(Opcode::Text) ? f->payload
                                                 : "<opcode " + std::to_string(f->opcode) + ">")
           : "<nothing>";
}

}  // namespace ws_transport_test
