// POST /api/publish: backends publish into conversations over HTTP and learn each message's
// offset. Protected by an API key (X-API-Key); see docs/PROTOCOL.md for the wire format.
#pragma once

#include <flowrelay/plugin.h>

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <atomic>
#include <cstdint>
#include <functional>
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

class PublishApi {
 public:
  using PublishFn =
      std::function<flowrelay_status(std::string_view channel, const flowrelay_message& message,
                                     flowrelay_published_fn done, void* ctx)>;
  PublishApi(PublishFn publish, PublishApiOptions options)
      : _publish(std::move(publish)), _options(std::move(options)) {}

  // [HTTP worker thread] Answers the request completely.
  void handle(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp);
  // [main] SIGHUP: a new key (rotation), body limit and timeout apply to the next request.
  void reconfigure(const PublishApiOptions& options);
  // Prometheus text: messages published, requests answered with an error (by status).
  std::string metrics() const;

 private:
  PublishApiOptions options() const;

  void serve(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp);
  void count_error(int status);

  PublishFn _publish;
  std::atomic<uint64_t> _published{0};
  std::atomic<uint64_t> _errors[6] = {};  // 400 401 403 413 503 other
  mutable std::mutex _mutex;              // guards _options against reconfigure()
  PublishApiOptions _options;
};

// True if `a` equals `b`, in a time that depends on their lengths only (API key check).
bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace flowrelay
