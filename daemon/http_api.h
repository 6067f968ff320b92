// The HTTP listener: GET /health, /ready (JSON) and /metrics for operators, and POST
// /api/publish for backends.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/ThreadPool.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace flowrelay {

class PublishApi;

// Answers with `body` as one line of JSON (every endpoint's answer but /metrics).
void send_json(Poco::Net::HTTPServerResponse& resp, Poco::Net::HTTPResponse::HTTPStatus status,
               const Poco::JSON::Object& body);

struct ServiceState {
  std::atomic<bool> listening{false};     // transports started
  std::atomic<bool> broker_ready{false};  // broker says it can publish and deliver
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> broker_reconnects{0};  // became ready again after being ready once
  std::atomic<uint64_t> broker_errors{0};      // report_error() calls
  std::atomic<bool> broker_was_ready{false};
  bool ready() const { return listening && broker_ready && !stopping; }
};

class HttpApi {
 public:
  // Binds `listen` ("host:port") now; throws Poco::Exception on failure.
  // `metrics` renders GET /metrics (Prometheus text); called on an HTTP worker thread.
  // `publish` (may be null: 404) serves POST /api/publish and must outlive this.
  HttpApi(const std::string& listen, const ServiceState& state, std::string version,
          std::function<std::string()> metrics, PublishApi* publish);
  ~HttpApi();
  void start();
  void stop();

 private:
  std::unique_ptr<Poco::ThreadPool> _pool;  // outlives _server
  std::unique_ptr<Poco::Net::HTTPServer> _server;
};

}  // namespace flowrelay
