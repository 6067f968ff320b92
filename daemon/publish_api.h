// POST /api/publish: backends publish into conversations over HTTP and learn each message's
// offset. Protected by an API key (X-API-Key); see docs/PROTOCOL.md for the wire format.
#pragma once

#include <flowrelay/plugin.h>
#include <flowrelay/plugin.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "conversation_id.h"
#include "http_route.h"

namespace flowrelay {

struct PublishApiOptions {
  std::string api_key;  // empty: the API answers 403
  uint64_t max_body_bytes = 8 * 1024 * 1024;
  uint32_t timeout_ms = 5000;
  std::string channel_prefix = "chat:";
  size_t max_conversation_id_length = 128;
};

class Router;

// Runs a function after some milliseconds, on a thread that may serve other requests too
// (HttpApi::after): how a request's deadline fires without a thread waiting for it.
using PublishScheduler = std::function<void(uint32_t ms, std::function<void()> fn)>;

class PublishApi {
 public:
  // Publishes through `router` (origin: this node, session 0), which must outlive this.
  // `after` arms the answer's deadline (http.publish_timeout_ms).
  PublishApi(Router& router, PublishApiOptions options, PublishScheduler after)
      : _router(router), _after(std::move(after)), _options(std::move(options)) {}

  // [HTTP listener thread] Never blocks: `reply` is called once, from the broker's last
  // completion or from the deadline, whichever comes first.
  void handle(const HttpRequest& req, HttpReply reply);
  // [main] SIGHUP: a new key (rotation), body limit and timeout apply to the next request.
  void reconfigure(const PublishApiOptions& options);
  // Prometheus families: messages published, requests answered with an error (by status).
  void metrics(sdk::PrometheusText& out) const;

 private:
  PublishApiOptions options() const;

  void count_error(int status);

 public:
  // [any thread] An answer went out: `published` messages in it, `status` counted if >= 400.
  void count_answer(int status, size_t published);

 private:
  Router& _router;
  PublishScheduler _after;
  std::atomic<uint64_t> _published{0};
  std::atomic<uint64_t> _errors[6] = {};  // 400 401 403 413 503 other
  mutable std::mutex _mutex;              // guards _options against reconfigure()
  PublishApiOptions _options;
};

// True if `a` equals `b`, in a time that depends on their lengths only (API key check).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace flowrelay
