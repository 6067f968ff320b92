#include "publish_api.h"

#include "http_api.h"
#include "publish_request.h"
#include "replies/reply_api.h"
#include "router.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/String.h>

#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

namespace flowrelay {

namespace {

using Poco::JSON::Object;
using publish::BadRequest;
using publish::Request;
using publish::Result;

std::string json_text(const Poco::JSON::Object& o) {
  std::ostringstream out;
  o.stringify(out);
  return out.str();
}

Object result_json(const Request& r, const Result& res) {
  if (r.is_reply()) return publish::reply_result_json(res);
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
    Result failure;  // the first item that did not make it, if any
    failure.status = refused;
    size_t failed_at = queued;
    for (size_t i = 0; i < queued; ++i) {  // every result up to the first failure
      const Result& res = results[i];
      if (!res.done || res.status != FLOWRELAY_OK) {
        failure = res;
        if (!res.done) failure.status = FLOWRELAY_EUNAVAIL;
        failed_at = i;
        break;
      }
      results_out.add(result_json(requests[i], res));
    }
    HttpAnswer a;
    if (failure.status == FLOWRELAY_OK && !timed_out) {
      if (!batch) {
        a = json_answer(200, json_text(result_json(requests[0], results[0])));
      } else {
        Object body_out;
        body_out.set("results", results_out);
        a = json_answer(200, json_text(body_out));
      }
    } else {
      Object err;
      const bool unsupported = failure.status == FLOWRELAY_EUNSUPPORTED;
      int status = unsupported ? 501 : 503;
      if (timed_out)
        err.set("error", "the broker did not answer within http.publish_timeout_ms (" +
                             std::to_string(timeout_ms) + " ms)");
      else if (failed_at < requests.size() && requests[failed_at].is_reply()) {
        status = publish::reply_error_status(failure.status);
        publish::reply_error_fields(requests[failed_at], failure, err);
      } else
        err.set("error", unsupported ? std::string("the broker does not support this lane")
                                     : "the broker could not take the message; try again later");
      if (batch) err.set("results", results_out);
      a = json_answer(status, json_text(err));
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

// An outcome without its texts (when even they could not be allocated).
Result make_bare(flowrelay_status status, uint64_t offset) {
  Result r;
  r.done = true;
  r.status = status;
  r.offset = offset;
  return r;
}

// A completion's outcome into its slot; answers if it was the last.
void store(std::unique_ptr<Slot> slot, Result&& result) noexcept {
  Batch& b = *slot->batch;
  std::unique_lock lock(b.mutex);
  Result& r = b.results[slot->index];
  try {
    r = std::move(result);
  } catch (const std::bad_alloc&) {
    // Out of memory for the texts: still answer the outcome (a 5xx would make the backend
    // publish it again).
    r = make_bare(result.status, result.offset);
  }
  try {
    b.release_locked(lock);
  } catch (const std::exception&) {
    // Out of memory building the answer: the deadline answers 503 instead.
  }
}

void on_published(void* ctx, flowrelay_status status, uint64_t offset,
                  flowrelay_str epoch) noexcept {
  std::unique_ptr<Slot> slot(static_cast<Slot*>(ctx));
  Result r = make_bare(status, offset);
  try {
    r.epoch.assign(epoch.ptr, epoch.len);
  } catch (const std::bad_alloc&) {
  }
  store(std::move(slot), std::move(r));
}

void on_step(void* ctx, const Result& result) {
  Result r;
  try {
    r = result;
  } catch (const std::bad_alloc&) {
    r = make_bare(result.status, result.offset);
  }
  store(std::unique_ptr<Slot>(static_cast<Slot*>(ctx)), std::move(r));
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
    b->requests = publish::parse_body(req.body, opt, b->batch);
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
    auto slot = std::make_unique<Slot>(Slot{b, b->queued});
    {
      std::lock_guard lock(b->mutex);
      ++b->outstanding;
    }
    const flowrelay_status s = r.is_reply()
                                   ? publish::publish_reply_step(_router, r, on_step, slot.get())
                                   : _router.publish(r.channel, sdk::make_message(r.lane, r.data),
                                                     on_published, slot.get());
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
