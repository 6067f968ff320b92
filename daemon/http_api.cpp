#include "http_api.h"

#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>

#include <sstream>

#include "publish_api.h"

namespace flowrelay {

namespace {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

constexpr int kHttpThreads = 16;

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(const ServiceState& state, const std::string& version,
          const std::function<std::string()>& metrics, PublishApi* publish)
      : _state(state), _version(version), _metrics(metrics), _publish(publish) {}

  void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
    const std::string path = req.getURI().substr(0, req.getURI().find('?'));
    Poco::JSON::Object body;
    if (path == "/api/publish" && _publish) return _publish->handle(req, resp);
    if (req.getMethod() != "GET" && req.getMethod() != "HEAD") {
      resp.set("Allow", "GET, HEAD");
      body.set("error", "method not allowed");
      return send_json(resp, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, body);
    }
    if (path == "/health") {
      body.set("status", "ok");
      body.set("version", _version);
      return send_json(resp, HTTPResponse::HTTP_OK, body);
    }
    if (path == "/ready") {
      const bool ready = _state.ready();
      body.set("ready", ready);
      body.set("listening", _state.listening.load());
      body.set("broker", _state.broker_ready.load() ? "ready" : "not ready");
      if (_state.stopping) body.set("stopping", true);
      return send_json(resp, ready ? HTTPResponse::HTTP_OK : HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
                       body);
    }
    if (path == "/metrics") {
      const std::string text = _metrics();
      resp.setStatus(HTTPResponse::HTTP_OK);
      resp.setContentType("text/plain; version=0.0.4; charset=utf-8");
      resp.setContentLength(static_cast<std::streamsize>(text.size()));
      resp.send() << text;
      return;
    }
    body.set("error", "not found");
    send_json(resp, HTTPResponse::HTTP_NOT_FOUND, body);
  }

 private:
  const ServiceState& _state;
  const std::string& _version;
  const std::function<std::string()>& _metrics;
  PublishApi* _publish;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(const ServiceState& state, std::string version, std::function<std::string()> metrics,
          PublishApi* publish)
      : _state(state),
        _version(std::move(version)),
        _metrics(std::move(metrics)),
        _publish(publish) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
    return new Handler(_state, _version, _metrics, _publish);
  }

 private:
  const ServiceState& _state;
  std::string _version;
  std::function<std::string()> _metrics;
  PublishApi* _publish;
};

}  // namespace

void send_json(Poco::Net::HTTPServerResponse& resp, Poco::Net::HTTPResponse::HTTPStatus status,
               const Poco::JSON::Object& body) {
  std::ostringstream text;
  body.stringify(text);
  const std::string s = text.str() + "\n";
  resp.setStatusAndReason(status);
  resp.setContentType("application/json");
  resp.setContentLength(static_cast<std::streamsize>(s.size()));
  resp.send() << s;
}

HttpApi::HttpApi(const std::string& listen, const ServiceState& state, std::string version,
                 std::function<std::string()> metrics, PublishApi* publish) {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress(listen), 64);
  auto* params = new Poco::Net::HTTPServerParams;
  // A keep-alive connection holds a worker for its life (Poco's model): backends streaming
  // through the publish API each keep one, and /ready probes must still get through. Idle
  // workers beyond the first exit after a minute, so an idle daemon keeps one thread here.
  params->setMaxThreads(kHttpThreads);
  params->setMaxQueued(256);
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(5, 0));
  _pool = std::make_unique<Poco::ThreadPool>("http", 1, kHttpThreads, 60);
  _server = std::make_unique<Poco::Net::HTTPServer>(
      new Factory(state, std::move(version), std::move(metrics), publish), *_pool, socket, params);
}

HttpApi::~HttpApi() { stop(); }

void HttpApi::start() { _server->start(); }

void HttpApi::stop() {
  if (_server) _server->stopAll(true);
}

}  // namespace flowrelay
