// Who may connect to which conversation: JWT connection tokens (HS256/RS256, Poco::JWT) and
// the browser Origin allow-list (against cross-site WebSocket hijacking).
#pragma once

#include <Poco/JWT/Signer.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace Poco::Net {
class HTTPRequest;
}

namespace flowrelay::stream {

struct AccessSettings {
  std::string auth = "none";                 // none | jwt
  std::string hs256_secret_file;             // jwt: shared secret (file content, trimmed)
  std::string rs256_public_key_file;         // jwt: PEM public key
  std::vector<std::string> allowed_origins;  // empty: any Origin
  bool allow_missing_origin = true;          // clients that send no Origin (non-browsers)
};

struct AccessDecision {
  int status = 0;  // 0: let in; else 401 (no/bad/expired token) or 403 (not allowed here)
  std::string reason;
  bool can_publish = true;
  std::string subject;  // the token's `sub`, for logs
  std::string claims;   // the verified token's payload as a JSON object ("" without a token)

  // The header lines (each ending CRLF) a refusal carries: a 401 names the scheme to
  // authenticate with (RFC 6750), the same for every transport.
  std::string_view refusal_headers() const {
    return status == 401 ? std::string_view("WWW-Authenticate: Bearer realm=\"flowrelay\"\r\n")
                         : std::string_view();
  }
};

class AccessPolicy {
 public:
  // Loads key files. Throws std::runtime_error with a message naming the file on failure.
  explicit AccessPolicy(const AccessSettings& settings);
  ~AccessPolicy();

  // Decides for a client asking to join `conversation` with this request. [any thread]
  AccessDecision check(std::string_view conversation, const Poco::Net::HTTPRequest& req) const;

  // A browser Origin (non-empty) the allow-list lets in (CORS answers echo only those).
  bool origin_allowed(std::string_view origin) const;

  // `pattern` is "*", a prefix ending in "*", or an exact conversation id.
  static bool matches(std::string_view pattern, std::string_view conversation);

 private:
  AccessDecision check_token(std::string_view conversation, const std::string& token) const;

  AccessSettings _settings;
  std::unique_ptr<Poco::JWT::Signer> _signer;  // null when auth is none
};

}  // namespace flowrelay::stream
