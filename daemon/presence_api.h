// GET /api/presence?conversation=<id>: how many clients are connected to a conversation on all
// replicas (the broker sums every node's count; see docs/PROTOCOL.md, "Presence"). Protected
// by the same API key as the publish API (X-API-Key).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "http_route.h"
#include "publish_api.h"  // PublishScheduler, constant_time_equal

namespace flowrelay {

struct PresenceApiOptions {
  std::string api_key;         // empty: the API answers 403 (as http.api_key for the publish API)
  uint32_t timeout_ms = 5000;  // http.publish_timeout_ms: later than this, 503
  std::string channel_prefix = "chat:";
  size_t max_conversation_id_length = 128;
};

class Router;

class PresenceApi {
 public:
  // Asks `router` (which must outlive this); `after` arms each answer's deadline.
  PresenceApi(Router& router, PresenceApiOptions options, PublishScheduler after)
      : _router(router), _after(std::move(after)), _options(std::move(options)) {}

  // [HTTP listener thread] Never blocks: `reply` is called once, from the broker's completion
  // or from the deadline, whichever comes first. 200 {"conversation","clients","nodes"};
  // 400 bad conversation id; 401 wrong or missing key; 403 API off; 405 not GET; 503 broker.
  void handle(const HttpRequest& req, HttpReply reply);
  // [main] SIGHUP: key rotation and timeout apply to the next request.
  void reconfigure(const PresenceApiOptions& options);

 private:
  PresenceApiOptions options() const;

  Router& _router;
  PublishScheduler _after;
  mutable std::mutex _mutex;  // guards _options against reconfigure()
  PresenceApiOptions _options;
};

// The first value of `name` in a query string ("a=1&b=2"), percent-decoded; false when absent.
bool query_value(std::string_view query, std::string_view name, std::string& value);

}  // namespace flowrelay
