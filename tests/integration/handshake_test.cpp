// The WebSocket opening handshake: accepted and refused requests (hand-built over raw TCP).
#include <gtest/gtest.h>

#include <memory>

#include "support/itest.h"

namespace flowrelay::itest {
namespace {

class HandshakeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { daemon = std::make_unique<Daemon>(); }
  static void TearDownTestSuite() { daemon.reset(); }
  void TearDown() override {
    ASSERT_TRUE(daemon->running()) << "daemon died; stderr:\n" << daemon->stderr_text();
  }
  static uint16_t port() { return daemon->ws_port(); }
  static std::unique_ptr<Daemon> daemon;
};
std::unique_ptr<Daemon> HandshakeTest::daemon;

// After a 101 the connection speaks WebSocket: a ping is answered with a pong.
void expect_websocket_works(RawClient& c) {
  FrameSpec ping;
  ping.opcode = kPing;
  ping.payload = "alive?";
  ASSERT_TRUE(c.send_frame(ping));
  Frame f;
  ASSERT_EQ(c.read_frame(f, 5s), ReadResult::Frame);
  EXPECT_EQ(f.opcode, kPong) << f.describe();
  EXPECT_EQ(f.payload, "alive?");
  EXPECT_FALSE(f.masked) << "server frames must not be masked";
}

TEST_F(HandshakeTest, ValidHandshakeGets101WithCorrectAccept) {
  RawClient c(port());
  const std::string key = make_ws_key();
  HttpHead h = c.request(handshake_request("/ws/alice", key));
  ASSERT_EQ(h.status, 101) << h.status_line;
  EXPECT_EQ(h.header("Sec-WebSocket-Accept"), expected_accept(key));
  ASSERT_TRUE(h.header("Upgrade").has_value());
  std::string upgrade = *h.header("Upgrade");
  for (auto& ch : upgrade) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_EQ(upgrade, "websocket");
  ASSERT_TRUE(h.header("Connection").has_value());
  std::string conn = *h.header("Connection");
  for (auto& ch : conn) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_NE(conn.find("upgrade"), std::string::npos) << conn;
  expect_websocket_works(c);
}

struct AcceptCase {
  std::string name;
  std::string path;
  std::string extra_headers;  // replaces the default Upgrade/Connection lines if non-empty
};
void PrintTo(const AcceptCase& c, std::ostream* os) { *os << c.name; }

class HandshakeAccepts : public HandshakeTest, public ::testing::WithParamInterface<AcceptCase> {};

TEST_P(HandshakeAccepts, Gets101) {
  const AcceptCase& tc = GetParam();
  RawClient c(port());
  const std::string key = make_ws_key();
  std::string req;
  if (tc.extra_headers.empty()) {
    req = handshake_request(tc.path, key);
  } else {
    req = "GET " + tc.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + tc.extra_headers +
          "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  }
  HttpHead h = c.request(req);
  ASSERT_EQ(h.status, 101) << h.status_line << " for GET " << tc.path.substr(0, 200);
  EXPECT_EQ(h.header("Sec-WebSocket-Accept"), expected_accept(key));
  expect_websocket_works(c);
}

INSTANTIATE_TEST_SUITE_P(
    Ids, HandshakeAccepts,
    ::testing::Values(AcceptCase{"OneChar", "/ws/a", ""},
                      AcceptCase{"MaxLength128", "/ws/" + std::string(128, 'x'), ""},
                      AcceptCase{"AllAllowedChars", "/ws/ABCXYZabcxyz0189_.:-", ""},
                      AcceptCase{"QueryStringIgnored", "/ws/room?token=abc&x=1", ""},
                      AcceptCase{"EmptyQueryString", "/ws/room?", ""},
                      AcceptCase{"UpgradeTokenCaseInsensitive", "/ws/room",
                                 "Upgrade: WebSocket\r\nConnection: Upgrade\r\n"},
                      AcceptCase{"ConnectionTokenList", "/ws/room",
                                 "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"},
                      AcceptCase{"HeadersJustUnder8KiB", "/ws/room",
                                 "Upgrade: websocket\r\nConnection: Upgrade\r\nX-Filler: " +
                                     std::string(7000, 'f') + "\r\n"}),
    [](const auto& info) { return info.param.name; });

struct RefuseCase {
  std::string name;
  std::string request;  // the complete raw request
  int status;
  std::string header_name;  // a header the refusal must carry ("" = none)
  std::string header_value;
};
void PrintTo(const RefuseCase& c, std::ostream* os) { *os << c.name; }

std::string request_with(const std::string& method, const std::string& path,
                         const std::string& headers) {
  return method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n";
}

const std::string kKey = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 sample: 16 bytes
const std::string kUpg = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
const std::string kVer = "Sec-WebSocket-Version: 13\r\n";
const std::string kKeyHdr = "Sec-WebSocket-Key: " + kKey + "\r\n";
const std::string kGood = kUpg + kKeyHdr + kVer;

class HandshakeRefuses : public HandshakeTest, public ::testing::WithParamInterface<RefuseCase> {};

TEST_P(HandshakeRefuses, WithStatusThenCloses) {
  const RefuseCase& tc = GetParam();
  RawClient c(port());
  HttpHead h = c.request(tc.request);
  ASSERT_NE(h.status, 0) << "no HTTP response head (connection " << (c.closed() ? "closed" : "open")
                         << ")";
  EXPECT_EQ(h.status, tc.status) << h.status_line;
  EXPECT_FALSE(h.header("Sec-WebSocket-Accept").has_value()) << "refusal must not upgrade";
  if (!tc.header_name.empty()) {
    EXPECT_EQ(h.header(tc.header_name), tc.header_value) << "header " << tc.header_name;
  }
  EXPECT_TRUE(c.wait_closed(5s)) << "server kept the connection open after refusing it";
}

INSTANTIATE_TEST_SUITE_P(
    BadRequests, HandshakeRefuses,
    ::testing::Values(
        RefuseCase{"EmptyId", request_with("GET", "/ws/", kGood), 400, "", ""},
        RefuseCase{"IdTooLong129", request_with("GET", "/ws/" + std::string(129, 'x'), kGood), 400,
                   "", ""},
        RefuseCase{"IdWithEncodedSpace", request_with("GET", "/ws/a%20b", kGood), 400, "", ""},
        RefuseCase{"IdWithSlash", request_with("GET", "/ws/x/y", kGood), 400, "", ""},
        RefuseCase{"IdWithBang", request_with("GET", "/ws/a!b", kGood), 400, "", ""},
        RefuseCase{"PathOutsideWs", request_with("GET", "/other/abc", kGood), 404, "", ""},
        RefuseCase{"PathPrefixLookalike", request_with("GET", "/wsx/abc", kGood), 404, "", ""},
        RefuseCase{"RootPath", request_with("GET", "/", kGood), 404, "", ""},
        RefuseCase{"MissingKey", request_with("GET", "/ws/a", kUpg + kVer), 400, "", ""},
        RefuseCase{"KeyNotBase64",
                   request_with("GET", "/ws/a",
                                kUpg + "Sec-WebSocket-Key: @@@@@@@@@@@@@@@@@@@@@@==\r\n" + kVer),
                   400, "", ""},
        RefuseCase{"KeyShort",
                   request_with("GET", "/ws/a", kUpg + "Sec-WebSocket-Key: abc\r\n" + kVer), 400,
                   "", ""},
        RefuseCase{"KeyOf15Bytes",
                   request_with("GET", "/ws/a",
                                kUpg + "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" + kVer),
                   400, "", ""},
        RefuseCase{"KeyOf18Bytes",
                   request_with("GET", "/ws/a",
                                kUpg + "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n" + kVer),
                   400, "", ""},
        RefuseCase{"Version8",
                   request_with("GET", "/ws/a", kUpg + kKeyHdr + "Sec-WebSocket-Version: 8\r\n"),
                   426, "Sec-WebSocket-Version", "13"},
        RefuseCase{"NoUpgradeHeader",
                   request_with("GET", "/ws/a", "Connection: Upgrade\r\n" + kKeyHdr + kVer), 426,
                   "", ""},
        RefuseCase{"UpgradeToOtherProtocol",
                   request_with("GET", "/ws/a",
                                "Upgrade: h2c\r\nConnection: Upgrade\r\n" + kKeyHdr + kVer),
                   426, "", ""},
        RefuseCase{"MethodPost", request_with("POST", "/ws/a", kGood + "Content-Length: 0\r\n"),
                   405, "", ""},
        RefuseCase{"MethodPut", request_with("PUT", "/ws/a", kGood + "Content-Length: 0\r\n"), 405,
                   "", ""},
        RefuseCase{
            "HeadersOver8KiB",
            request_with("GET", "/ws/a", kGood + "X-Filler: " + std::string(9000, 'f') + "\r\n"),
            431, "", ""},
        RefuseCase{"ManyHeadersOver8KiB",
                   request_with(
                       "GET", "/ws/a",
                       kGood +
                           [] {
                             std::string s;
                             for (int i = 0; i < 200; ++i) {
                               s +=
                                   "X-H" + std::to_string(i) + ": " + std::string(40, 'v') + "\r\n";
                             }
                             return s;
                           }()),
                   431, "", ""}),
    [](const auto& info) { return info.param.name; });

// Header names are case-insensitive (RFC 7230 3.2); proxies and HTTP/2 gateways lowercase them.
TEST_F(HandshakeTest, HeaderNamesAreCaseInsensitive) {
  for (bool upper : {false, true}) {
    SCOPED_TRACE(upper ? "UPPERCASE" : "lowercase");
    RawClient c(port());
    const std::string key = make_ws_key();
    const std::string req =
        upper ? "GET /ws/cases HTTP/1.1\r\nHOST: 127.0.0.1\r\nUPGRADE: websocket\r\n"
                "CONNECTION: Upgrade\r\nSEC-WEBSOCKET-KEY: " +
                    key + "\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n"
              : "GET /ws/cases HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n"
                "connection: upgrade\r\nsec-websocket-key: " +
                    key + "\r\nsec-websocket-version: 13\r\n\r\n";
    HttpHead h = c.request(req);
    ASSERT_EQ(h.status, 101) << h.status_line;
    EXPECT_EQ(h.header("Sec-WebSocket-Accept"), expected_accept(key));
    expect_websocket_works(c);
  }
}

// Not HTTP at all: refused with 400 and closed (not left hanging).
TEST_F(HandshakeTest, GarbageRequestIsRefused) {
  RawClient c(port());
  HttpHead h = c.request("HELLO THERE\r\n\r\n");
  EXPECT_EQ(h.status, 400) << h.status_line;
  EXPECT_TRUE(c.wait_closed(5s)) << "server kept the connection open";
}

// The RFC 6455 sample key must give the RFC's sample accept value.
TEST_F(HandshakeTest, RfcSampleKeyAccept) {
  RawClient c(port());
  HttpHead h = c.request(request_with("GET", "/ws/sample", kGood));
  ASSERT_EQ(h.status, 101) << h.status_line;
  EXPECT_EQ(h.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

// A refused handshake must not disturb other clients.
TEST_F(HandshakeTest, RefusalsDoNotAffectEstablishedConnections) {
  RawClient ok(port());
  ASSERT_TRUE(ok.upgrade("/ws/bystander"));
  for (int i = 0; i < 5; ++i) {
    RawClient bad(port());
    HttpHead h = bad.request(request_with("GET", "/ws/x/y", kGood));
    EXPECT_EQ(h.status, 400);
  }
  expect_websocket_works(ok);
}

}  // namespace
}  // namespace flowrelay::itest
