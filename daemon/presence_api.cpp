#include "presence_api.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/String.h>
#include <Poco/URI.h>

#include <atomic>
#include <memory>
#include <sstream>

#include "http_api.h"
#include "plugin_host.h"
#include "router.h"

namespace flowrelay {

namespace {

// One request, shared by the broker's completion and the deadline: the first to flip
// `answered` replies, the other finds it set and does nothing.
struct Pending {
  std::atomic<bool> answered{false};
  HttpReply reply;
  std::string conversation;

  void answer(HttpAnswer a) {
    if (answered.exchange(true)) return;
    HttpReply r = std::move(reply);
    r(std::move(a));
  }
};

HttpAnswer counts(const std::string& conversation, uint64_t clients, uint32_t nodes) {
  Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
  o.set("conversation", conversation);
  o.set("clients", clients);
  o.set("nodes", nodes);
  std::ostringstream out;
  o.stringify(out);
  return json_answer(200, out.str());
}

}  // namespace

bool query_value(std::string_view query, std::string_view name, std::string& value) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    value.clear();
    if (eq == std::string_view::npos) return true;
    std::string raw(pair.substr(eq + 1));
    for (char& c : raw)
      if (c == '+') c = ' ';  // form encoding; a space is refused by the id rule anyway
    try {
      Poco::URI::decode(raw, value);
    } catch (const Poco::Exception&) {
      value = raw;  // a malformed escape: the id rule refuses the '%'
    }
    return true;
  }
  return false;
}

PresenceApiOptions PresenceApi::options() const {
  std::lock_guard lock(_mutex);
  return _options;
}

void PresenceApi::reconfigure(const PresenceApiOptions& options) {
  std::lock_guard lock(_mutex);
  _options = options;
}

void PresenceApi::handle(const HttpRequest& req, HttpReply reply) {
  const PresenceApiOptions opt = options();
  auto refuse = [&](int status, const std::string& error, const char* allow = nullptr) {
    HttpAnswer a = json_error(status, error);
    if (allow) a.headers.emplace_back("Allow", allow);
    reply(std::move(a));
  };
  if (req.method != "GET") return refuse(405, "GET /api/presence?conversation=<id>", "GET");
  if (opt.api_key.empty())
    return refuse(403, "the presence API is off: set http.api_key or http.api_key_file");
  if (!constant_time_equal(req.header("X-API-Key"), opt.api_key)) {
    bool present = false;
    for (const auto& [name, value] : req.headers)
      present = present || Poco::icompare(name, "X-API-Key") == 0;
    return refuse(401, present ? "wrong X-API-Key" : "missing X-API-Key header");
  }
  std::string conversation;
  if (!query_value(req.query, "conversation", conversation))
    return refuse(400, "missing query parameter: conversation=<id>");
  if (!valid_conversation_id(conversation, opt.max_conversation_id_length))
    return refuse(400, "invalid conversation id: 1-" +
                           std::to_string(opt.max_conversation_id_length) +
                           " characters of A-Z a-z 0-9 _ . : -");

  auto p = std::make_shared<Pending>();
  p->reply = std::move(reply);
  p->conversation = conversation;
  // The deadline holds the request weakly: answered in time, it is freed at once.
  _after(opt.timeout_ms, [weak = std::weak_ptr<Pending>(p), timeout = opt.timeout_ms] {
    if (const std::shared_ptr<Pending> pending = weak.lock())
      pending->answer(json_error(503,
                                 "the broker did not answer within "
                                 "http.publish_timeout_ms (" +
                                     std::to_string(timeout) + " ms)"));
  });
  _router.presence(opt.channel_prefix + conversation,
                   [p](flowrelay_status status, uint64_t clients, uint32_t nodes) {
                     if (status == FLOWRELAY_OK)
                       return p->answer(counts(p->conversation, clients, nodes));
                     p->answer(json_error(503, "the broker could not count the clients (" +
                                                   status_name(status) + "); try again later"));
                   });
}

}  // namespace flowrelay
