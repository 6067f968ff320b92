#include "config.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "plugin_loader.h"

namespace flowrelay {

namespace fs = std::filesystem;

ConfigError::ConfigError(std::string file, int line, int column, const std::string& message)
    : std::runtime_error(
          file +
          (line > 0 ? ":" + std::to_string(line) + ":" + std::to_string(column) : std::string()) +
          ": " + message),
      _file(std::move(file)),
      _line(line),
      _column(column) {}

bool split_host_port(const std::string& text, std::string& host, uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return false;  // IPv6 without brackets
  }
  unsigned value = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last || value == 0 || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

std::pair<int, int> PluginSection::locate(const std::string& message) const {
  for (std::size_t i = 0; i < options.size(); ++i)
    if (message.find("'" + options[i].first + "'") != std::string::npos) return option_marks[i];
  return {line, column};
}

namespace {

// Wraps the file name so every error can point at a node.
struct Reader {
  std::string file;

  [[noreturn]] void fail(const YAML::Node& node, const std::string& message) const {
    const auto mark = node.Mark();
    if (mark.is_null()) throw ConfigError(file, 0, 0, message);
    throw ConfigError(file, mark.line + 1, mark.column + 1, message);
  }

  void expect_map(const YAML::Node& node, const std::string& what) const {
    if (!node.IsMap()) fail(node, what + " must be a mapping");
  }

  std::string scalar(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) fail(node, what + " must be a scalar value");
    return node.Scalar();
  }

  template <typename T>
  T number(const YAML::Node& node, const std::string& what, T min, T max) const {
    const std::string text = scalar(node, what);
    T value{};
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size())
      fail(node, what + " must be a whole number, got '" + text + "'");
    if (value < min || value > max)
      fail(node, what + " must be between " + std::to_string(min) + " and " + std::to_string(max) +
                     ", got " + text);
    return value;
  }

  bool boolean(const YAML::Node& node, const std::string& what) const {
    const std::string text = scalar(node, what);
    if (text == "true" || text == "yes" || text == "on") return true;
    if (text == "false" || text == "no" || text == "off") return false;
    fail(node, what + " must be true or false, got '" + text + "'");
  }

  // Adds a plugin section's options; nested maps become "outer.inner".
  void add_options(const YAML::Node& map, const std::string& prefix, PluginSection& out) const {
    for (const auto& kv : map) {
      const std::string key = prefix + scalar(kv.first, "an option name");
      if (prefix.empty() && key == "plugin") continue;
      if (kv.second.IsMap()) {
        add_options(kv.second, key + ".", out);
        continue;
      }
      if (!kv.second.IsScalar() && !kv.second.IsNull())
        fail(kv.second, out.where + "." + key + " must be a scalar or a mapping");
      out.options.emplace_back(key, kv.second.IsNull() ? "" : kv.second.Scalar());
      out.option_marks.emplace_back(kv.first.Mark().line + 1, kv.first.Mark().column + 1);
    }
  }

  PluginSection plugin_section(const YAML::Node& node, const std::string& what) const {
    expect_map(node, what);
    PluginSection section;
    section.line = node.Mark().line + 1;
    section.column = node.Mark().column + 1;
    if (!node["plugin"]) fail(node, what + ": missing key 'plugin'");
    section.plugin = scalar(node["plugin"], what + ".plugin");
    if (section.plugin.empty()) fail(node["plugin"], what + ".plugin must not be empty");
    section.where = what;
    add_options(node, "", section);
    return section;
  }

  void known_keys(const YAML::Node& map, const std::string& what,
                  const std::set<std::string>& keys) const {
    for (const auto& kv : map) {
      const std::string key = scalar(kv.first, "a key");
      if (!keys.count(key)) {
        std::string list;
        for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
        fail(kv.first, "unknown key '" + key + "' in " + what + " (expected one of: " + list + ")");
      }
    }
  }
};

