// POST /api/publish: backends publish into conversations over HTTP and learn each message's
// offset. Protected by an API key (X-API-Key); see docs/PROTOCOL.md for the wire format.
#pragma once

#include <flowrelay/plugin.h>
#include <flowrelay/plugin.hpp>

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "conversation_id.h"

namespace flowrelay {

struct PublishApiOptions {
  std::string api_key;  // empty: the API answers 403
  uint64_t max_body_bytes = 8 * 1024 * 1024;
  uint32_t timeout_ms = 5000;
  std::string channel_prefix = "chat:";
  size_t max_conversation_id_length = 128;
};

class Router;

class PublishApi {
 public:
  // Publishes through `router` (origin: this node, session 0), which must outlive this.
  PublishApi(Router& router, PublishApiOptions options)
      : _router(router), _options(std::move(options)) {}

  // [HTTP worker thread] Answers the request completely.
  void handle(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp);
  // [main] SIGHUP: a new key (rotation), body limit and timeout apply to the next request.
  void reconfigure(const PublishApiOptions& options);
  // Prometheus families: messages published, requests answered with an error (by status).
  void metrics(sdk::PrometheusText& out) const;

 private:
  PublishApiOptions options() const;

  void serve(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp);
  void count_error(int status);

  Router& _router;
  std::atomic<uint64_t> _published{0};
  std::atomic<uint64_t> _errors[6] = {};  // 400 401 403 413 503 other
  mutable std::mutex _mutex;              // guards _options against reconfigure()
  PublishApiOptions _options;
};

// True if `a` equals `b`, in a time that depends on their lengths only (API key check).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace flowrelay
