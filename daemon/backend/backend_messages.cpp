#include "backend_messages.h"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/JSONString.h>

#include <sstream>

namespace flowrelay {

namespace {

using Poco::JSON::Object;

void put_string(std::string& out, std::string_view key, std::string_view value) {
  out += '"';
  out += key;
  out += "\":";
  // Escapes quotes, backslashes and control characters; UTF-8 stays as it is.
  out += Poco::toJSON(std::string(value), Poco::JSON_WRAP_STRINGS);
}

// The transport's user is a JSON object already (token claims, the connect proxy's user);
// anything else goes out as null rather than break the body.
void put_user(std::string& out, std::string_view user_json) {
  out += "\"user\":";
  const size_t first = user_json.find_first_not_of(" \t\r\n");
  const size_t last = user_json.find_last_not_of(" \t\r\n");
  if (first == std::string_view::npos || user_json[first] != '{' || user_json[last] != '}')
    out += "null";
  else
    out += user_json.substr(first, last - first + 1);
}

// Who sent it, the same fields in every proxy body: `,"user":...,"client":...,"remote_addr":...}`
// after the caller's own fields.
void put_client_and_close(std::string& out, std::string_view user_json, std::string_view client,
                          std::string_view remote_addr) {
  put_user(out, user_json);
  out += ',';
  put_string(out, "client", client);
  out += ',';
  put_string(out, "remote_addr", remote_addr);
  out += '}';
}

std::string backend_down(const std::string& why) { return "backend unavailable: " + why; }

// The answer as a JSON object, or why not (then `why` is set and the result is null).
Object::Ptr answer_object(const BackendAnswer& a, std::string& why) {
  Poco::Dynamic::Var root;
  try {
    root = Poco::JSON::Parser().parse(a.body);
  } catch (const Poco::Exception&) {
    why = "the answer is not JSON";
    return nullptr;
  }
  if (root.type() != typeid(Object::Ptr)) {
    why = "the answer is not a JSON object";
    return nullptr;
  }
  return root.extract<Object::Ptr>();
}

// The backend's "error" text of a refusal, else a generic one.
std::string refusal_reason(const BackendAnswer& a) {
  std::string why;
  if (const Object::Ptr o = answer_object(a, why); o && o->has("error")) {
    const Poco::Dynamic::Var v = o->get("error");
    if (v.isString() && !v.extract<std::string>().empty()) return v.extract<std::string>();
  }
  return "refused by the backend (HTTP " + std::to_string(a.status) + ")";
}

// Failures shared by both proxies: no answer, 5xx, an unexpected status. False when the answer
// is a 200 or a 4xx, left to the caller.
template <typename Verdict>
bool judge_failure(const BackendAnswer& a, Verdict& v) {
  using F = BackendAnswer::Failure;
  const uint32_t code = v.code;
  v.code = 503;  // for every failure below; restored when the caller decides
  switch (a.failure) {
    case F::Timeout:
      v.outcome = BackendOutcome::Timeout;
      v.reason = backend_down(a.error);
      return true;
    case F::Unavailable:
      v.outcome = BackendOutcome::Unavailable;
      v.reason = backend_down(a.error);
      return true;
    case F::TooLarge:
      v.outcome = BackendOutcome::BadAnswer;
      v.reason = backend_down(a.error);
      return true;
    case F::None:
      break;
  }
  if (a.status >= 500) {
    v.outcome = BackendOutcome::Unavailable;
    v.reason = backend_down("HTTP " + std::to_string(a.status));
    return true;
  }
  if (a.status != 200 && (a.status < 400 || a.status >= 500)) {
    v.outcome = BackendOutcome::BadAnswer;
    v.reason = backend_down("unexpected HTTP " + std::to_string(a.status));
    return true;
  }
  v.code = code;
  return false;
}

}  // namespace

std::string publish_request_body(std::string_view conversation, flowrelay_lane lane,
                                 std::string_view data, std::string_view user_json,
                                 std::string_view client, std::string_view remote_addr) {
  std::string out;
  out.reserve(96 + conversation.size() + data.size() + user_json.size() + remote_addr.size());
  out += '{';
  put_string(out, "conversation", conversation);
  out += lane == FLOWRELAY_LANE_LOG ? ",\"lane\":\"log\"," : ",\"lane\":\"message\",";
  put_string(out, "data", data);
  out += ',';
  put_client_and_close(out, user_json, client, remote_addr);
  return out;
}

std::string cancel_event_body(std::string_view conversation, std::string_view reply,
                              std::string_view user_json, std::string_view client,
                              std::string_view remote_addr) {
  std::string out = "{\"type\":\"cancel\",";
  put_string(out, "conversation", conversation);
  out += ',';
  put_string(out, "reply", reply);
  out += ',';
  put_client_and_close(out, user_json, client, remote_addr);
  return out;
}

std::string connect_request_body(const flowrelay_connect_request& r) {
  auto s = [](flowrelay_str v) { return std::string_view(v.ptr ? v.ptr : "", v.len); };
  std::string out = "{";
  put_string(out, "conversation", s(r.conversation));
  out += ',';
  put_string(out, "cookie", s(r.cookie));
  out += ',';
  put_string(out, "authorization", s(r.authorization));
  out += ',';
  put_string(out, "remote_addr", s(r.remote_addr));
  out += ',';
  put_string(out, "transport", s(r.transport));
  out += '}';
  return out;
}

std::string event_json(bool joined, std::string_view conversation, std::string_view client,
                       std::string_view user_json, int64_t time_ms) {
  std::string out = joined ? "{\"type\":\"join\"," : "{\"type\":\"leave\",";
  put_string(out, "conversation", conversation);
  out += ',';
  put_string(out, "client", client);
  out += ',';
  put_user(out, user_json);
  out += ",\"time_ms\":" + std::to_string(time_ms) + "}";
  return out;
}

BackendOutcome delivery_outcome(const BackendAnswer& a) {
  using F = BackendAnswer::Failure;
  if (a.failure == F::Timeout) return BackendOutcome::Timeout;
  if (a.failure == F::Unavailable || a.status >= 500) return BackendOutcome::Unavailable;
  if (a.failure == F::TooLarge || a.status < 200 || a.status >= 300)
    return a.status >= 400 ? BackendOutcome::Refused : BackendOutcome::BadAnswer;
  return BackendOutcome::Ok;
}

PublishVerdict judge_publish_answer(const BackendAnswer& a) {
  PublishVerdict v;
  if (judge_failure(a, v)) return v;
  if (a.status != 200) {
    v.outcome = BackendOutcome::Refused;
    v.code = static_cast<uint32_t>(a.status);
    v.reason = refusal_reason(a);
    return v;
  }
  std::string why;
  const Object::Ptr o = answer_object(a, why);
  auto bad = [&](const std::string& what) {
    v.outcome = BackendOutcome::BadAnswer;
    v.code = 503;
    v.reason = backend_down(what);
    return v;
  };
  if (!o) return bad(why);
  bool publish = true;
  if (o->has("publish") && !o->isNull("publish")) {
    const Poco::Dynamic::Var p = o->get("publish");
    if (!p.isBoolean()) return bad("\"publish\" must be true or false");
    publish = p.extract<bool>();
  }
  const bool rewrite = o->has("data") && !o->isNull("data");
  if (rewrite && !o->get("data").isString()) return bad("\"data\" must be a string");
  v.code = 0;
  if (!publish) {
    v.outcome = BackendOutcome::Private;
  } else if (rewrite) {
    v.outcome = BackendOutcome::Rewritten;
    v.data = o->get("data").extract<std::string>();
  }
  return v;
}

ConnectVerdict judge_connect_answer(const BackendAnswer& a) {
  ConnectVerdict v;
  if (judge_failure(a, v)) return v;
  if (a.status == 401 || a.status == 403) {
    v.outcome = BackendOutcome::Refused;
    v.code = static_cast<uint32_t>(a.status);
    v.reason = refusal_reason(a);
    return v;
  }
  auto bad = [&](const std::string& what) {
    v.outcome = BackendOutcome::BadAnswer;
    v.code = 503;
    v.reason = backend_down(what);
    return v;
  };
  if (a.status != 200) return bad("unexpected HTTP " + std::to_string(a.status));
  std::string why;
  const Object::Ptr o = answer_object(a, why);
  if (!o) return bad(why);
  if (o->has("publish") && !o->isNull("publish")) {
    const Poco::Dynamic::Var p = o->get("publish");
    if (!p.isBoolean()) return bad("\"publish\" must be true or false");
    v.can_publish = p.extract<bool>();
  }
  if (o->has("user") && !o->isNull("user")) {
    const Object::Ptr user = o->getObject("user");
    if (!user) return bad("\"user\" must be an object or null");
    std::ostringstream text;
    Poco::JSON::Stringifier::condense(user, text);
    v.user = text.str();
  }
  return v;
}

}  // namespace flowrelay
