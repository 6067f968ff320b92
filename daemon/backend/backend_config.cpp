#include "backend_config.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "config.h"

namespace flowrelay {

namespace {

// The config.cpp conventions (file:line:col, "backend.key must ..."), for this section.
struct SectionReader {
  const std::string& file;

  [[noreturn]] void fail(const YAML::Node& node, const std::string& message) const {
    const auto mark = node.Mark();
    if (mark.is_null()) throw ConfigError(file, 0, 0, message);
    throw ConfigError(file, mark.line + 1, mark.column + 1, message);
  }

  std::string scalar(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) fail(node, "backend." + key + " must be a scalar value");
    return node.Scalar();
  }

  template <typename T>
  T number(const YAML::Node& node, const std::string& key, T min, T max) const {
    const std::string text = scalar(node, key);
    T value{};
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size())
      fail(node, "backend." + key + " must be a whole number, got '" + text + "'");
    if (value < min || value > max)
      fail(node, "backend." + key + " must be between " + std::to_string(min) + " and " +
                     std::to_string(max) + ", got " + text);
    return value;
  }
};

const std::set<std::string> kKeys = {"publish_url",      "connect_url",   "events_url",
                                     "timeout_ms",       "max_in_flight", "max_queued",
                                     "max_answer_bytes", "secret_file",   "events_batch_ms"};

std::string read_secret(const std::string& path, std::string& why) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    why = "cannot read " + path;
    return {};
  }
  std::stringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
    secret.pop_back();
  if (secret.size() < 16)
    why = path + " holds " + std::to_string(secret.size()) +
          " bytes (after trimming trailing whitespace); the secret must be at least 16 bytes";
  return secret;
}

}  // namespace

std::string backend_url_problem(const std::string& url) {
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception& e) {
    return "is not a valid URL (" + e.displayText() + ")";
  }
  if (uri.getScheme() == "https")
    return "uses https, which is not supported yet: use http:// (e.g. a backend on the same host "
           "or behind a local TLS-terminating proxy)";
  if (uri.getScheme() != "http") return "must start with http://";
  if (uri.getHost().empty()) return "has no host";
  if (!uri.getUserInfo().empty()) return "must not contain user info";
  if (!uri.getFragment().empty()) return "must not contain a fragment";
  return {};
}

BackendConfig parse_backend_config(const YAML::Node& section, const std::string& file,
                                   const std::string& dir) {
  SectionReader r{file};
  BackendConfig c;
  if (section.IsNull()) return c;
  if (!section.IsMap()) r.fail(section, "backend must be a mapping");
  for (const auto& kv : section) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    if (!kKeys.count(key)) {
      std::string list;
      for (const auto& k : kKeys) list += (list.empty() ? "" : ", ") + k;
      r.fail(kv.first, "unknown key '" + key + "' in backend (expected one of: " + list + ")");
    }
  }
  for (auto [key, out] :
       {std::pair{"publish_url", &c.publish_url}, std::pair{"connect_url", &c.connect_url},
        std::pair{"events_url", &c.events_url}}) {
    const YAML::Node n = section[key];
    if (!n || n.IsNull()) continue;
    *out = r.scalar(n, key);
    if (out->empty()) continue;
    if (const std::string why = backend_url_problem(*out); !why.empty())
      r.fail(n, std::string("backend.") + key + " '" + *out + "' " + why);
  }
  if (auto n = section["timeout_ms"]) c.timeout_ms = r.number<uint32_t>(n, "timeout_ms", 1, 600000);
  if (auto n = section["max_in_flight"])
    c.max_in_flight = r.number<uint32_t>(n, "max_in_flight", 1, 1024);
  if (auto n = section["max_queued"])
    c.max_queued = r.number<uint32_t>(n, "max_queued", 1, 10000000);
  if (auto n = section["max_answer_bytes"])
    c.max_answer_bytes = r.number<uint64_t>(n, "max_answer_bytes", 2, 1ull << 30);
  if (auto n = section["events_batch_ms"])
    c.events_batch_ms = r.number<uint32_t>(n, "events_batch_ms", 10, 600000);
  const YAML::Node secret = section["secret_file"];
  if (secret && !secret.IsNull()) {
    std::filesystem::path p(r.scalar(secret, "secret_file"));
    if (p.is_relative()) p = std::filesystem::path(dir) / p;
    c.secret_file = p.lexically_normal().string();
    std::string why;
    c.secret = read_secret(c.secret_file, why);
    if (!why.empty()) r.fail(secret, "backend.secret_file: " + why);
  } else if (c.any_url()) {
    r.fail(section,
           "backend.secret_file is required when a backend URL is set (the backend checks the "
           "X-Flowrelay-Signature made with it)");
  }
  return c;
}

}  // namespace flowrelay
