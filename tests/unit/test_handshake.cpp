// The HTTP upgrade: every refusal has its status, the accept key follows RFC 6455 4.2.2.
#include <gtest/gtest.h>

#include <Poco/JSON/Array.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>

#include <filesystem>
#include <fstream>

#include "access_policy.h"
#include "handshake.h"

using flowrelay::ws::accept_handshake;
using flowrelay::ws::HandshakeResult;

namespace {

using namespace std::string_literals;

std::string request(const std::string& target, const std::string& extra = "",
                    const std::string& key = "dGhlIHNhbXBsZSBub25jZQ==",
                    const std::string& version = "13", const std::string& method = "GET") {
  return method + " " + target +
         " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
         "Sec-WebSocket-Key: " +
         key + "\r\nSec-WebSocket-Version: " + version + "\r\n" + extra + "\r\n";
}

const std::string kOffer = "Sec-WebSocket-Protocol: flowrelay.v1\r\n";
const std::string kChosen = "\r\nSec-WebSocket-Protocol: flowrelay.v1\r\n";

bool chose_envelope(const HandshakeResult& r) {
  return r.response.find(kChosen) != std::string::npos;
}

// The 400 of a refused resume, with what the server said.
void expect_refused(const std::string& target, const std::string& extra = kOffer) {
  const auto r = accept_handshake(request(target, extra), "/ws/");
  EXPECT_EQ(r.status, 400) << target << " was not refused: " << r.response;
  EXPECT_FALSE(chose_envelope(r)) << target;
}

}  // namespace

