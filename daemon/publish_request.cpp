#include "publish_request.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include "replies/reply_api.h"

namespace flowrelay::publish {

using Poco::JSON::Object;

std::string string_field(const Object& o, const std::string& name, const std::string& where,
                         bool required, const std::string& fallback) {
  if (!o.has(name) || o.isNull(name)) {
    if (required) throw BadRequest(where + ": missing \"" + name + "\"");
    return fallback;
  }
  const Poco::Dynamic::Var v = o.get(name);
  if (!v.isString()) throw BadRequest(where + ": \"" + name + "\" must be a string");
  return v.extract<std::string>();
}

namespace {

Request parse_one(const Object& o, const std::string& where, const PublishApiOptions& options) {
  Request r;
  r.conversation = string_field(o, "conversation", where, true);
  if (!valid_conversation_id(r.conversation, options.max_conversation_id_length))
    throw BadRequest(where + ": invalid conversation id: 1-" +
                     std::to_string(options.max_conversation_id_length) +
                     " characters of A-Z a-z 0-9 _ . : -");
  r.channel = options.channel_prefix + r.conversation;
  if (o.has("reply")) {
    publish::parse_reply_step(o, where, r);
    return r;
  }
  const std::string lane = string_field(o, "lane", where, false, "message");
  if (lane == "log")
    r.lane = FLOWRELAY_LANE_LOG;
  else if (lane != "message")
    throw BadRequest(where + ": unknown lane \"" + lane + "\" (message or log)");
  r.data = string_field(o, "data", where, true);
  return r;
}

}  // namespace

std::vector<Request> parse_body(const std::string& body, const PublishApiOptions& options,
                                bool& batch) {
  Poco::Dynamic::Var root;
  try {
    root = Poco::JSON::Parser().parse(body);
  } catch (const Poco::Exception& e) {
    throw BadRequest("body is not valid JSON: " + e.displayText());
  }
  if (root.type() != typeid(Object::Ptr)) throw BadRequest("body must be a JSON object");
  const Object::Ptr obj = root.extract<Object::Ptr>();
  std::vector<Request> out;
  batch = obj->has("messages");
  if (!batch) {
    out.push_back(parse_one(*obj, "message", options));
    return out;
  }
  const Poco::JSON::Array::Ptr list = obj->getArray("messages");
  if (!list) throw BadRequest("\"messages\" must be an array");
  if (list->size() == 0) throw BadRequest("\"messages\" is empty");
  for (size_t i = 0; i < list->size(); ++i) {
    const Object::Ptr item = list->getObject(static_cast<unsigned>(i));
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!item) throw BadRequest(where + " must be an object");
    out.push_back(parse_one(*item, where, options));
  }
  return out;
}

}  // namespace flowrelay::publish
