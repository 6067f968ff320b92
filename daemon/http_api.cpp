#include "http_api.h"

#include <Poco/JSON/Object.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "config.h"
#include "net/acceptor.h"

namespace flowrelay {

namespace {

HttpAnswer json_object(int status, const Poco::JSON::Object& body) {
  std::ostringstream text;
  body.stringify(text);
  return json_answer(status, text.str());
}

// GET and HEAD only (operators' endpoints): true if the request was answered with 405.
bool refused_method(const HttpRequest& req, HttpReply& reply) {
  if (req.method == "GET" || req.method == "HEAD") return false;
  HttpAnswer a = json_error(405, "method not allowed");
  a.headers.emplace_back("Allow", "GET, HEAD");
  reply(std::move(a));
  return true;
}

}  // namespace

HttpApi::HttpApi(const HttpOptions& options, const ServiceState& state, std::string version,
                 std::function<std::string()> metrics)
    : _max_body_bytes(options.max_body_bytes) {
  _loop_config.header_timeout_ms = options.header_timeout_ms;
  _loop_config.idle_timeout_ms = options.idle_timeout_ms;
  _loop_config.max_connections = options.max_connections;
  _loop_config.max_head_bytes = options.max_head_bytes;
  _loop_config.max_body_bytes = &_max_body_bytes;
  std::string host, err;
  uint16_t port = 0;
  if (!split_host_port(options.listen, host, port))
    throw std::runtime_error("http.listen must be host:port, got '" + options.listen + "'");
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  _listen_fd = net::listen_tcp(host, port, 1024, err);
  if (_listen_fd < 0) throw std::runtime_error(err);
  try {
    for (unsigned i = 0; i < std::max(1u, options.threads); ++i)
      _loops.push_back(std::make_unique<HttpLoop>(
          _listen_fd, _loop_config, _stats,
          [this](const HttpRequest& req, HttpReply reply) { dispatch(req, std::move(reply)); }));
  } catch (...) {
    _loops.clear();
    close(_listen_fd);
    throw;
  }

  route("/health", [version = std::move(version)](const HttpRequest& req, HttpReply reply) {
    if (refused_method(req, reply)) return;
    Poco::JSON::Object body;
    body.set("status", "ok");
    body.set("version", version);
    reply(json_object(200, body));
  });
  route("/ready", [&state](const HttpRequest& req, HttpReply reply) {
    if (refused_method(req, reply)) return;
    const bool ready = state.ready();
    Poco::JSON::Object body;
    body.set("ready", ready);
    body.set("listening", state.listening.load());
    body.set("broker", state.broker_ready.load() ? "ready" : "not ready");
    if (state.stopping) body.set("stopping", true);
    reply(json_object(ready ? 200 : 503, body));
  });
  route("/metrics", [metrics = std::move(metrics)](const HttpRequest& req, HttpReply reply) {
    if (refused_method(req, reply)) return;
    HttpAnswer a;
    a.content_type = "text/plain; version=0.0.4; charset=utf-8";
    a.body = metrics();
    reply(std::move(a));
  });
}

HttpApi::~HttpApi() {
  stop();
  _loops.clear();
  if (_listen_fd >= 0) close(_listen_fd);
}

void HttpApi::route(std::string path, HttpHandler handler) {
  _exact[std::move(path)] = std::move(handler);
}

void HttpApi::route_prefix(std::string prefix, HttpHandler handler) {
  _prefixes.emplace_back(std::move(prefix), std::move(handler));
  std::stable_sort(_prefixes.begin(), _prefixes.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

void HttpApi::start() {
  if (_started) return;
  _started = true;
  for (auto& l : _loops) l->start();
}

void HttpApi::stop() {
  for (auto& l : _loops) l->stop();
  for (auto& l : _loops) l->join();  // the loops stay: after() from a handler stays safe
}

void HttpApi::after(uint32_t ms, std::function<void()> fn) {
  if (!_loops.empty()) _loops.front()->after(ms, std::move(fn));
}

void HttpApi::dispatch(const HttpRequest& req, HttpReply reply) const {
  if (auto it = _exact.find(req.path); it != _exact.end()) return it->second(req, std::move(reply));
  for (const auto& [prefix, handler] : _prefixes)
    if (req.path.compare(0, prefix.size(), prefix) == 0) return handler(req, std::move(reply));
  reply(json_error(404, "not found"));
}

void HttpApi::metrics(sdk::PrometheusText& out) const {
  out.gauge("flowrelay_http_connections", "Open connections to the HTTP listener",
            uint64_t{_stats.open.load()});
  out.counter("flowrelay_http_connections_total", "Connections accepted by the HTTP listener",
              _stats.accepted.load());
  out.counter("flowrelay_http_requests_total", "Requests read by the HTTP listener",
              _stats.requests.load());
  out.counter("flowrelay_http_refused_connections_total",
              "Connections closed at once: http.max_connections reached",
              _stats.refused_at_cap.load());
  out.counter("flowrelay_http_header_timeouts_total",
              "Connections answered 408: no complete request within http.header_timeout_ms",
              _stats.header_timeouts.load());
  out.counter("flowrelay_http_idle_closed_total",
              "Keep-alive connections closed after http.idle_timeout_ms without a request",
              _stats.idle_closed.load());
  out.counter("flowrelay_http_bad_requests_total",
              "Requests refused by the listener (400, 411, 413, 431, 505)",
              _stats.bad_requests.load());
}

}  // namespace flowrelay
