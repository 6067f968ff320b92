#include "access_policy.h"

#include <Poco/Crypto/RSAKey.h>
#include <Poco/JSON/Array.h>
#include <Poco/JWT/Token.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/String.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace flowrelay::stream {

namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot read ") + what + " " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool any_matches(const Poco::JWT::Token& token, const char* claim, std::string_view conversation) {
  const auto& payload = token.payload();
  if (!payload.has(claim)) return false;
  const Poco::JSON::Array::Ptr list = payload.getArray(claim);
  if (!list) return false;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Poco::Dynamic::Var v = list->get(static_cast<unsigned>(i));
    if (v.isString() && AccessPolicy::matches(v.extract<std::string>(), conversation)) return true;
  }
  return false;
}

}  // namespace

AccessPolicy::AccessPolicy(const AccessSettings& settings) : _settings(settings) {
  if (_settings.auth == "none") return;
  _signer = std::make_unique<Poco::JWT::Signer>();
  std::set<std::string> algorithms;
  if (!_settings.hs256_secret_file.empty()) {
    const std::string secret =
        Poco::trim(read_file(_settings.hs256_secret_file, "jwt.hs256_secret_file"));
    if (secret.size() < 16)
      throw std::runtime_error("jwt.hs256_secret_file " + _settings.hs256_secret_file +
                               " holds fewer than 16 bytes: too weak a secret");
    _signer->setHMACKey(secret);
    algorithms.insert(Poco::JWT::Signer::ALGO_HS256);
  }
  if (!_settings.rs256_public_key_file.empty()) {
    read_file(_settings.rs256_public_key_file, "jwt.rs256_public_key_file");  // clear error
    try {
      _signer->setRSAKey(
          new Poco::Crypto::RSAKey(_settings.rs256_public_key_file, std::string(), std::string()));
    } catch (const Poco::Exception& e) {
      throw std::runtime_error("jwt.rs256_public_key_file " + _settings.rs256_public_key_file +
                               ": not a PEM RSA public key (" + e.displayText() + ")");
    }
    algorithms.insert(Poco::JWT::Signer::ALGO_RS256);
  }
  if (algorithms.empty())
    throw std::runtime_error(
        "auth: jwt needs jwt.hs256_secret_file and/or jwt.rs256_public_key_file");
  // Only the algorithms with a configured key: a token cannot pick "none" or swap HS/RS.
  _signer->setAlgorithms(algorithms);
}

AccessPolicy::~AccessPolicy() = default;

bool AccessPolicy::matches(std::string_view pattern, std::string_view conversation) {
  if (pattern == "*") return true;
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return conversation.substr(0, pattern.size()) == pattern;
  }
  return pattern == conversation;
}

bool AccessPolicy::origin_allowed(std::string_view origin) const {
  if (_settings.allowed_origins.empty()) return true;
  for (const auto& allowed : _settings.allowed_origins)
    if (Poco::icompare(allowed, std::string(origin)) == 0) return true;
  return false;
}

AccessDecision AccessPolicy::check(std::string_view conversation,
                                   const Poco::Net::HTTPRequest& req) const {
  AccessDecision d;
  const std::string origin = req.get("Origin", "");
  if (origin.empty()) {
    if (!_settings.allow_missing_origin)
      return {403, "an Origin header is required", false, {}, {}};
  } else if (!origin_allowed(origin)) {
    return {403, "origin not allowed: " + origin, false, {}, {}};
  }
  if (!_signer) return d;

  std::string token;
  const std::string auth = req.get("Authorization", "");
  if (Poco::icompare(auth.substr(0, 7), "Bearer ") == 0) token = Poco::trim(auth.substr(7));
  if (token.empty()) {
    try {
      for (const auto& [k, v] : Poco::URI(req.getURI()).getQueryParameters())
        if (k == "token") token = v;
    } catch (const Poco::Exception&) {
      return {400, "malformed query string", false, {}, {}};
    }
  }
  if (token.empty())
    return {401, "a token is required (?token= or Authorization: Bearer)", false, {}, {}};
  return check_token(conversation, token);
}

AccessDecision AccessPolicy::check_token(std::string_view conversation,
                                         const std::string& jwt) const {
  Poco::JWT::Token token;
  try {
    if (!_signer->tryVerify(jwt, token)) return {401, "invalid token signature", false, {}, {}};
  } catch (const Poco::Exception& e) {
    return {401, "malformed token: " + e.message(), false, {}, {}};
  }
  const auto& payload = token.payload();
  const Poco::Timestamp now;
  if (!payload.has(Poco::JWT::Token::CLAIM_EXPIRATION))
    return {401, "the token has no exp claim", false, {}, {}};
  if (token.getExpiration() <= now) return {401, "token expired", false, {}, {}};
  if (payload.has(Poco::JWT::Token::CLAIM_NOT_BEFORE) && token.getNotBefore() > now)
    return {401, "token not valid yet (nbf)", false, {}, {}};
  AccessDecision d;
  d.subject = token.getSubject();
  if (!any_matches(token, "read", conversation))
    return {403, "the token does not grant this conversation", false, d.subject, {}};
  d.can_publish = any_matches(token, "publish", conversation);
  // The backend learns who publishes (publish proxy, join/leave events) from these claims.
  std::ostringstream claims;
  payload.stringify(claims);
  d.claims = claims.str();
  return d;
}

}  // namespace flowrelay::stream
