// Helpers for the security tests, on the shared test support: JWT keys and tokens, config
// rewriting for SIGHUP, raw handshakes from another loopback address, and a well-behaved pair
// of clients that keeps chatting (and timing its round trips) on a thread while a test attacks
// the daemon.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/itest.h"

namespace flowrelay::itest::sec {

// ---------------------------------------------------------------------------------------------
// Keys and tokens

// Key material generated once per test process (openssl genrsa / rsa -pubout) in a temp dir.
struct Keys {
  std::string dir;
  std::string rsa_private;        // PEM file: the key the daemon trusts (private half)
  std::string rsa_public;         // PEM file: its public half (jwt.rs256_public_key_file)
  std::string other_rsa_private;  // PEM file: a key the daemon does not know
  std::string rsa_public_pem;     // content of rsa_public (for the HS256 key-confusion attack)
};
const Keys& keys();

struct Claims {
  std::string sub = "alice";
  // Seconds from now; nullopt: the claim is left out.
  std::optional<long> exp_in = 3600;
  std::optional<long> nbf_in;
  std::optional<std::vector<std::string>> read = std::vector<std::string>{"*"};
  std::optional<std::vector<std::string>> publish = std::vector<std::string>{"*"};
};

std::string hs256_token(const Claims& claims, const std::string& secret);
std::string rs256_token(const Claims& claims, const std::string& private_key_file);
// An unsigned token: header {"alg":"none","typ":"JWT"}, the claims, and an empty signature.
std::string none_token(const Claims& claims);
// base64url without padding.
std::string b64url(const std::string& raw);

// ---------------------------------------------------------------------------------------------
// Daemon helpers

// Replaces every `from` in the daemon's config file by `to` (in place: same path) and sends
// SIGHUP; waits (bounded) for the reload to be logged ("reloaded" or "reload failed" after the
// previous count). Returns false if `from` was not in the file or no reload was logged.
bool rewrite_config_and_reload(Daemon& d, const std::string& from, const std::string& to,
                               Millis timeout = 5s);
// Counts occurrences of `needle` in `text`.
size_t count_of(const std::string& text, const std::string& needle);

// A complete masked text frame.
inline std::string text_frame(const std::string& payload) {
  FrameSpec s;
  s.payload = payload;
  return encode_frame(s);
}

// "Name: value\r\n" line for an Authorization: Bearer header.
inline std::string bearer(const std::string& token) {
  return "Authorization: Bearer " + token + "\r\n";
}

// A WebSocket handshake to 127.0.0.1:port sent from source address `source_ip` (another
// loopback address such as 127.0.0.2). Returns the response status (0: none). The socket stays
// open while the returned object lives.
class SourcedHandshake {
 public:
  SourcedHandshake(const std::string& source_ip, uint16_t port, const std::string& path);
  int status() const { return _status; }
  const std::string& error() const { return _error; }

 private:
  std::optional<RawClient> _client;
  int _status = 0;
  std::string _error;
};

// ---------------------------------------------------------------------------------------------
// A well-behaved pair of clients on one conversation, chatting on a background thread: the two
// take turns sending a numbered message, and each round waits until both received it (echo is
// on). Records the slowest round trip and anything unexpected.
class Chatter {
 public:
  Chatter(uint16_t port, const std::string& conversation);
  ~Chatter();
  Chatter(const Chatter&) = delete;
  Chatter& operator=(const Chatter&) = delete;

  struct Result {
    long rounds = 0;
    Millis max_rtt{0};
    std::vector<std::string> errors;
  };
  long rounds() const { return _rounds.load(); }
  // Stops the thread; the result of all rounds so far.
  Result stop();

 private:
  void run();
  WsClient _a, _b;
  std::atomic<bool> _stop{false};
  std::atomic<long> _rounds{0};
  Result _result;
  std::thread _thread;
};

}  // namespace flowrelay::itest::sec
