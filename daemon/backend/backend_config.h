// The `backend:` section: where the daemon asks the application's backend about client
// messages (publish proxy), handshakes (connect proxy) and joins/leaves (events).
#pragma once

#include <cstdint>
#include <string>

namespace YAML {
class Node;
}

namespace flowrelay {

struct BackendConfig {
  std::string publish_url;  // empty: client messages are published directly
  std::string connect_url;  // empty: the transport's own policy admits clients
  std::string events_url;   // empty: no join/leave events
  uint32_t timeout_ms = 5000;
  uint32_t max_in_flight = 64;          // concurrent backend requests (worker threads)
  uint32_t max_queued = 4096;           // requests waiting for the backend, node-wide
  uint64_t max_answer_bytes = 1 << 20;  // a larger answer is a bad answer
  uint32_t events_batch_ms = 1000;
  std::string secret_file;  // resolved path
  std::string secret;       // its content, trailing whitespace trimmed

  bool any_url() const {
    return !publish_url.empty() || !connect_url.empty() || !events_url.empty();
  }
};

// Parses the section (a YAML mapping) of `file`; relative paths resolve against `dir`. Reads
// the secret file. Throws ConfigError at the offending node.
BackendConfig parse_backend_config(const YAML::Node& section, const std::string& file,
                                   const std::string& dir);

// Why `url` cannot be a backend URL ("" when it can): http://host[:port]/path only.
std::string backend_url_problem(const std::string& url);

}  // namespace flowrelay
