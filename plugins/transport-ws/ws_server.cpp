#include "ws_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

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

void WsServer::deliver(std::string_view channel, std::string_view payload) {
  if (!_running.load(std::memory_order_relaxed)) return;
  SharedFrame* frame = SharedFrame::message(channel, Opcode::Text, payload);
  for (size_t i = 1; i < _loops.size(); ++i) frame->ref();
  for (auto& loop : _loops) loop->post_deliver(frame);
}

std::string WsServer::metrics() const {
  LoopStats sum;
  auto add = [](LoopStats::Counter& to, const LoopStats::Counter& from) { to.add(from.get()); };
  for (const auto& loop : _loops) {
    const LoopStats& s = loop->stats();
    add(sum.connections_total, s.connections_total);
    add(sum.connections_closed, s.connections_closed);
    add(sum.handshakes_rejected, s.handshakes_rejected);
    add(sum.messages_in, s.messages_in);
    add(sum.bytes_in, s.bytes_in);
    add(sum.deliveries, s.deliveries);
    add(sum.bytes_out, s.bytes_out);
    add(sum.slow_consumer_closes, s.slow_consumer_closes);
    add(sum.protocol_closes, s.protocol_closes);
    add(sum.publish_errors, s.publish_errors);
    add(sum.limit_rejections, s.limit_rejections);
    add(sum.access_rejections, s.access_rejections);
    add(sum.idle_closes, s.idle_closes);
    add(sum.rate_limited, s.rate_limited);
    add(sum.forbidden_publishes, s.forbidden_publishes);
    add(sum.latency_count, s.latency_count);
    add(sum.latency_sum_ns, s.latency_sum_ns);
    for (int i = 0; i < kLatencyBucketCount; ++i) add(sum.latency_buckets[i], s.latency_buckets[i]);
  }
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, uint64_t value,
                    const char* labels = "") {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + labels + " " + std::to_string(value) + "\n";
  };
  const uint64_t total = sum.connections_total.get(), closed = sum.connections_closed.get();
  metric("flowrelay_connections", "gauge", "WebSocket connections open now", total - closed);
  metric("flowrelay_connections_total", "counter", "WebSocket connections accepted", total);
  metric("flowrelay_connections_rejected_total", "counter",
         "Connections refused at the handshake (HTTP error)", sum.handshakes_rejected.get());
  metric("flowrelay_messages_in_total", "counter", "Messages received from clients",
         sum.messages_in.get(), "{lane=\"message\"}");
  metric("flowrelay_bytes_in_total", "counter", "Payload bytes received from clients",
         sum.bytes_in.get(), "{lane=\"message\"}");
  metric("flowrelay_deliveries_total", "counter", "Frames queued to clients (fan-out)",
         sum.deliveries.get(), "{lane=\"message\"}");
  metric("flowrelay_bytes_out_total", "counter", "Frame bytes queued to clients",
         sum.bytes_out.get(), "{lane=\"message\"}");
  metric("flowrelay_slow_consumer_closes_total", "counter",
         "Clients disconnected for not reading (max_outbound_bytes)",
         sum.slow_consumer_closes.get());
  metric("flowrelay_protocol_closes_total", "counter",
         "Clients closed for a protocol violation (1002, 1003, 1007, 1009)",
         sum.protocol_closes.get());
  metric("flowrelay_publish_errors_total", "counter",
         "Client messages the broker refused (the client was told)", sum.publish_errors.get());
  metric("flowrelay_limit_rejections_total", "counter",
         "Connections refused by max_connections (503) or max_connections_per_ip (429)",
         sum.limit_rejections.get());
  metric("flowrelay_access_rejections_total", "counter",
         "Handshakes refused by the access policy (401 token, 403 origin or conversation)",
         sum.access_rejections.get());
  metric("flowrelay_idle_closes_total", "counter",
         "Clients closed (1001) for not answering a ping within idle_timeout_ms",
         sum.idle_closes.get());
  metric("flowrelay_rate_limited_total", "counter",
         "Clients closed (1008) for publishing faster than publish_rate", sum.rate_limited.get());
  metric("flowrelay_forbidden_publishes_total", "counter",
         "Clients closed (1008) for publishing without the token's publish right",
         sum.forbidden_publishes.get());
  const char* h = "flowrelay_delivery_latency_seconds";
  out += std::string("# HELP ") + h +
         " From a message reaching the transport to its frame written for one client\n# TYPE " + h +
         " histogram\n";
  uint64_t cumulative = 0;
  char le[32];
  for (int i = 0; i < kLatencyBucketCount; ++i) {
    cumulative += sum.latency_buckets[i].get();
    std::snprintf(le, sizeof le, "%g", kLatencyBuckets[i]);
    out += std::string(h) + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += std::string(h) + "_bucket{le=\"+Inf\"} " + std::to_string(sum.latency_count.get()) + "\n";
  std::snprintf(le, sizeof le, "%.9f", sum.latency_sum_ns.get() / 1e9);
  out += std::string(h) + "_sum " + le + "\n" + h + "_count " +
         std::to_string(sum.latency_count.get()) + "\n";
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
