// What transport-ws tells the backend about a client from its handshake: the verified JWT's
// claims as `user` (a JSON object), and the Cookie and Authorization headers for the connect
// proxy.
#include <gtest/gtest.h>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>

#include <filesystem>
#include <fstream>

#include "access_policy.h"
#include "handshake.h"
#include "session_test_host.h"

namespace flowrelay::ws {
namespace {

TEST(ClientIdentity, JwtClaimsBecomeTheUserAndHeadersArePassedOn) {
  namespace fs = std::filesystem;
  const fs::path secret = fs::temp_directory_path() / "flowrelay-unit-identity.secret";
  const std::string key = "0123456789abcdef0123456789abcdef";
  std::ofstream(secret) << key << "\n";
  AccessSettings settings;
  settings.auth = "jwt";
  settings.hs256_secret_file = secret.string();
  const AccessPolicy policy(settings);
  fs::remove(secret);

  Poco::JWT::Token token;
  token.setExpiration(Poco::Timestamp() + Poco::Timespan(3600, 0));
  token.setSubject("user-7");
  Poco::JSON::Array::Ptr rooms = new Poco::JSON::Array;
  rooms->add("*");
  token.payload().set("read", rooms);
  token.payload().set("name", "Zoë");
  const std::string jwt = Poco::JWT::Signer(key).sign(token, Poco::JWT::Signer::ALGO_HS256);

  const auto r = accept_handshake(
      testing::upgrade_request("/ws/42", "Authorization: Bearer " + jwt + "\r\nCookie: s=1\r\n"),
      "/ws/", 128, &policy);
  ASSERT_EQ(r.status, 101) << r.response;
  const auto user = Poco::JSON::Parser().parse(r.user).extract<Poco::JSON::Object::Ptr>();
  EXPECT_EQ(user->getValue<std::string>("sub"), "user-7");
  EXPECT_EQ(user->getValue<std::string>("name"), "Zoë");
  EXPECT_TRUE(user->has("exp"));
  EXPECT_EQ(r.cookie, "s=1");
  EXPECT_EQ(r.authorization, "Bearer " + jwt);

  const auto anonymous = accept_handshake(testing::upgrade_request("/ws/42"), "/ws/");
  ASSERT_EQ(anonymous.status, 101);
  EXPECT_EQ(anonymous.user, "") << "no token: anonymous";
  EXPECT_EQ(anonymous.cookie, "");
}

}  // namespace
}  // namespace flowrelay::ws
