// The test support's SSE client (tests/support/sse_client.h) against canned responses over
// loopback: the request it writes, the head, events across reads, the end of the stream, the
// chunked framing nginx puts on a close-delimited body, and NDJSON lines. transport-sse's
// integration and cluster tests read the daemon through it.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/sse_client.h"

namespace {

using flowrelay::test::SseClient;
using namespace std::chrono_literals;

// Serves one connection: reads the request head, writes `pieces` one send() each, then closes
// (or, with keep_open, holds the connection until destroyed, as a proxy between responses).
class CannedServer {
 public:
  explicit CannedServer(std::vector<std::string> pieces, bool keep_open = false)
      : _listen(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(_listen, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(_listen, 1) != 0 ||
        ::getsockname(_listen, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("cannot listen on 127.0.0.1");
    }
    _port = ntohs(addr.sin_port);
    _thread = std::thread([this, pieces = std::move(pieces), keep_open] {
      const int fd = ::accept(_listen, nullptr, nullptr);
      std::string req;
      char buf[4096];
      while (fd >= 0 && req.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      _request.set_value(req);
      for (const auto& p : pieces) {
        ::send(fd, p.data(), p.size(), MSG_NOSIGNAL);
        std::this_thread::sleep_for(2ms);  // separate reads on the client's side, most likely
      }
      if (keep_open) _release.get_future().wait_for(10s);
      if (fd >= 0) ::close(fd);
    });
  }
  ~CannedServer() {
    _release.set_value();
    _thread.join();
    ::close(_listen);
  }
  uint16_t port() const { return _port; }
  // The request head the client sent (waits for it, bounded).
  std::string request() {
    auto f = _request.get_future();
    return f.wait_for(5s) == std::future_status::ready ? f.get() : "";
  }

 private:
  int _listen;
  uint16_t _port = 0;
  std::promise<std::string> _request;
  std::promise<void> _release;
  std::thread _thread;
};

const std::string kSseHead =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    "Connection: close\r\n\r\n";

std::string chunk(const std::string& bytes) {
  std::ostringstream s;
  s << std::hex << bytes.size() << "\r\n" << bytes << "\r\n";
  return s.str();
}

TEST(SseClient, SendsTheRequestReadsTheHeadAndEventsAndSeesTheEnd) {
  CannedServer server(
      {kSseHead + "retry: 1000\n\nid: e:1\nda", "ta: a\n\n: hb\n\n", "data: cut by the end"});
  SseClient c = SseClient::connect(server.port(), "/sse/x?format=sse",
                                   {{"Last-Event-ID", "e:0"}, {"Origin", "http://o.test"}});
  const std::string req = server.request();
  EXPECT_EQ(req.rfind("GET /sse/x?format=sse HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nAccept: text/event-stream\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nLast-Event-ID: e:0\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nOrigin: http://o.test\r\n"), std::string::npos) << req;
  ASSERT_EQ(c.status(), 200);
  EXPECT_EQ(c.header("content-type").value_or(""), "text/event-stream");

  auto e = c.next_event(2s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "a");
  EXPECT_EQ(e->id, "e:1");
  EXPECT_EQ(c.parser().retry_ms(), std::optional<uint64_t>(1000));
  e = c.next_event(2s, true);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->comment) << e->describe();
  EXPECT_EQ(e->data, " hb");
  e = c.next_event(2s);
  EXPECT_FALSE(e) << "the event cut by the end of the stream was dispatched: " << e->describe();
  EXPECT_TRUE(c.closed());
}

TEST(SseClient, UndoesTheChunkedFramingOfAProxyAndEndsAtTheLastChunk) {
  const std::string body = "id: e:2\ndata: first\n\nid: e:3\ndata: second\n\n";
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string c1 = chunk(body.substr(0, 13)), c2 = chunk(body.substr(13));
  // Chunks cut inside their size line, their data and their CRLF; the connection stays open.
  CannedServer server({head + c1.substr(0, 1), c1.substr(1, 6), c1.substr(7) + c2.substr(0, 3),
                       c2.substr(3, c2.size() - 4), c2.substr(c2.size() - 1) + "0\r\n\r\n"},
                      true);
  SseClient c = SseClient::connect(server.port(), "/sse/x");
  ASSERT_EQ(c.status(), 200);
  auto e = c.next_event(2s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "first");
  EXPECT_EQ(e->id, "e:2");
  e = c.next_event(2s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->data, "second");
  EXPECT_EQ(e->id, "e:3");
  EXPECT_FALSE(c.next_event(2s));
  EXPECT_TRUE(c.closed()) << "the last chunk ends the body even though the socket is open";
}

TEST(SseClient, ReadsNdjsonLinesWithItsOwnAccept) {
  CannedServer server(
      {"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n\r\n{\"a\":1}\n{\"b",
       "\":2}\r\n{\"c\":3}"});
  SseClient c = SseClient::connect(server.port(), "/sse/x", {{"Accept", "application/x-ndjson"}});
  const std::string req = server.request();
  EXPECT_NE(req.find("\r\nAccept: application/x-ndjson\r\n"), std::string::npos) << req;
  EXPECT_EQ(req.find("text/event-stream"), std::string::npos) << req;
  EXPECT_EQ(c.next_line(2s), std::optional<std::string>("{\"a\":1}"));
  EXPECT_EQ(c.next_line(2s), std::optional<std::string>("{\"b\":2}"));
  EXPECT_FALSE(c.next_line(2s)) << "a line without its LF at the end is not a line";
  EXPECT_TRUE(c.closed());
}

TEST(SseClient, AnEmptyAcceptSendsNone) {
  CannedServer server({"HTTP/1.1 406 Not Acceptable\r\nContent-Length: 0\r\n\r\n"});
  SseClient c = SseClient::connect(server.port(), "/sse/x", {{"Accept", ""}});
  const std::string req = server.request();
  EXPECT_EQ(req.find("Accept"), std::string::npos) << req;
  EXPECT_EQ(c.status(), 406);
}

}  // namespace
