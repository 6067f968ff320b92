#include "backend_proxy_fake.h"

#include <Poco/DigestEngine.h>
#include <Poco/HMACEngine.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/SHA2Engine.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timespan.h>

#include <sstream>
#include <thread>

namespace flowrelay::itest {

namespace {

class Sha256 : public Poco::SHA2Engine {
 public:
  enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
};

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(FakeBackend& backend) : _backend(backend) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    BackendRequest r;
    r.path = req.getURI();
    Poco::StreamCopier::copyToString(req.stream(), r.body);
    try {
      auto v = Poco::JSON::Parser().parse(r.body);
      if (v.type() == typeid(Poco::JSON::Object::Ptr))
        r.json = v.extract<Poco::JSON::Object::Ptr>();
    } catch (const Poco::Exception&) {
    }
    const std::string ts = req.get("X-Flowrelay-Timestamp", "");
    r.signature_ok = !ts.empty() && req.get("X-Flowrelay-Signature", "") ==
                                        expected_signature(_backend.secret(), ts, r.body);
    const BackendReply reply = _backend.handle(r);
    resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
    resp.setContentType("application/json");
    resp.setContentLength(static_cast<std::streamsize>(reply.body.size()));
    resp.send() << reply.body;
  }

 private:
  FakeBackend& _backend;
};

}  // namespace

std::string expected_signature(const std::string& secret, const std::string& timestamp,
                               const std::string& body) {
  Poco::HMACEngine<Sha256> hmac(secret);
  hmac.update(timestamp + "." + body);
  return "sha256=" + Poco::DigestEngine::digestToHex(hmac.digest());
}

FakeBackend::FakeBackend(std::string secret) : _secret(std::move(secret)) {
  struct Factory : Poco::Net::HTTPRequestHandlerFactory {
    FakeBackend& b;
    explicit Factory(FakeBackend& backend) : b(backend) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest&) override {
      return new Handler(b);
    }
  };
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0), 256);
  _port = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(128);
  params->setMaxQueued(1024);
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(1, 0));
  _pool = std::make_unique<Poco::ThreadPool>("fake-backend", 2, 128);
  _server = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), *_pool, socket, params);
  _server->start();
  answer([](const BackendRequest&) { return BackendReply{}; });
}

FakeBackend::~FakeBackend() {
  release();
  // stop(), not stopAll(): Poco 1.11's stopAll notifies the connections through an event whose
  // delegates the ending connections remove concurrently (a race TSan reports inside Poco). The
  // connections end by themselves instead: the daemon closed them, or the 1 s keep-alive
  // timeout does. Every handler thread is done before the server is destroyed.
  _server->stop();
  _pool->joinAll();
  _server.reset();
}

void FakeBackend::answer(Policy policy) {
  std::lock_guard lock(_mutex);
  _policy = std::move(policy);
}

void FakeBackend::release() {
  std::lock_guard lock(_mutex);
  _released = true;
  _changed.notify_all();
}

BackendReply FakeBackend::handle(BackendRequest& r) {
  Policy policy;
  {
    std::lock_guard lock(_mutex);
    policy = _policy;
  }
  BackendReply reply =
      r.signature_ok ? policy(r) : BackendReply{401, R"({"error":"bad signature"})"};
  {
    std::lock_guard lock(_mutex);
    _requests.push_back(r);
    _changed.notify_all();
  }
  if (reply.delay_ms > 0) std::this_thread::sleep_for(Millis(reply.delay_ms));
  if (reply.hang) {
    std::unique_lock lock(_mutex);
    _changed.wait_for(lock, 60s, [&] { return _released; });
  }
  return reply;
}

size_t FakeBackend::count(const std::string& path) const { return requests(path).size(); }

std::vector<BackendRequest> FakeBackend::requests(const std::string& path) const {
  std::lock_guard lock(_mutex);
  std::vector<BackendRequest> out;
  for (const auto& r : _requests)
    if (r.path == path) out.push_back(r);
  return out;
}

std::vector<BackendRequest> FakeBackend::requests_of_type(const std::string& path,
                                                          const std::string& type) const {
  std::vector<BackendRequest> out;
  for (auto& r : requests(path))
    if (r.json && r.json->optValue<std::string>("type", "") == type) out.push_back(std::move(r));
  return out;
}

bool FakeBackend::wait_count(const std::string& path, size_t n, Millis timeout) const {
  return wait_for([&] { return count(path) >= n; }, timeout);
}

std::string backend_section(const TempDir& dir, const std::string& keys) {
  const std::string secret = dir.write("backend.secret", kBackendSecret + "\n");
  return "backend:\n  secret_file: " + secret + "\n" + keys;
}

double backend_count(uint16_t http_port, const std::string& endpoint, const std::string& outcome) {
  const HttpResult page = http_get(http_port, "/metrics");
  const std::string key = "flowrelay_backend_requests_total{endpoint=\"" + endpoint +
                          "\",outcome=\"" + outcome + "\"} ";
  const size_t at = page.body.find(key);
  if (page.status != 200 || at == std::string::npos) return -1;
  return std::stod(page.body.substr(at + key.size()));
}

}  // namespace flowrelay::itest
