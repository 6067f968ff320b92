// The HTTP upgrade: every refusal has its status, the accept key follows RFC 6455 4.2.2.
#include <gtest/gtest.h>

#include "handshake.h"

using flowrelay::ws::accept_handshake;

namespace {

std::string request(const std::string& target, const std::string& extra = "",
                    const std::string& key = "dGhlIHNhbXBsZSBub25jZQ==",
                    const std::string& version = "13", const std::string& method = "GET") {
  return method + " " + target +
         " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
         "Sec-WebSocket-Key: " +
         key + "\r\nSec-WebSocket-Version: " + version + "\r\n" + extra + "\r\n";
}

}  // namespace

TEST(Handshake, AcceptKeyOfRfc6455Example) {
  EXPECT_EQ(flowrelay::ws::websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, ValidUpgradeGets101WithAccept) {
  const auto r = accept_handshake(request("/ws/42?since=3"), "/ws/");
  EXPECT_EQ(r.status, 101);
  EXPECT_EQ(r.conversation, "42");
  EXPECT_NE(r.response.find("HTTP/1.1 101 Switching Protocols\r\n"), std::string::npos);
  EXPECT_NE(r.response.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            std::string::npos);
  EXPECT_EQ(r.response.substr(r.response.size() - 4), "\r\n\r\n");
}

TEST(Handshake, ConversationIdRules) {
  EXPECT_EQ(accept_handshake(request("/ws/" + std::string(128, 'a')), "/ws/").status, 101);
  EXPECT_EQ(accept_handshake(request("/ws/a-b_c.d:e"), "/ws/").status, 101);
  EXPECT_EQ(accept_handshake(request("/ws/" + std::string(129, 'a')), "/ws/").status, 400);
  EXPECT_EQ(accept_handshake(request("/ws/"), "/ws/").status, 400);
  EXPECT_EQ(accept_handshake(request("/ws/a%20b"), "/ws/").status, 400);
  EXPECT_EQ(accept_handshake(request("/ws/x/y"), "/ws/").status, 400);
}

TEST(Handshake, Refusals) {
  EXPECT_EQ(accept_handshake(request("/other/42"), "/ws/").status, 404);
  EXPECT_EQ(accept_handshake(request("/ws/42", "", "dGhlIHNhbXBsZSBub25jZQ=="
                                                    "", "13", "POST"),
                             "/ws/")
                .status,
            405);
  const auto v = accept_handshake(request("/ws/42", "", "dGhlIHNhbXBsZSBub25jZQ==", "8"), "/ws/");
  EXPECT_EQ(v.status, 426);
  EXPECT_NE(v.response.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_EQ(accept_handshake(request("/ws/42", "", "short"), "/ws/").status, 400);
  EXPECT_EQ(accept_handshake(request("/ws/42", "", "!!!!!!!!!!!!!!!!!!!!!!=="), "/ws/").status,
            400);
  EXPECT_EQ(accept_handshake("GET /ws/42 HTTP/1.1\r\nHost: x\r\n\r\n", "/ws/").status, 426);
  EXPECT_EQ(accept_handshake("garbage\r\n\r\n", "/ws/").status, 400);
  EXPECT_EQ(accept_handshake("GET /ws/42 HTTP/1.0\r\n\r\n", "/ws/").status, 400);
  const auto r = accept_handshake(request("/nope"), "/ws/");
  EXPECT_NE(r.response.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(r.response.find("HTTP/1.1 404 Not Found\r\n"), std::string::npos);
}
