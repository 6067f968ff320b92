#include "signature.h"

#include <Poco/DigestEngine.h>
#include <Poco/HMACEngine.h>
#include <Poco/SHA2Engine.h>

#include <chrono>

namespace flowrelay {

namespace {

// Poco 1.11's SHA2Engine lacks the BLOCK_SIZE / DIGEST_SIZE that HMACEngine reads; SHA-256's
// are 64 and 32 bytes (FIPS 180-4).
class Sha256Engine : public Poco::SHA2Engine {
 public:
  enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
  Sha256Engine() : Poco::SHA2Engine(SHA_256) {}
};

}  // namespace

std::string backend_signature(std::string_view secret, std::string_view timestamp,
                              std::string_view body) {
  Poco::HMACEngine<Sha256Engine> hmac(secret.data(), secret.size());
  hmac.update(timestamp.data(), timestamp.size());
  hmac.update('.');
  hmac.update(body.data(), body.size());
  return "sha256=" + Poco::DigestEngine::digestToHex(hmac.digest());
}

std::string unix_timestamp_now() {
  using namespace std::chrono;
  return std::to_string(duration_cast<seconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace flowrelay