TEST(Handshake, AcceptKeyOfRfc6455Example) {
  EXPECT_EQ(flowrelay::ws::websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Handshake, ValidUpgradeGets101WithAccept) {
  const auto r = accept_handshake(request("/ws/42?lang=en"), "/ws/");
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

TEST(HandshakeEnvelope, SubprotocolOfferedAloneIsChosen) {
  const auto r = accept_handshake(request("/ws/42", kOffer), "/ws/");
  ASSERT_EQ(r.status, 101) << r.response;
  EXPECT_TRUE(r.envelope);
  EXPECT_TRUE(chose_envelope(r)) << "the 101 must name the subprotocol: " << r.response;
  EXPECT_FALSE(r.resume);
  EXPECT_EQ(r.response.substr(r.response.size() - 4), "\r\n\r\n");
}

TEST(HandshakeEnvelope, SubprotocolOfferedAmongOthersIsChosen) {
  for (const char* offer :
       {"chat, flowrelay.v1", "flowrelay.v1,superchat", "chat ,  flowrelay.v1 , superchat"}) {
    const auto r =
        accept_handshake(request("/ws/42", "Sec-WebSocket-Protocol: "s + offer + "\r\n"), "/ws/");
    ASSERT_EQ(r.status, 101) << offer;
    EXPECT_TRUE(r.envelope) << offer;
    EXPECT_TRUE(chose_envelope(r)) << offer << ": " << r.response;
    EXPECT_EQ(r.response.find("chat"), std::string::npos)
        << "only flowrelay.v1 may be answered: " << r.response;
  }
}

TEST(HandshakeEnvelope, NoSubprotocolHeaderWhenNotOffered) {
  for (const std::string& extra :
       {std::string(), "Sec-WebSocket-Protocol: chat\r\n"s,
        "Sec-WebSocket-Protocol: flowrelay.v2\r\n"s, "Sec-WebSocket-Protocol: flowrelay\r\n"s}) {
    const auto r = accept_handshake(request("/ws/42", extra), "/ws/");
    ASSERT_EQ(r.status, 101) << extra;
    EXPECT_FALSE(r.envelope) << extra;
    EXPECT_EQ(r.response.find("Sec-WebSocket-Protocol"), std::string::npos)
        << "raw mode must not answer a subprotocol (offered: '" << extra << "'): " << r.response;
  }
}

TEST(HandshakeResume, SinceAndEpochAreParsed) {
  const auto r = accept_handshake(request("/ws/42?since=117&epoch=m3k9x2-1f", kOffer), "/ws/");
  ASSERT_EQ(r.status, 101) << r.response;
  EXPECT_EQ(r.conversation, "42");
  EXPECT_TRUE(r.envelope);
  EXPECT_TRUE(r.resume);
  EXPECT_EQ(r.since, 117u);
  EXPECT_EQ(r.epoch, "m3k9x2-1f");
  EXPECT_TRUE(chose_envelope(r));
}

TEST(HandshakeResume, SinceZeroWithoutEpochAsksForTheWholeHistory) {
  const auto r = accept_handshake(request("/ws/42?since=0", kOffer), "/ws/");
  ASSERT_EQ(r.status, 101) << r.response;
  EXPECT_TRUE(r.resume);
  EXPECT_EQ(r.since, 0u);
  EXPECT_EQ(r.epoch, "");
}

TEST(HandshakeResume, LargestOffsetAndPercentEncodedEpoch) {
  const auto r =
      accept_handshake(request("/ws/42?epoch=a%3Ab&since=18446744073709551615", kOffer), "/ws/");
  ASSERT_EQ(r.status, 101) << r.response;
  EXPECT_EQ(r.since, 18446744073709551615u);
  EXPECT_EQ(r.epoch, "a:b");
}

TEST(HandshakeResume, NoQueryIsNoResume) {
  const auto r = accept_handshake(request("/ws/42?lang=en", kOffer), "/ws/");
  ASSERT_EQ(r.status, 101);
  EXPECT_FALSE(r.resume);
  EXPECT_EQ(r.since, 0u);
}

TEST(HandshakeResume, SinceNeedsTheSubprotocol) {
  const auto r = accept_handshake(request("/ws/42?since=5"), "/ws/");
  EXPECT_EQ(r.status, 400) << "raw clients have no offsets: " << r.response;
  EXPECT_NE(r.response.find("flowrelay.v1"), std::string::npos)
      << "the 400 should say what is missing: " << r.response;
  expect_refused("/ws/42?since=5&epoch=e", "Sec-WebSocket-Protocol: chat\r\n");
}

TEST(HandshakeResume, SinceMustBeADecimalOffset) {
  for (const char* since : {"abc", "", "-1", "99999999999999999999999", "18446744073709551616",
                            "+1", "1x", "0x10", "1.5", "%201", "1%20"})
    expect_refused("/ws/42?since="s + since);
  expect_refused("/ws/42?since");
}

TEST(HandshakeResume, EpochNeedsSince) {
  expect_refused("/ws/42?epoch=m3k9x2-1f");
  expect_refused("/ws/42?epoch=");
}

TEST(HandshakeResume, EpochLongerThan64IsRefused) {
  const auto ok =
      accept_handshake(request("/ws/42?since=1&epoch=" + std::string(64, 'e'), kOffer), "/ws/");
  EXPECT_EQ(ok.status, 101) << "64 characters are allowed: " << ok.response;
  EXPECT_EQ(ok.epoch, std::string(64, 'e'));
  expect_refused("/ws/42?since=1&epoch=" + std::string(65, 'e'));
}

TEST(HandshakeResume, TokenQueryParameterAlongside) {
  const auto r =
      accept_handshake(request("/ws/42?token=abc.def.ghi&since=9&epoch=e", kOffer), "/ws/");
  ASSERT_EQ(r.status, 101) << r.response;
  EXPECT_TRUE(r.resume);
  EXPECT_EQ(r.since, 9u);
  EXPECT_EQ(r.epoch, "e");
}

// With auth: jwt the token is read from the same query string as since and epoch.
TEST(HandshakeResume, JwtInTheQueryAlongsideResume) {
  namespace fs = std::filesystem;
  const fs::path secret = fs::temp_directory_path() / "flowrelay-unit-hs256.secret";
  const std::string key = "0123456789abcdef0123456789abcdef";
  std::ofstream(secret) << key << "\n";
  flowrelay::ws::AccessSettings settings;
  settings.auth = "jwt";
  settings.hs256_secret_file = secret.string();
  const flowrelay::ws::AccessPolicy policy(settings);
  fs::remove(secret);

  Poco::JWT::Token token;
  token.setExpiration(Poco::Timestamp() + Poco::Timespan(3600, 0));
  Poco::JSON::Array::Ptr read = new Poco::JSON::Array;
  read->add("4*");
  token.payload().set("read", read);
  const std::string jwt = Poco::JWT::Signer(key).sign(token, Poco::JWT::Signer::ALGO_HS256);

  const auto r = accept_handshake(request("/ws/42?since=3&token=" + jwt + "&epoch=e1", kOffer),
                                  "/ws/", 128, &policy);
  ASSERT_EQ(r.status, 101) << r.response;
  EXPECT_FALSE(r.can_publish) << "the token grants read only";
  EXPECT_TRUE(r.resume);
  EXPECT_EQ(r.since, 3u);
  EXPECT_EQ(r.epoch, "e1");
  EXPECT_TRUE(chose_envelope(r));

  EXPECT_EQ(
      accept_handshake(request("/ws/42?since=3&epoch=e1", kOffer), "/ws/", 128, &policy).status,
      401)
      << "no token";
  EXPECT_EQ(
      accept_handshake(request("/ws/42?since=x&token=" + jwt, kOffer), "/ws/", 128, &policy).status,
      400)
      << "a valid token does not excuse a bad since";
}
