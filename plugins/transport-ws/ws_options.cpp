#include "ws_options.h"

#include "parse_number.h"

#include <cstdio>
#include <string_view>
#include <thread>

namespace flowrelay::ws {

using plugin::parse_number;

bool WsOptions::parse(const flowrelay_option* options, size_t n, char* err, size_t err_cap) {
  for (size_t i = 0; i < n; ++i) {
    const std::string_view key(options[i].key.ptr, options[i].key.len);
    const std::string_view value(options[i].value.ptr, options[i].value.len);
    auto bad = [&](const char* expected) {
      std::snprintf(err, err_cap, "transport-ws: option '%.*s' must be %s, got '%.*s'",
                    static_cast<int>(key.size()), key.data(), expected,
                    static_cast<int>(value.size()), value.data());
      return false;
    };
    if (key == "listen") {
      const auto colon = value.rfind(':');
      uint16_t port = 0;
      if (colon == std::string_view::npos || colon == 0 ||
          !parse_number<uint16_t>(value.substr(colon + 1), 1, 65535, port))
        return bad("host:port");
      std::string_view host = value.substr(0, colon);
      if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
      listen_host.assign(host);
      listen_port = port;
    } else if (key == "path") {
      if (value.size() < 2 || value.front() != '/' || value.back() != '/')
        return bad("a path that starts and ends with '/'");
      path.assign(value);
    } else if (key == "max_message_size") {
      if (!parse_number<uint64_t>(value, 1, uint64_t{1} << 30, max_message_size))
        return bad("a byte count from 1 to 1073741824");
    } else if (key == "io_threads") {
      if (!parse_number<unsigned>(value, 0, 256, io_threads)) return bad("a number from 0 to 256");
    } else if (key == "max_outbound_bytes") {
      if (!parse_number<uint64_t>(value, 1024, uint64_t{1} << 34, max_outbound_bytes))
        return bad("a byte count of at least 1024");
    } else if (key == "max_header_size") {
      if (!parse_number<uint32_t>(value, 256, 1 << 20, max_header_size))
        return bad("a byte count from 256 to 1048576");
    } else if (key == "handshake_timeout_ms") {
      if (!parse_number<uint32_t>(value, 1, 3600000, handshake_timeout_ms))
        return bad("milliseconds from 1 to 3600000");
    } else if (key == "close_timeout_ms") {
      if (!parse_number<uint32_t>(value, 1, 600000, close_timeout_ms))
        return bad("milliseconds from 1 to 600000");
    } else if (key == "backlog") {
      if (!parse_number<int>(value, 1, 1 << 20, backlog)) return bad("a number from 1 to 1048576");
    } else if (key == "max_conversation_id_length") {
      if (!parse_number<uint32_t>(value, 1, 1024, max_conversation_id_length))
        return bad("a length from 1 to 1024");
    } else if (key == "idle_timeout_ms") {
      if (!parse_number<uint32_t>(value, 0, 86400000, idle_timeout_ms))
        return bad("milliseconds from 0 (off) to 86400000");
    } else if (key == "max_connections") {
      if (!parse_number<uint64_t>(value, 0, uint64_t{1} << 32, max_connections))
        return bad("a number (0: unlimited)");
    } else if (key == "max_connections_per_ip") {
      if (!parse_number<uint64_t>(value, 0, uint64_t{1} << 32, max_connections_per_ip))
        return bad("a number (0: unlimited)");
    } else if (key == "publish_rate") {
      if (!parse_number<double>(value, 0, 1e9, publish_rate))
        return bad("messages per second (0: unlimited)");
    } else if (key == "publish_burst") {
      if (!parse_number<double>(value, 1, 1e9, publish_burst))
        return bad("a number of messages >= 1");
    } else if (key == "auth") {
      if (value != "none" && value != "jwt") return bad("none or jwt");
      access.auth.assign(value);
    } else if (key == "jwt.hs256_secret_file") {
      access.hs256_secret_file.assign(value);
    } else if (key == "jwt.rs256_public_key_file") {
      access.rs256_public_key_file.assign(value);
    } else if (key == "allowed_origins") {
      access.allowed_origins.clear();
      std::string_view rest = value;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) access.allowed_origins.emplace_back(item);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else if (key == "allow_missing_origin") {
      if (value == "true")
        access.allow_missing_origin = true;
      else if (value == "false")
        access.allow_missing_origin = false;
      else
        return bad("true or false");
    } else if (key == "config_dir") {
      config_dir.assign(value);
    } else if (key == "channel_prefix") {
      channel_prefix.assign(value);
    } else if (key == "echo") {
      if (value == "true")
        echo = true;
      else if (value == "false")
        echo = false;
      else
        return bad("true or false");
    } else {
      std::snprintf(err, err_cap,
                    "transport-ws: unknown option '%.*s' (known: listen, path, max_message_size, "
                    "io_threads, max_outbound_bytes, max_header_size, handshake_timeout_ms, "
                    "close_timeout_ms, backlog, max_conversation_id_length, idle_timeout_ms, "
                    "max_connections, max_connections_per_ip, publish_rate, publish_burst, auth, "
                    "jwt.hs256_secret_file, jwt.rs256_public_key_file, allowed_origins, "
                    "allow_missing_origin)",
                    static_cast<int>(key.size()), key.data());
      return false;
    }
  }
  if (io_threads == 0) io_threads = std::max(1u, std::thread::hardware_concurrency());
  if (access.auth == "jwt" && access.hs256_secret_file.empty() &&
      access.rs256_public_key_file.empty()) {
    std::snprintf(err, err_cap,
                  "transport-ws: auth: jwt needs jwt.hs256_secret_file or "
                  "jwt.rs256_public_key_file");
    return false;
  }
  if (publish_burst < 1) publish_burst = 1;
  for (std::string* file : {&access.hs256_secret_file, &access.rs256_public_key_file})
    if (!file->empty() && file->front() != '/' && !config_dir.empty())
      *file = config_dir + "/" + *file;
  return true;
}

}  // namespace flowrelay::ws
