#include "ws_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "envelope.h"
#include "utf8_repair.h"

namespace flowrelay::ws {

namespace {

int bind_listener(const std::string& host, uint16_t port, int backlog, std::string& err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.empty() || host == "*" ? nullptr : host.c_str(), service.c_str(),
                             &hints, &res);
  if (rc != 0) {
    err = "cannot resolve listen address '" + host + "': " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
    err = "cannot listen on " + host + ":" + service + ": " + std::strerror(errno);
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

}  // namespace

WsServer::~WsServer() {
  stop(0);
  _loops.clear();
}

bool WsServer::start(std::string& err) {
  _listen_fd =
      bind_listener(_ctx.options.listen_host, _ctx.options.listen_port, _ctx.options.backlog, err);
  if (_listen_fd < 0) return false;
  try {
    for (unsigned i = 0; i < _ctx.options.io_threads; ++i)
      _loops.push_back(std::make_unique<EventLoop>(_ctx, _listen_fd));
    for (auto& loop : _loops) loop->start();
  } catch (const std::exception& e) {
    err = std::string("cannot start I/O threads: ") + e.what();
    _loops.clear();
    close(_listen_fd);
    _listen_fd = -1;
    return false;
  }
  _running = true;
  _ctx.log(FLOWRELAY_LOG_INFO, "listening on ws://" + _ctx.options.listen_host + ":" +
                                   std::to_string(_ctx.options.listen_port) + _ctx.options.path +
                                   "{conversation_id} with " + std::to_string(_loops.size()) +
                                   " I/O threads");
  return true;
}

void WsServer::stop(uint32_t timeout_ms) {
  if (!_running.exchange(false)) return;
  for (auto& loop : _loops) loop->post_stop(timeout_ms);
  for (auto& loop : _loops) loop->join();
  // The loops stay allocated until the destructor: the broker may still call deliver() (and
  // post into them) until the daemon destroys it, which happens after this stop().
  if (_listen_fd >= 0) close(_listen_fd);
  _listen_fd = -1;
}

void WsServer::deliver(std::string_view channel, const flowrelay_message& m) {
  if (!_running.load(std::memory_order_relaxed)) return;
  std::string_view data(m.data.ptr, m.data.len);
  std::string repaired;
  if (!is_valid_utf8(data)) {  // e.g. a backend's PUBLISH straight into Redis
    repaired = repair_utf8(data);
    data = repaired;
    _utf8_repaired.fetch_add(1, std::memory_order_relaxed);
  }
  SharedFrame* raw = nullptr;  // raw clients get the message lane only
  if (m.lane == FLOWRELAY_LANE_MESSAGE) raw = SharedFrame::message(channel, Opcode::Text, data);
  SharedFrame* env = nullptr;
  if (_ctx.envelope_clients.load(std::memory_order_acquire) > 0)
    env =
        SharedFrame::message(channel, Opcode::Text,
                             envelope_message(m.lane, m.offset, {m.epoch.ptr, m.epoch.len}, data));
  for (SharedFrame* f : {raw, env}) {
    if (!f) continue;
    f->set_position(m.lane, m.offset);
    for (size_t i = 1; i < _loops.size(); ++i) f->ref();
  }
  if (!raw && !env) return;
  const std::size_t hash = _ctx.options.echo ? 0 : std::hash<std::string_view>{}(data);
  for (auto& loop : _loops) loop->post_deliver(raw, env, hash);
}

namespace {

// Every plain counter the loops keep, as exported: one table, so a new counter is one line.
struct CounterExport {
  LoopStats::Counter LoopStats::*field;
  const char* name;
  const char* help;
  const char* labels;
};
constexpr CounterExport kCounters[] = {
    {&LoopStats::connections_total, "flowrelay_connections_total", "WebSocket connections accepted",
     ""},
    {&LoopStats::handshakes_rejected, "flowrelay_connections_rejected_total",
     "Connections refused at the handshake (HTTP error)", ""},
    {&LoopStats::messages_in, "flowrelay_messages_in_total", "Messages received from clients",
     "{lane=\"message\"}"},
    {&LoopStats::bytes_in, "flowrelay_bytes_in_total", "Payload bytes received from clients",
     "{lane=\"message\"}"},
    {&LoopStats::log_messages_in, "flowrelay_messages_in_total", nullptr, "{lane=\"log\"}"},
    {&LoopStats::deliveries, "flowrelay_deliveries_total",
     "Frames queued to clients (fan-out, both lanes, history replays included)", ""},
    {&LoopStats::bytes_out, "flowrelay_bytes_out_total", "Frame bytes queued to clients", ""},
    {&LoopStats::log_frames_shed, "flowrelay_log_frames_shed_total",
     "Log-lane frames dropped for envelope clients past half of max_outbound_bytes", ""},
    {&LoopStats::envelope_errors, "flowrelay_envelope_errors_total",
     "Envelope frames refused with {\"type\":\"error\"} (bad JSON, type, lane or data)", ""},
    {&LoopStats::resumes_recovered, "flowrelay_resumes_total",
     "Resumes (?since=) answered; recovered=false when history no longer covered the gap",
     "{recovered=\"true\"}"},
    {&LoopStats::resumes_unrecovered, "flowrelay_resumes_total", nullptr, "{recovered=\"false\"}"},
    {&LoopStats::slow_consumer_closes, "flowrelay_slow_consumer_closes_total",
     "Clients disconnected for not reading (max_outbound_bytes)", ""},
    {&LoopStats::protocol_closes, "flowrelay_protocol_closes_total",
     "Clients closed for a protocol violation (1002, 1003, 1007, 1009)", ""},
    {&LoopStats::publish_errors, "flowrelay_publish_errors_total",
     "Client messages the broker refused (the client was told)", ""},
    {&LoopStats::limit_rejections, "flowrelay_limit_rejections_total",
     "Connections refused by max_connections (503) or max_connections_per_ip (429)", ""},
    {&LoopStats::access_rejections, "flowrelay_access_rejections_total",
     "Handshakes refused by the access policy (401 token, 403 origin or conversation)", ""},
    {&LoopStats::idle_closes, "flowrelay_idle_closes_total",
     "Clients closed (1001) for not answering a ping within idle_timeout_ms", ""},
    {&LoopStats::rate_limited, "flowrelay_rate_limited_total",
     "Clients closed (1008) for publishing faster than publish_rate", ""},
    {&LoopStats::forbidden_publishes, "flowrelay_forbidden_publishes_total",
     "Clients closed (1008) for publishing without the token's publish right", ""},
};

}  // namespace

std::string WsServer::metrics() const {
  auto total = [&](auto&& counter_of) {
    uint64_t n = 0;
    for (const auto& loop : _loops) n += counter_of(loop->stats()).get();
    return n;
  };
  auto field = [&](LoopStats::Counter LoopStats::*f) {
    return total([f](const LoopStats& s) -> const LoopStats::Counter& { return s.*f; });
  };
  std::string out;
  // help == nullptr: another sample of the metric just written (another label value).
  auto metric = [&](const char* name, const char* type, const char* help, uint64_t value,
                    const char* labels = "") {
    if (help)
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    out += std::string(name) + labels + " " + std::to_string(value) + "\n";
  };
  metric("flowrelay_connections", "gauge", "WebSocket connections open now",
         field(&LoopStats::connections_total) - field(&LoopStats::connections_closed));
  for (const auto& c : kCounters) metric(c.name, "counter", c.help, field(c.field), c.labels);
  metric("flowrelay_utf8_repaired_total", "counter",
         "Messages from the broker that were not valid UTF-8, sent with U+FFFD in place",
         _utf8_repaired.load(std::memory_order_relaxed));
  const char* h = "flowrelay_delivery_latency_seconds";
  out += std::string("# HELP ") + h +
         " From a message reaching the transport to its frame written for one client\n# TYPE " + h +
         " histogram\n";
  uint64_t cumulative = 0;
  char le[32];
  for (int i = 0; i < kLatencyBucketCount; ++i) {
    cumulative += total(
        [i](const LoopStats& s) -> const LoopStats::Counter& { return s.latency_buckets[i]; });
    std::snprintf(le, sizeof le, "%g", kLatencyBuckets[i]);
    out += std::string(h) + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += std::string(h) + "_bucket{le=\"+Inf\"} " +
         std::to_string(field(&LoopStats::latency_count)) + "\n";
  std::snprintf(le, sizeof le, "%.9f", field(&LoopStats::latency_sum_ns) / 1e9);
  out += std::string(h) + "_sum " + le + "\n" + h + "_count " +
         std::to_string(field(&LoopStats::latency_count)) + "\n";
  return out;
}

std::string WsServer::reconfigure(const WsOptions& fresh) {
  const WsOptions& now = _ctx.options;
  std::string fixed;
  auto check = [&](bool changed, const char* name) {
    if (changed) fixed += (fixed.empty() ? "" : ", ") + std::string(name);
  };
  check(fresh.listen_host != now.listen_host || fresh.listen_port != now.listen_port, "listen");
  check(fresh.path != now.path, "path");
  check(fresh.io_threads != now.io_threads, "io_threads");
  check(fresh.backlog != now.backlog, "backlog");
  // New keys or origins apply to the next handshake; connected clients keep their grant.
  auto policy = std::make_shared<const AccessPolicy>(fresh.access);  // throws on a bad key file
  _ctx.limits.apply(fresh);
  _ctx.set_policy(std::move(policy));
  return fixed;
}

void WsServer::subscribed(std::string_view channel, flowrelay_status status) {
  if (!_running.load(std::memory_order_relaxed)) return;
  for (auto& loop : _loops) loop->post_subscribed(channel, status);
}

}  // namespace flowrelay::ws