const std::set<std::string> kLogLevels = {"fatal",  "critical",    "error", "warning",
                                          "notice", "information", "debug", "trace"};

}  // namespace

Config Config::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path, 0, 0, "cannot open configuration file");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

Config Config::parse(const std::string& yaml_text, const std::string& path) {
  const std::string file = fs::absolute(path).lexically_normal().string();
  const std::string dir = fs::path(file).parent_path().string();
  Reader r{file};
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(file, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (!root.IsMap()) throw ConfigError(file, 0, 0, "the configuration must be a YAML mapping");

  Config c;
  c.file = file;
  r.known_keys(root, "the top level",
               {"plugin_dir", "log", "shutdown_timeout_ms", "transports", "broker", "channels",
                "http", "backend"});
  auto resolve_dir = [&](const std::string& p) {
    fs::path fp(p);
    return (fp.is_relative() ? fs::path(dir) / fp : fp).lexically_normal().string();
  };
  c.plugin_dir = resolve_dir(FLOWRELAY_DEFAULT_PLUGIN_DIR);
  if (auto n = root["plugin_dir"]) c.plugin_dir = resolve_dir(r.scalar(n, "plugin_dir"));

  if (auto log = root["log"]) {
    r.expect_map(log, "log");
    r.known_keys(log, "log", {"level", "format"});
    if (auto n = log["level"]) {
      c.log_level = r.scalar(n, "log.level");
      if (!kLogLevels.count(c.log_level))
        r.fail(n,
               "log.level must be one of fatal, critical, error, warning, notice, "
               "information, debug, trace; got '" +
                   c.log_level + "'");
    }
    if (auto n = log["format"]) {
      c.log_format = r.scalar(n, "log.format");
      if (c.log_format != "text" && c.log_format != "json")
        r.fail(n, "log.format must be text or json, got '" + c.log_format + "'");
    }
  }
  if (auto n = root["shutdown_timeout_ms"])
    c.shutdown_timeout_ms = r.number<uint32_t>(n, "shutdown_timeout_ms", 0, 600000);

  auto transports = root["transports"];
  if (!transports) throw ConfigError(file, 0, 0, "missing key 'transports'");
  if (!transports.IsSequence() || transports.size() == 0)
    r.fail(transports, "transports must be a non-empty list");
  for (std::size_t i = 0; i < transports.size(); ++i)
    c.transports.push_back(
        r.plugin_section(transports[i], "transports[" + std::to_string(i) + "]"));

  auto broker = root["broker"];
  if (!broker) throw ConfigError(file, 0, 0, "missing key 'broker'");
  c.broker = r.plugin_section(broker, "broker");

  if (auto ch = root["channels"]) {
    r.expect_map(ch, "channels");
    r.known_keys(ch, "channels", {"prefix", "echo", "reply_stall_ms", "reply_timeout_ms"});
    if (auto n = ch["prefix"]) c.channel_prefix = r.scalar(n, "channels.prefix");
    if (auto n = ch["echo"]) c.echo = r.boolean(n, "channels.echo");
    // Up to a day: a longer wait is no liveness check (0 turns it off).
    if (auto n = ch["reply_stall_ms"])
      c.reply_stall_ms = r.number<uint32_t>(n, "channels.reply_stall_ms", 0, 86400000);
    if (auto n = ch["reply_timeout_ms"])
      c.reply_timeout_ms = r.number<uint32_t>(n, "channels.reply_timeout_ms", 0, 86400000);
    // A stall announced after the reply was sealed would never be seen.
    if (c.reply_stall_ms != 0 && c.reply_timeout_ms != 0 && c.reply_stall_ms >= c.reply_timeout_ms)
      r.fail(ch["reply_stall_ms"] ? ch["reply_stall_ms"] : ch["reply_timeout_ms"],
             "channels.reply_stall_ms (" + std::to_string(c.reply_stall_ms) +
                 ") must be less than channels.reply_timeout_ms (" +
                 std::to_string(c.reply_timeout_ms) + "), or 0 to disable stall notices");
  }
  if (auto http = root["http"]) {
    r.expect_map(http, "http");
    r.known_keys(http, "http",
                 {"listen", "api_key", "api_key_file", "max_body_bytes", "publish_timeout_ms",
                  "threads", "header_timeout_ms", "idle_timeout_ms", "max_connections", "demo"});
    if (auto n = http["listen"]) {
      c.http_listen = n.IsNull() ? "" : r.scalar(n, "http.listen");
      std::string host;
      uint16_t port = 0;
      if (!c.http_listen.empty() && c.http_listen != "off" &&
          !split_host_port(c.http_listen, host, port))
        r.fail(n, "http.listen must be host:port (or off), got '" + c.http_listen + "'");
      if (c.http_listen == "off") c.http_listen.clear();
    }
    if (http["api_key"] && http["api_key_file"])
      r.fail(http["api_key_file"], "set http.api_key or http.api_key_file, not both");
    if (auto n = http["api_key"]) c.api_key = r.scalar(n, "http.api_key");
    if (auto n = http["api_key_file"]) {
      const std::string key_file = resolve_dir(r.scalar(n, "http.api_key_file"));
      std::ifstream in(key_file);
      if (!in) r.fail(n, "http.api_key_file: cannot read " + key_file);
      std::stringstream text;
      text << in.rdbuf();
      c.api_key = text.str();
      while (!c.api_key.empty() && (c.api_key.back() == '\n' || c.api_key.back() == '\r'))
        c.api_key.pop_back();
      if (c.api_key.empty()) r.fail(n, "http.api_key_file: " + key_file + " is empty");
    }
    if (auto n = http["api_key"] ? http["api_key"] : http["api_key_file"];
        n && c.api_key.size() < 8)
      r.fail(n, std::string(http["api_key"] ? "http.api_key" : "http.api_key_file: the key") +
                    " must be at least 8 characters");
    if (auto n = http["max_body_bytes"])
      c.http_max_body_bytes = r.number<uint64_t>(n, "http.max_body_bytes", 1, 1ull << 30);
    if (auto n = http["publish_timeout_ms"])
      c.publish_timeout_ms = r.number<uint32_t>(n, "http.publish_timeout_ms", 1, 600000);
    if (auto n = http["threads"]) c.http_threads = r.number<unsigned>(n, "http.threads", 1, 64);
    if (auto n = http["header_timeout_ms"])
      c.http_header_timeout_ms = r.number<uint32_t>(n, "http.header_timeout_ms", 100, 3600000);
    if (auto n = http["idle_timeout_ms"])
      c.http_idle_timeout_ms = r.number<uint32_t>(n, "http.idle_timeout_ms", 100, 86400000);
    if (auto n = http["max_connections"])
      c.http_max_connections = r.number<uint32_t>(n, "http.max_connections", 1, 1000000);
    if (auto n = http["demo"]) c.http_demo = r.boolean(n, "http.demo");
  }
  if (auto n = root["backend"]) c.backend = parse_backend_config(n, file, dir);
  // The publish API checks conversation ids as the (first) transport does.
  // (An invalid value is left for the transport to report with its own message.)
  for (const auto& [key, value] : c.transports.front().options)
    if (key == "max_conversation_id_length")
      std::from_chars(value.data(), value.data() + value.size(), c.max_conversation_id_length);

  // Every plugin named must exist now, so a typo fails at --check-config, not at runtime.
  auto check_plugin = [&](PluginSection& s, const YAML::Node& node) {
    s.path = resolve_plugin_path(s.plugin, c.plugin_dir, dir);
    std::error_code ec;
    if (!fs::exists(s.path, ec))
      r.fail(node["plugin"], "plugin '" + s.plugin + "' not found: no file " + s.path);
  };
  for (std::size_t i = 0; i < transports.size(); ++i) check_plugin(c.transports[i], transports[i]);
  check_plugin(c.broker, broker);
  return c;
}

}  // namespace flowrelay
