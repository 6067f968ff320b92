// The HTTP listener: GET /health, /ready (JSON) and /metrics for operators, and whatever else is
// routed to it (POST /api/publish for backends, ...). Event-driven (http_loop.h): idle or slow
// connections cost memory, not threads, and never hold up other clients' requests.
#pragma once

#include <flowrelay/plugin.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "http_loop.h"
#include "http_route.h"

namespace flowrelay {

struct ServiceState {
  std::atomic<bool> listening{false};     // transports started
  std::atomic<bool> broker_ready{false};  // broker says it can publish and deliver
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> broker_reconnects{0};  // became ready again after being ready once
  std::atomic<uint64_t> broker_errors{0};      // report_error() calls
  std::atomic<bool> broker_was_ready{false};
  bool ready() const { return listening && broker_ready && !stopping; }
};

// Called on a listener thread; must not block (answer later through the reply instead).
using HttpHandler = std::function<void(const HttpRequest&, HttpReply)>;

// `{"error": text}` as a JSON answer.
HttpAnswer json_error(int status, const std::string& text);

struct HttpOptions {
  std::string listen;  // "host:port"
  unsigned threads = 1;
  uint32_t header_timeout_ms = 10000;
  uint32_t idle_timeout_ms = 60000;
  uint32_t max_connections = 16384;
  uint64_t max_body_bytes = 8 * 1024 * 1024;
  size_t max_head_bytes = 16384;
};

class HttpApi {
 public:
  // Binds now (throws std::runtime_error naming the address) and routes /health, /ready and
  // /metrics. `metrics` renders GET /metrics (Prometheus text) on a listener thread.
  HttpApi(const HttpOptions& options, const ServiceState& state, std::string version,
          std::function<std::string()> metrics);
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // Before start(): `handler` serves requests for exactly `path`, or for every path that
  // starts with `prefix` (the longest prefix wins; exact paths before prefixes).
  void route(std::string path, HttpHandler handler);
  void route_prefix(std::string prefix, HttpHandler handler);

  void start();
  void stop();  // closes every connection; answers still on their way are dropped

  // [any thread] Runs `fn` on a listener thread after `ms` (never, once stopped). For handler
  // deadlines (the publish timeout) without a thread of their own.
  void after(uint32_t ms, std::function<void()> fn);
  // [main] SIGHUP: the body limit of the next requests (413 past it).
  void set_max_body_bytes(uint64_t n) { _max_body_bytes.store(n); }
  // Prometheus families of the listener (connections, timeouts, refusals).
  void metrics(sdk::PrometheusText& out) const;

 private:
  void dispatch(const HttpRequest& req, HttpReply reply) const;

  std::atomic<uint64_t> _max_body_bytes;
  HttpLoopConfig _loop_config;
  HttpListenerStats _stats;
  int _listen_fd = -1;
  std::unordered_map<std::string, HttpHandler> _exact;
  std::vector<std::pair<std::string, HttpHandler>> _prefixes;  // longest first
  std::vector<std::unique_ptr<HttpLoop>> _loops;
  bool _started = false;
};

}  // namespace flowrelay
