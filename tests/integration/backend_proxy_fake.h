// A fake application backend for the backend proxy tests: a Poco HTTP server in the test
// process that checks each request's X-Flowrelay-Signature (HMAC-SHA256 written here, apart
// from the daemon's), records it and answers as the test says.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/ThreadPool.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "support/itest.h"

namespace flowrelay::itest {

inline const std::string kBackendSecret = "test-backend-secret-0123456789";

struct BackendRequest {
  std::string path;
  std::string body;
  Poco::JSON::Object::Ptr json;  // null when the body is not a JSON object
  bool signature_ok = false;
};

struct BackendReply {
  int status = 200;
  std::string body = "{}";
  int delay_ms = 0;
  bool hang = false;  // answer only once release() is called (or the server stops)
};

class FakeBackend {
 public:
  using Policy = std::function<BackendReply(const BackendRequest&)>;
  // `secret`: what the backend checks signatures with (a wrong one answers 401).
  explicit FakeBackend(std::string secret = kBackendSecret);
  ~FakeBackend();

  uint16_t port() const { return _port; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(_port) + path;
  }
  const std::string& secret() const { return _secret; }
  void answer(Policy policy);
  void release();  // ends every hang

  size_t count(const std::string& path) const;
  std::vector<BackendRequest> requests(const std::string& path) const;
  // Those whose JSON body has "type": `type` (publish_url also gets {"type":"cancel",...}
  // events, next to the client messages, which have no type).
  std::vector<BackendRequest> requests_of_type(const std::string& path,
                                               const std::string& type) const;
  bool wait_count(const std::string& path, size_t n, Millis timeout) const;

  // [server thread]
  BackendReply handle(BackendRequest& request);

 private:
  const std::string _secret;
  uint16_t _port = 0;
  // The server's own pool, joined in the destructor: Poco's stopAll() does not wait for the
  // handler threads, which would otherwise outlive the test (and Poco's static buffer pools).
  std::unique_ptr<Poco::ThreadPool> _pool;
  std::unique_ptr<Poco::Net::HTTPServer> _server;
  mutable std::mutex _mutex;
  mutable std::condition_variable _changed;
  Policy _policy;
  std::vector<BackendRequest> _requests;
  bool _released = false;
};

// The daemon's backend: section for `backend`, with the secret written into `dir`.
std::string backend_section(const TempDir& dir, const std::string& keys);

// HMAC-SHA256(secret, timestamp + "." + body) as "sha256=<hex>".
std::string expected_signature(const std::string& secret, const std::string& timestamp,
                               const std::string& body);

// The value of flowrelay_backend_requests_total{endpoint,outcome} (-1: not on the page).
double backend_count(uint16_t http_port, const std::string& endpoint, const std::string& outcome);

}  // namespace flowrelay::itest
