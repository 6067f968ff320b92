#include "publish_api.h"

#include "http_api.h"
#include "router.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/String.h>

#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

namespace flowrelay {

namespace {

using Poco::JSON::Object;

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

std::string json_text(const Poco::JSON::Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

Object result_json(const Request& r, const Result& res) {
  Object o;
  o.set("conversation", r.conversation);
  o.set("offset", res.offset);
  o.set("epoch", res.epoch);
  return o;
}

// One request's messages, shared by the handler, the broker's completions and the deadline:
// whichever of the last completion and the deadline comes first answers; what arrives after
// (a late completion, the deadline of an answered request) finds `answered` and does nothing.
struct Batch {
  std::mutex mutex;
  std::vector<Request> requests;
  std::vector<Result> results;
  size_t outstanding = 1;  // the handler's own hold until everything is queued
  size_t queued = 0;
  flowrelay_status refused = FLOWRELAY_OK;  // publish() said no to message `queued`
  bool batch = false;
  bool answered = false;
  uint32_t timeout_ms = 0;
  HttpReply reply;
  PublishApi* api = nullptr;

  // Called with `mutex` held by the last completion (timed_out false) or by the deadline.
  // Returns the answer to send once the lock is released.
  HttpAnswer answer_locked(bool timed_out) {
    answered = true;
    Poco::JSON::Array results_out;
    flowrelay_status failed = refused;
    for (size_t i = 0; i < queued; ++i) {  // every result up to the first failure
      const Result& res = results[i];
      if (!res.done) {
        failed = FLOWRELAY_EUNAVAIL;
        break;
      }
      if (res.status != FLOWRELAY_OK) {
        failed = res.status;
        break;
      }
      results_out.add(result_json(requests[i], res));
    }
    HttpAnswer a;
    if (failed == FLOWRELAY_OK && !timed_out) {
      if (!batch) {
        a = json_answer(200, json_text(result_json(requests[0], results[0])));
      } else {
        Object body_out;
        body_out.set("results", results_out);
        a = json_answer(200, json_text(body_out));
      }
    } else {
      Object err;
      const bool unsupported = failed == FLOWRELAY_EUNSUPPORTED;
      err.set("error", timed_out ? "the broker did not answer within http.publish_timeout_ms (" +
                                       std::to_string(timeout_ms) + " ms)"
                       : unsupported ? std::string("the broker does not support this lane")
                                     : "the broker could not take the message; try again later");
      if (batch) err.set("results", results_out);
      a = json_answer(unsupported ? 501 : 503, json_text(err));
    }
    api->count_answer(a.status, results_out.size());
    return a;
  }

  // Drops one hold (a completion, or the handler's); answers if it was the last.
  void release_locked(std::unique_lock<std::mutex>& lock) {
    if (--outstanding != 0 || answered) return;
    HttpAnswer a = answer_locked(false);
    HttpReply r = std::move(reply);
    lock.unlock();
    r(std::move(a));
  }
};

struct Slot {
  std::shared_ptr<Batch> batch;
  size_t index;
};

void on_published(void* ctx, flowrelay_status status, uint64_t offset,
                  flowrelay_str epoch) noexcept {
  std::unique_ptr<Slot> slot(static_cast<Slot*>(ctx));
  Batch& b = *slot->batch;
  std::unique_lock lock(b.mutex);
  Result& r = b.results[slot->index];
  try {
    r = {true, status, offset, std::string(epoch.ptr, epoch.len)};
  } catch (const std::bad_alloc&) {
    // Out of memory for the epoch's text: still answer the outcome (a 5xx would make the
    // backend publish it again).
    r = {true, status, offset, {}};
  }
  try {
    b.release_locked(lock);
  } catch (const std::exception&) {
    // Out of memory building the answer: the deadline answers 503 instead.
  }
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

void PublishApi::count_answer(int status, size_t published) {
  _published.fetch_add(published, std::memory_order_relaxed);
  if (status >= 400) count_error(status);
}

void PublishApi::handle(const HttpRequest& req, HttpReply reply) {
  const PublishApiOptions opt = options();
  auto refuse = [&](int status, const std::string& error, const char* allow = nullptr) {
    count_error(status);
    HttpAnswer a = json_error(status, error);
    if (allow) a.headers.emplace_back("Allow", allow);
    reply(std::move(a));
  };
  if (req.method != "POST") return refuse(405, "POST a JSON message to /api/publish", "POST");
  if (opt.api_key.empty())
    return refuse(403, "the publish API is off: set http.api_key or http.api_key_file");
  const std::string_view key = req.header("X-API-Key");
  if (!constant_time_equal(key, opt.api_key)) {
    bool present = false;
    for (const auto& [name, value] : req.headers)
      present = present || Poco::icompare(name, "X-API-Key") == 0;
    return refuse(401, present ? "wrong X-API-Key" : "missing X-API-Key header");
  }
  // The listener refuses bodies over the limit it started with; this is the one in force now.
  if (req.body.size() > opt.max_body_bytes)
    return refuse(
        413, "body larger than http.max_body_bytes (" + std::to_string(opt.max_body_bytes) + ")");
  auto b = std::make_shared<Batch>();
  try {
    b->requests = parse_body(req.body, opt, b->batch);
  } catch (const BadRequest& e) {
    return refuse(400, e.what());
  }
  b->results.resize(b->requests.size());
  b->timeout_ms = opt.timeout_ms;
  b->reply = std::move(reply);
  b->api = this;

  // Queued in order (the broker keeps a channel's order), then awaited together: a batch costs
  // one broker round trip, not one per message. A broker may complete inside publish().
  for (; b->queued < b->requests.size(); ++b->queued) {
    const Request& r = b->requests[b->queued];
    const flowrelay_message m = sdk::make_message(r.lane, r.data);
    auto slot = std::make_unique<Slot>(Slot{b, b->queued});
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
    b->refused = s;
    break;
  }
  std::unique_lock lock(b->mutex);
  b->release_locked(lock);
  if (!lock.owns_lock()) return;  // answered already
  lock.unlock();
  // The deadline holds the batch weakly: answered in time, it is freed at once.
  _after(opt.timeout_ms, [weak = std::weak_ptr<Batch>(b)] {
    const std::shared_ptr<Batch> batch = weak.lock();
    if (!batch) return;
    std::unique_lock lock(batch->mutex);
    if (batch->answered) return;
    HttpAnswer a = batch->answer_locked(true);
    HttpReply r = std::move(batch->reply);
    lock.unlock();
    r(std::move(a));
  });
}

}  // namespace flowrelay
