// What the reply stream suites share: a flowrelayd whose config the test edits beyond
// DaemonOptions (the channels line, another broker plugin), and reply frames and API bodies.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <sstream>
#include <stdexcept>
#include <string>

#include "support/envelope_client.h"
#include "support/itest.h"

namespace flowrelay::itest {

// flowrelayd with make_config(options), the channels line replaced by `channels` and the
// broker plugin by `broker_plugin` (when not empty).
class EditedDaemon {
 public:
  EditedDaemon(const DaemonOptions& options, const std::string& channels,
               const std::string& broker_plugin = "") {
    _ports.ws = free_port();
    do {
      _ports.http = free_port();
    } while (_ports.http == _ports.ws);
    std::string config = make_config(_ports, options);
    replace(config, "channels: { prefix: \"chat:\", echo: true }", channels);
    if (!broker_plugin.empty()) replace(config, "plugin: broker-local", "plugin: " + broker_plugin);
    _proc.start({daemon_binary(), "--config", _dir.write("flowrelay.yaml", config)});
    if (await_ready(_proc, _ports.http, 10s) != Readiness::Ready)
      throw std::runtime_error("flowrelayd not ready; stderr:\n" + _proc.err_text());
  }
  uint16_t ws_port() const { return _ports.ws; }
  uint16_t http_port() const { return _ports.http; }
  bool running() { return _proc.running(); }
  std::string stderr_text() const { return _proc.err_text(); }

 private:
  static void replace(std::string& text, const std::string& from, const std::string& to) {
    const size_t at = text.find(from);
    if (at == std::string::npos) throw std::runtime_error("config has no '" + from + "'");
    text.replace(at, from.size(), to);
  }
  TempDir _dir{"replies"};
  Ports _ports;
  Process _proc;
};

using Json = Poco::JSON::Object::Ptr;

inline Json json_of(const std::string& text) {
  try {
    auto v = Poco::JSON::Parser().parse(text);
    if (v.type() == typeid(Json)) return v.extract<Json>();
  } catch (const Poco::Exception&) {
  }
  return nullptr;
}

// {"conversation":..,"reply":..} plus `step` (e.g. R"("seq":1,"delta":"The ")").
inline std::string step_body(const std::string& conversation, const std::string& reply,
                             const std::string& step) {
  return "{\"conversation\":\"" + conversation + "\",\"reply\":\"" + reply + "\"," + step + "}";
}
inline std::string delta_step(uint64_t seq, const std::string& text) {
  Poco::JSON::Object o;
  o.set("seq", seq);
  o.set("delta", text);
  std::ostringstream s;
  o.stringify(s);
  const std::string j = s.str();
  return j.substr(1, j.size() - 2);  // without the braces
}

// The next frame of `types` (others skipped) as JSON; null when none within `timeout`.
inline Json next_of(EnvelopeClient& c, std::initializer_list<std::string> types,
                    Millis timeout = 5s) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto e = c.next(Millis(remaining_ms(deadline)));
    if (!e) return nullptr;
    for (const auto& t : types)
      if (e->type == t) return json_of(e->raw);
  }
  return nullptr;
}

inline std::string str_of(const Json& o, const std::string& key) {
  return o && o->has(key) && o->get(key).isString() ? o->getValue<std::string>(key) : "";
}
inline int64_t int_of(const Json& o, const std::string& key, int64_t fallback = -1) {
  return o && o->has(key) && o->get(key).isInteger() ? o->getValue<int64_t>(key) : fallback;
}

}  // namespace flowrelay::itest
