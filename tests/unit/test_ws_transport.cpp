// transport-ws as the daemon loads it (dlopen, flowrelay_plugin_entry_v2, its C table) with a
// fake host in this process and WebSocket clients on loopback: echo suppression by origin,
// a subscription lost for good, the host-decided fields, reloads, metrics. No daemon process.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <flowrelay/plugin.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "session_test_host.h"

using namespace flowrelay::ws::testing;
using flowrelay::ws::Opcode;

// The host handle the plugin gets: a broker-local stand-in that delivers each publish back to
// the transport at once, as the daemon does with broker-local.
struct flowrelay_host {
  uint64_t node = 42;
  std::atomic<uint64_t> sessions{0};
  const flowrelay_transport_vtable* vt = nullptr;
  flowrelay_transport* self = nullptr;
  std::mutex mutex;
  std::map<std::string, int> members;  // subscribe - unsubscribe, per channel
  std::vector<flowrelay_origin> origins;
};

namespace {

void host_log(flowrelay_host*, flowrelay_log_level, flowrelay_str) {}
uint64_t host_session_id(flowrelay_host* h) { return ++h->sessions; }
flowrelay_status host_subscribe(flowrelay_host* h, flowrelay_str channel) {
  std::lock_guard lock(h->mutex);
  ++h->members[std::string(flowrelay::sdk::view(channel))];
  return FLOWRELAY_OK;
}
void host_unsubscribe(flowrelay_host* h, flowrelay_str channel) {
  std::lock_guard lock(h->mutex);
  --h->members[std::string(flowrelay::sdk::view(channel))];
}
flowrelay_status host_publish(flowrelay_host* h, flowrelay_str channel, const flowrelay_message* m,
                              flowrelay_published_fn, void*) {
  flowrelay_message delivered = *m;
  delivered.origin.node = h->node;  // what the daemon adds
  {
    std::lock_guard lock(h->mutex);
    h->origins.push_back(delivered.origin);
  }
  h->vt->deliver(h->self, channel, &delivered);
  return FLOWRELAY_OK;
}
flowrelay_status host_history(flowrelay_host*, flowrelay_str, uint64_t, flowrelay_history_fn,
                              void*) {
  return FLOWRELAY_EUNSUPPORTED;
}

uint16_t free_port() {
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
  Client(uint16_t port, const std::string& path) : _fd(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    _ok = connect(_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          send(upgrade_request(path)) && read_until_head();
  }
  ~Client() { close(_fd); }
  bool upgraded() const { return _ok; }
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
  bool read_until_head() {
    while (_buf.find("\r\n\r\n") == std::string::npos)
      if (!fill(3000)) return false;
    const size_t end = _buf.find("\r\n\r\n") + 4;
    const bool ok = _buf.rfind("HTTP/1.1 101 ", 0) == 0;
    _buf.erase(0, end);
    return ok;
  }
  int _fd;
  bool _ok = false;
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
    api = {sizeof api,       FLOWRELAY_ABI_MINOR, host.node,
           {"", 0},          {"chat:", 5},        1,
           host_log,         host_session_id,     host_subscribe,
           host_unsubscribe, host_publish,        host_history};
  }
  void TearDown() override {
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
};

std::string text_of(const std::optional<ServerFrame>& f) {
  return f ? (f->opcode == uint8_t(Opcode::Text) ? f->payload
                                                 : "<opcode " + std::to_string(f->opcode) + ">")
           : "<nothing>";
}

TEST_F(WsTransport, EchoOffSkipsExactlyTheSendingSessionOfThisNode) {
  start(false);
  Client a(port, "/ws/1"), b(port, "/ws/1");
  ASSERT_TRUE(a.upgraded() && b.upgraded());
  ASSERT_TRUE(a.send_text("from a"));
  EXPECT_EQ(text_of(b.next()), "from a");
  ASSERT_TRUE(b.send_text("from b"));
  EXPECT_EQ(text_of(a.next()), "from b") << "a got its own message back";
  EXPECT_EQ(text_of(a.next(300)), "<nothing>");
  EXPECT_EQ(text_of(b.next(300)), "<nothing>") << "b got its own message back";

  flowrelay_origin a_origin;
  {
    std::lock_guard lock(host.mutex);
    ASSERT_EQ(host.origins.size(), 2u);
    a_origin = host.origins[0];
  }
  EXPECT_NE(a_origin.session, 0u) << "a publish names its session";
  // However late it comes back (a resend after any outage), a's message skips a alone...
  deliver("a again", a_origin);
  EXPECT_EQ(text_of(b.next()), "a again");
  // ...while the same session number on another node is someone else.
  deliver("other node", {a_origin.node + 1, a_origin.session, 0});
  EXPECT_EQ(text_of(a.next()), "other node");
  EXPECT_EQ(text_of(b.next()), "other node");
}

TEST_F(WsTransport, EchoOnTheSenderGetsItsOwnMessage) {
  start(true);
  Client a(port, "/ws/1");
  ASSERT_TRUE(a.upgraded());
  ASSERT_TRUE(a.send_text("hello"));
  EXPECT_EQ(text_of(a.next()), "hello");
}

TEST_F(WsTransport, LostSubscriptionClosesItsOpenSessions1013AndTheyUnsubscribe) {
  start(true);
  Client a(port, "/ws/1"), other(port, "/ws/2");
  ASSERT_TRUE(a.upgraded() && other.upgraded());
  EXPECT_EQ(members("chat:1"), 1);
  host.vt->subscribed(host.self, {"chat:1", 6}, FLOWRELAY_EUNAVAIL);
  const auto f = a.next();
  ASSERT_TRUE(f && f->opcode == uint8_t(Opcode::Close)) << text_of(f);
  EXPECT_EQ(f->close_code(), 1013);
  EXPECT_EQ(f->payload.substr(2), "subscription lost, reconnect");
  for (int i = 0; i < 100 && members("chat:1") != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(members("chat:1"), 0) << "the closed session did not unsubscribe";
  EXPECT_EQ(members("chat:2"), 1) << "another conversation is not affected";
  ASSERT_TRUE(other.send_text("still here"));
  EXPECT_EQ(text_of(other.next()), "still here");
}

TEST_F(WsTransport, WhatTheHostDecidesIsNoOption) {
  for (const char* key : {"echo", "channel_prefix", "config_dir"}) {
    std::string err;
    EXPECT_EQ(create({{key, "x"}}, &err), FLOWRELAY_EINVAL) << key;
    EXPECT_NE(err.find(std::string("unknown option '") + key + "'"), std::string::npos) << err;
    EXPECT_EQ(host.self, nullptr);
  }
}

TEST_F(WsTransport, ReloadAppliesLimitsAndNamesRestartOnlyKeys) {
  start(true);
  const std::string same = "127.0.0.1:" + std::to_string(port);
  const std::string moved = "127.0.0.1:" + std::to_string(port + 1);
  const flowrelay_option live[] = {{{"listen", 6}, {same.data(), same.size()}},
                                   {{"io_threads", 10}, {"2", 1}},
                                   {{"publish_rate", 12}, {"5", 1}}};
  char err[256] = "";
  EXPECT_EQ(host.vt->reconfigure(host.self, live, 3, err, sizeof err), FLOWRELAY_OK) << err;
  const flowrelay_option restart[] = {{{"listen", 6}, {moved.data(), moved.size()}},
                                      {{"io_threads", 10}, {"2", 1}}};
  EXPECT_EQ(host.vt->reconfigure(host.self, restart, 2, err, sizeof err), FLOWRELAY_EUNSUPPORTED);
  EXPECT_EQ(std::string(err), "'listen' changed: takes effect after a restart");
  const flowrelay_option bad[] = {{{"publish_rate", 12}, {"fast", 4}}};
  EXPECT_EQ(host.vt->reconfigure(host.self, bad, 1, err, sizeof err), FLOWRELAY_EINVAL);
  EXPECT_NE(std::string(err).find("'publish_rate'"), std::string::npos) << err;
}

TEST_F(WsTransport, MetricsKeepTheirNamesAndLabels) {
  start(true);
  Client a(port, "/ws/1");
  ASSERT_TRUE(a.upgraded() && a.send_text("one"));
  EXPECT_EQ(text_of(a.next()), "one");
  // The loop books a written frame just after its write: the client may read it first.
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text.clear();
    host.vt->metrics(
        host.self,
        [](void* ctx, flowrelay_str piece) {
          static_cast<std::string*>(ctx)->append(piece.ptr, piece.len);
        },
        &text);
    if (text.find("_bucket{le=\"+Inf\"} 1\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(text.find("\nflowrelay_connections 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nflowrelay_messages_in_total{lane=\"message\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("\nflowrelay_messages_in_total{lane=\"log\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("\nflowrelay_resumes_total{recovered=\"false\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE flowrelay_delivery_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("flowrelay_delivery_latency_seconds_bucket{le=\"+Inf\"} 1\n"),
            std::string::npos)
      << text;
}

}  // namespace
