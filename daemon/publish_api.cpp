#include "publish_api.h"

#include "http_api.h"
#include "router.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <chrono>
#include <condition_variable>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

namespace flowrelay {

namespace {

using Poco::JSON::Object;
using Poco::Net::HTTPResponse;

struct Request {
  std::string conversation;
  std::string channel;
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  std::string data;
};

struct Result {
  bool done = false;
  flowrelay_status status = FLOWRELAY_OK;
  uint64_t offset = 0;
  std::string epoch;
};

// Shared between the handler and the broker's completions: a completion arriving after the
// handler gave up (timeout) still has somewhere to write.
struct Batch {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<Result> results;
  size_t outstanding = 0;
};

struct Slot {
  std::shared_ptr<Batch> batch;
  size_t index;
};

void on_published(void* ctx, flowrelay_status status, uint64_t offset,
                  flowrelay_str epoch) noexcept {
  std::unique_ptr<Slot> slot(static_cast<Slot*>(ctx));
  Batch& b = *slot->batch;
  std::lock_guard lock(b.mutex);
  Result& r = b.results[slot->index];
  try {
    r = {true, status, offset, std::string(epoch.ptr, epoch.len)};
  } catch (const std::bad_alloc&) {
    // Out of memory for the epoch's text: still answer the outcome (a 5xx would make the
    // backend publish it again).
    r = {true, status, offset, {}};
  }
  if (--b.outstanding == 0) b.done.notify_all();
}

class BadRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string string_field(const Object& o, const std::string& name, const std::string& where,
                         bool required, const std::string& fallback = {}) {
  if (!o.has(name) || o.isNull(name)) {
    if (required) throw BadRequest(where + ": missing \"" + name + "\"");
    return fallback;
  }
  const Poco::Dynamic::Var v = o.get(name);
  if (!v.isString()) throw BadRequest(where + ": \"" + name + "\" must be a string");
  return v.extract<std::string>();
}

Request parse_one(const Object& o, const std::string& where, const PublishApiOptions& options) {
  Request r;
  r.conversation = string_field(o, "conversation", where, true);
  if (!valid_conversation_id(r.conversation, options.max_conversation_id_length))
    throw BadRequest(where + ": invalid conversation id: 1-" +
                     std::to_string(options.max_conversation_id_length) +
                     " characters of A-Z a-z 0-9 _ . : -");
  const std::string lane = string_field(o, "lane", where, false, "message");
  if (lane == "log")
    r.lane = FLOWRELAY_LANE_LOG;
  else if (lane != "message")
    throw BadRequest(where + ": unknown lane \"" + lane + "\" (message or log)");
  r.data = string_field(o, "data", where, true);
  r.channel = options.channel_prefix + r.conversation;
  return r;
}

// The body as requests: one object, or {"messages":[...]}. Throws BadRequest.
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

void reply_error(Poco::Net::HTTPServerResponse& resp, HTTPResponse::HTTPStatus status,
                 const std::string& error) {
  Object body;
  body.set("error", error);
  send_json(resp, status, body);
}

// Reads at most max + 1 bytes: more than max means 413 without buffering the rest.
std::optional<std::string> read_body(std::istream& in, uint64_t max) {
  std::string body;
  char buf[16384];
  while (in) {
    in.read(buf, sizeof buf);
    body.append(buf, static_cast<size_t>(in.gcount()));
    if (body.size() > max) return std::nullopt;
  }
  return body;
}

Object result_json(const Request& r, const Result& res) {
  Object o;
  o.set("conversation", r.conversation);
  o.set("offset", res.offset);
  o.set("epoch", res.epoch);
  return o;
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  // Every byte of the candidate is compared whatever matched before: the time says nothing
  // about how much of a guessed key was right.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (b.empty() ? 0 : b[i % b.size()]));
  return diff == 0;
}

PublishApiOptions PublishApi::options() const {
  std::lock_guard lock(_mutex);
  return _options;
}

void PublishApi::reconfigure(const PublishApiOptions& options) {
  std::lock_guard lock(_mutex);
  _options = options;
}

namespace {
constexpr int kCountedStatus[] = {400, 401, 403, 413, 503};
}

void PublishApi::count_error(int status) {
  size_t i = 0;
  while (i < std::size(kCountedStatus) && kCountedStatus[i] != status) ++i;
  _errors[i].fetch_add(1, std::memory_order_relaxed);
}

void PublishApi::metrics(sdk::PrometheusText& out) const {
  out.counter("flowrelay_api_published_total", "Messages published through POST /api/publish",
              _published.load());
  out.family("flowrelay_api_errors_total", "counter",
             "Publish API requests answered with an error");
  for (size_t i = 0; i <= std::size(kCountedStatus); ++i)
    out.sample(
        "flowrelay_api_errors_total",
        sdk::PrometheusText::label(
            "status", i < std::size(kCountedStatus) ? std::to_string(kCountedStatus[i]) : "other"),
        _errors[i].load());
}

void PublishApi::handle(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
  serve(req, resp);
  const int status = resp.getStatus();
  if (status >= 400) count_error(status);
}

void PublishApi::serve(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) {
  const PublishApiOptions opt = options();
  if (req.getMethod() != "POST") {
    resp.set("Allow", "POST");
    return reply_error(resp, HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                       "POST a JSON message to /api/publish");
  }
  if (opt.api_key.empty())
    return reply_error(resp, HTTPResponse::HTTP_FORBIDDEN,
                       "the publish API is off: set http.api_key or http.api_key_file");
  if (!constant_time_equal(req.get("X-API-Key", ""), opt.api_key))
    return reply_error(resp, HTTPResponse::HTTP_UNAUTHORIZED,
                       req.has("X-API-Key") ? "wrong X-API-Key" : "missing X-API-Key header");
  if (req.hasContentLength() &&
      static_cast<uint64_t>(req.getContentLength64()) > opt.max_body_bytes)
    return reply_error(
        resp, HTTPResponse::HTTP_REQUESTENTITYTOOLARGE,
        "body larger than http.max_body_bytes (" + std::to_string(opt.max_body_bytes) + ")");
  const std::optional<std::string> body = read_body(req.stream(), opt.max_body_bytes);
  if (!body)
    return reply_error(
        resp, HTTPResponse::HTTP_REQUESTENTITYTOOLARGE,
        "body larger than http.max_body_bytes (" + std::to_string(opt.max_body_bytes) + ")");
  std::vector<Request> requests;
  bool batch = false;
  try {
    requests = parse_body(*body, opt, batch);
  } catch (const BadRequest& e) {
    return reply_error(resp, HTTPResponse::HTTP_BAD_REQUEST, e.what());
  }

  // Queued in order (the broker keeps a channel's order), then awaited together: a batch costs
  // one broker round trip, not one per message.
  auto b = std::make_shared<Batch>();
  b->results.resize(requests.size());
  size_t queued = 0;
  flowrelay_status refused = FLOWRELAY_OK;
  for (; queued < requests.size(); ++queued) {
    const Request& r = requests[queued];
    const flowrelay_message m = sdk::make_message(r.lane, r.data);
    auto slot = std::make_unique<Slot>(Slot{b, queued});
    {
      std::lock_guard lock(b->mutex);
      ++b->outstanding;
    }
    const flowrelay_status s = _router.publish(r.channel, m, on_published, slot.get());
    if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) {
      slot.release();  // on_published owns it now
      continue;
    }
    std::lock_guard lock(b->mutex);
    --b->outstanding;
    refused = s;
    break;
  }
  std::unique_lock lock(b->mutex);
  const bool answered = b->done.wait_for(lock, std::chrono::milliseconds(opt.timeout_ms),
                                         [&] { return b->outstanding == 0; });
  // The answer: every result up to the first failure.
  Poco::JSON::Array results;
  flowrelay_status failed = refused;
  for (size_t i = 0; i < queued; ++i) {
    const Result& res = b->results[i];
    if (!res.done) {
      failed = FLOWRELAY_EUNAVAIL;
      break;
    }
    if (res.status != FLOWRELAY_OK) {
      failed = res.status;
      break;
    }
    results.add(result_json(requests[i], res));
  }
  lock.unlock();
  _published.fetch_add(results.size(), std::memory_order_relaxed);
  if (failed == FLOWRELAY_OK && answered) {
    if (!batch)
      return send_json(resp, HTTPResponse::HTTP_OK, result_json(requests[0], b->results[0]));
    Object body_out;
    body_out.set("results", results);
    return send_json(resp, HTTPResponse::HTTP_OK, body_out);
  }
  Object err;
  const bool unsupported = failed == FLOWRELAY_EUNSUPPORTED;
  err.set("error", !answered ? "the broker did not answer within http.publish_timeout_ms (" +
                                   std::to_string(opt.timeout_ms) + " ms)"
                   : unsupported ? std::string("the broker does not support this lane")
                                 : "the broker could not take the message; try again later");
  if (batch) err.set("results", results);
  send_json(
      resp,
      unsupported ? HTTPResponse::HTTP_NOT_IMPLEMENTED : HTTPResponse::HTTP_SERVICE_UNAVAILABLE,
      err);
}

}  // namespace flowrelay
