// flowrelay-trivial-backend: the cheapest publish proxy backend, for bench/proxy_bench.sh. It
// answers every POST with 200 {} (publish as sent) on keep-alive connections, reading the body
// but checking no signature, so that a measurement shows the proxy's cost, not a backend's.
//   flowrelay-trivial-backend PORT    (127.0.0.1; Ctrl-C or SIGTERM stops it)
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>

#include <signal.h>

#include <cstdlib>
#include <iostream>
#include <istream>
#include <string>

namespace {

class Answer : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    char buf[16384];
    while (req.stream().read(buf, sizeof buf)) {
    }
    resp.setContentType("application/json");
    resp.setContentLength(2);
    resp.send() << "{}";
  }
};

struct Factory : Poco::Net::HTTPRequestHandlerFactory {
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Answer;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: flowrelay-trivial-backend PORT\n";
    return 2;
  }
  const int port = std::atoi(argv[1]);
  if (port <= 0 || port > 65535) {
    std::cerr << "flowrelay-trivial-backend: bad port '" << argv[1] << "'\n";
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before the server's threads start
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(1100);  // a thread per keep-alive connection (max_in_flight of them)
  params->setMaxQueued(1024);
  params->setKeepAlive(true);
  params->setMaxKeepAliveRequests(0);  // unlimited
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", static_cast<uint16_t>(port)),
                                 1024);
  Poco::Net::HTTPServer server(new Factory, socket, params);
  server.start();
  int sig = 0;
  sigwait(&set, &sig);
  server.stopAll(true);
  return 0;
}
