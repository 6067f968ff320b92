#include "demo_page.h"

#include <Poco/JSON/Object.h>

#include <sstream>
#include <stdexcept>
#include <utility>

#include "config.h"

namespace flowrelay {

namespace {

constexpr std::string_view kPrefix = "/demo/";

std::string_view content_type(std::string_view name) {
  auto ends_with = [&](std::string_view ext) { return name.ends_with(ext); };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  if (ends_with(".json")) return "application/json";
  return "application/octet-stream";
}

HttpAnswer answer(int status, std::string_view type, std::string body) {
  HttpAnswer a;
  a.status = status;
  a.content_type = std::string(type);
  a.body = std::move(body);
  // The page is small and changes with the daemon: always revalidate, never run a stale one.
  a.headers.emplace_back("Cache-Control", "no-cache");
  a.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return a;
}

// The host part of a Host header ("h:9090" -> "h", "[::1]:9090" -> "[::1]"), or "" when it is
// missing or has characters no host name has (it goes into a URL the page connects to).
std::string host_of(std::string_view host_header) {
  std::string_view host = host_header;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return "";
    host = host.substr(0, close + 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  for (const char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!ok) return "";
  }
  return std::string(host);
}

}  // namespace

DemoPage::DemoPage(uint16_t ws_port, std::string ws_path)
    : _ws_port(ws_port), _ws_path(std::move(ws_path)) {}

DemoPage DemoPage::from_config(const Config& config) {
  for (const PluginSection& t : config.transports) {
    if (t.plugin.find("transport-ws") == std::string::npos) continue;
    // transport-ws' own defaults when the section leaves them out.
    std::string listen = "127.0.0.1:8080";
    std::string path = "/ws/";
    for (const auto& [key, value] : t.options) {
      if (key == "listen") listen = value;
      if (key == "path") path = value;
    }
    std::string host;
    uint16_t port = 0;
    if (!split_host_port(listen, host, port))
      throw std::runtime_error("http.demo: " + t.where + ".listen is not host:port: " + listen);
    return DemoPage(port, path);
  }
  throw std::runtime_error("http.demo: the page needs a transport-ws, and none is configured");
}

std::string DemoPage::config_json(const HttpRequest& req) const {
  std::string host = host_of(req.header("Host"));
  if (host.empty()) host = "localhost";
  Poco::JSON::Object o;
  o.set("ws", "ws://" + host + ":" + std::to_string(_ws_port) + _ws_path);
  std::ostringstream out;
  o.stringify(out);
  out << '\n';
  return out.str();
}

void DemoPage::handle(const HttpRequest& req, HttpReply reply) const {
  if (req.path + "/" == kPrefix) {  // "/demo": the page's relative links need the slash
    HttpAnswer a = answer(308, "text/plain; charset=utf-8", "see /demo/\n");
    a.headers.emplace_back("Location",
                           std::string(kPrefix) + (req.query.empty() ? "" : "?") + req.query);
    return reply(std::move(a));
  }
  if (req.method != "GET") {
    HttpAnswer a = json_answer(405, R"({"error":"the demo page answers GET only"})");
    a.headers.emplace_back("Allow", "GET");
    return reply(std::move(a));
  }
  std::string_view name = req.path;
  if (!name.starts_with(kPrefix)) return reply(json_answer(404, R"({"error":"not found"})"));
  name.remove_prefix(kPrefix.size());
  if (name.empty()) name = "index.html";
  if (name == "config.json") return reply(answer(200, content_type(name), config_json(req)));
  for (const EmbeddedFile& f : demo_files()) {
    if (f.name == name) return reply(answer(200, content_type(name), std::string(f.body)));
  }
  reply(json_answer(404, R"({"error":"no such file of the demo page"})"));
}

}  // namespace flowrelay
