#include "stream_options.h"

#include <algorithm>
#include <thread>

namespace flowrelay::stream {

namespace {

using sdk::Reload;

bool parse_listen(std::string_view value, StreamOptions& out) {
  const auto colon = value.rfind(':');
  uint16_t port = 0;
  if (colon == std::string_view::npos || colon == 0 ||
      !sdk::parse_number<uint16_t>(value.substr(colon + 1), 1, 65535, port))
    return false;
  std::string_view host = value.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  out.listen_host.assign(host);
  out.listen_port = port;
  return true;
}

bool parse_path(std::string_view value, StreamOptions& out) {
  if (value.size() < 2 || value.front() != '/' || value.back() != '/') return false;
  out.path.assign(value);
  return true;
}

bool parse_auth(std::string_view value, StreamOptions& out) {
  if (value != "none" && value != "jwt") return false;
  out.access.auth.assign(value);
  return true;
}

bool parse_hs256(std::string_view value, StreamOptions& out) {
  out.access.hs256_secret_file.assign(value);
  return true;
}

bool parse_rs256(std::string_view value, StreamOptions& out) {
  out.access.rs256_public_key_file.assign(value);
  return true;
}

bool parse_origins(std::string_view value, StreamOptions& out) {
  out.access.allowed_origins.clear();
  while (!value.empty()) {
    const auto comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.access.allowed_origins.emplace_back(item);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
  }
  return true;
}

bool parse_allow_missing_origin(std::string_view value, StreamOptions& out) {
  if (value != "true" && value != "false") return false;
  out.access.allow_missing_origin = value == "true";
  return true;
}

constexpr double k1GiB = double(uint64_t{1} << 30);
constexpr double k16GiB = double(uint64_t{1} << 34);
constexpr double k4G = double(uint64_t{1} << 32);

}  // namespace

std::vector<sdk::Option<StreamOptions>> stream_option_rows(const char* listen, const char* path) {
  return {
      {"listen", &parse_listen, listen, 0, 0, Reload::Restart, "host:port",
       "address to listen on ([v6]:port for IPv6)"},
      {"path", &parse_path, path, 0, 0, Reload::Restart, "a path that starts and ends with '/'",
       "the conversation id follows it"},
      {"max_message_size", &StreamOptions::max_message_size, "1048576", 1, k1GiB, Reload::Live,
       "a byte count from 1 to 1073741824", "larger client messages: close 1009"},
      {"io_threads", &StreamOptions::io_threads, "0", 0, 256, Reload::Restart,
       "a number from 0 to 256", "event loops; 0: one per core"},
      {"max_outbound_bytes", &StreamOptions::max_outbound_bytes, "8388608", 1024, k16GiB,
       Reload::Live, "a byte count of at least 1024",
       "a client with more queued is closed 1008 (slow consumer)"},
      {"max_header_size", &StreamOptions::max_header_size, "8192", 256, 1 << 20, Reload::Live,
       "a byte count from 256 to 1048576", "larger upgrade requests: 431"},
      {"handshake_timeout_ms", &StreamOptions::handshake_timeout_ms, "10000", 1, 3600000,
       Reload::Live, "milliseconds from 1 to 3600000",
       "headers and the broker's confirmation within this"},
      {"close_timeout_ms", &StreamOptions::close_timeout_ms, "2000", 1, 600000, Reload::Live,
       "milliseconds from 1 to 600000", "wait for the peer to close after our close frame"},
      {"backlog", &StreamOptions::backlog, "4096", 1, 1 << 20, Reload::Restart,
       "a number from 1 to 1048576", "listen() backlog"},
      {"max_conversation_id_length", &StreamOptions::max_conversation_id_length, "128", 1, 1024,
       Reload::Live, "a length from 1 to 1024", "longer ids: 400"},
      {"max_connections", &StreamOptions::max_connections, "0", 0, k4G, Reload::Live,
       "a number (0: unlimited)", "past it: 503"},
      {"max_connections_per_ip", &StreamOptions::max_connections_per_ip, "0", 0, k4G, Reload::Live,
       "a number (0: unlimited)", "past it: 429"},
      {"publish_rate", &StreamOptions::publish_rate, "1000", 0, 1e9, Reload::Live,
       "messages per second (0: unlimited)", "per connection; faster: close 1008"},
      {"publish_burst", &StreamOptions::publish_burst, "1000", 1, 1e9, Reload::Live,
       "a number of messages >= 1", "token bucket size of publish_rate"},
      {"auth", &parse_auth, "none", 0, 0, Reload::Live, "none or jwt",
       "jwt: a connection token is required"},
      {"jwt.hs256_secret_file", &parse_hs256, nullptr, 0, 0, Reload::Live, nullptr,
       "HS256 shared secret (relative: to the config file's folder)"},
      {"jwt.rs256_public_key_file", &parse_rs256, nullptr, 0, 0, Reload::Live, nullptr,
       "RS256 public key, PEM (relative: to the config file's folder)"},
      {"allowed_origins", &parse_origins, nullptr, 0, 0, Reload::Live, nullptr,
       "comma-separated Origin allow-list; empty: any"},
      {"allow_missing_origin", &parse_allow_missing_origin, "true", 0, 0, Reload::Live,
       "true or false", "let in clients that send no Origin (non-browsers)"},
  };
}

void finish_stream_options(StreamOptions& o, std::string_view plugin, std::string_view config_dir) {
  if (o.io_threads == 0) o.io_threads = std::max(1u, std::thread::hardware_concurrency());
  if (o.access.auth == "jwt" && o.access.hs256_secret_file.empty() &&
      o.access.rs256_public_key_file.empty())
    throw sdk::OptionError(
        std::string(plugin) +
        ": 'auth': jwt needs jwt.hs256_secret_file or jwt.rs256_public_key_file");
  for (std::string* file : {&o.access.hs256_secret_file, &o.access.rs256_public_key_file})
    if (!file->empty() && file->front() != '/' && !config_dir.empty())
      *file = std::string(config_dir) + "/" + *file;
}

}  // namespace flowrelay::stream
