// The daemon's configuration: parsed from YAML, validated, with every error located.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend_config.h"

namespace flowrelay {

// A configuration error with its place in the file (line/column 1-based; 0 when unknown).
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, int line, int column, const std::string& message);
  const std::string& file() const { return _file; }
  int line() const { return _line; }
  int column() const { return _column; }

 private:
  std::string _file;
  int _line;
  int _column;
};

// A plugin section: `plugin:` plus the options handed to the plugin as key/value strings.
struct PluginSection {
  std::string plugin;                                        // as written in the file
  std::string path;                                          // resolved .so path
  std::vector<std::pair<std::string, std::string>> options;  // nested maps flattened "a.b"
  int line = 0;                                              // where the section starts
  int column = 0;
  std::vector<std::pair<int, int>> option_marks;  // line/column of each option
  std::string where;                              // "transports[0]", "broker"

  // The place to blame for a plugin's error message: the option it names in quotes, if any,
  // else the section itself.
  std::pair<int, int> locate(const std::string& message) const;
};

struct Config {
  std::string file;  // absolute path of the file read
  std::string plugin_dir;
  std::string log_level = "information";
  std::string log_format = "text";  // text | json
  uint32_t shutdown_timeout_ms = 5000;
  std::vector<PluginSection> transports;
  PluginSection broker;
  std::string channel_prefix = "chat:";
  bool echo = true;
  // Reply liveness (channels.reply_stall_ms / reply_timeout_ms; 0 disables): an open reply
  // without a delta is announced as stalled, then sealed with reason producer_lost.
  uint32_t reply_stall_ms = 10000;
  uint32_t reply_timeout_ms = 60000;
  std::string http_listen = "127.0.0.1:9090";  // empty: no HTTP listener
  std::string api_key;                         // POST /api/publish; empty: the API is off
  uint64_t http_max_body_bytes = 8 * 1024 * 1024;
  uint32_t publish_timeout_ms = 5000;
  unsigned http_threads = 1;                // event-loop threads of the HTTP listener
  uint32_t http_header_timeout_ms = 10000;  // a request's head and body must arrive by then: 408
  uint32_t http_idle_timeout_ms = 60000;    // keep-alive connections without a request: closed
  uint32_t http_max_connections = 16384;    // past it new connections are closed at once
  bool http_demo = false;                   // serve the demo page under /demo/
  size_t max_conversation_id_length = 128;
  BackendConfig backend;  // backend: the publish/connect proxy and join/leave events

  // Reads and validates `path`. Throws ConfigError.
  static Config load(const std::string& path);
  // Parses YAML text as if read from `path` (relative paths resolve against its folder).
  static Config parse(const std::string& yaml_text, const std::string& path);
};

// "host:port" with a numeric port 1-65535 ("[::1]:80" for IPv6). Returns false if malformed.
bool split_host_port(const std::string& text, std::string& host, uint16_t& port);

}  // namespace flowrelay
