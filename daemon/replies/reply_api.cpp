#include "replies/reply_api.h"

#include <flowrelay/plugin.hpp>

#include <memory>

#include "replies/reply_rules.h"
#include "router.h"

namespace flowrelay::publish {

namespace {

using Poco::JSON::Object;

bool present(const Object& o, const std::string& name) { return o.has(name) && !o.isNull(name); }

// "open" and "end" say what the step is: true, nothing else.
bool flag(const Object& o, const std::string& name, const std::string& where) {
  if (!present(o, name)) return false;
  const Poco::Dynamic::Var v = o.get(name);
  if (!v.isBoolean() || !v.extract<bool>())
    throw BadRequest(where + ": \"" + name + "\" must be true");
  return true;
}

uint64_t positive_seq(const Object& o, const std::string& where) {
  if (!present(o, "seq")) throw BadRequest(where + ": a delta needs \"seq\" (1, 2, ...)");
  const Poco::Dynamic::Var v = o.get("seq");
  const std::string bad = where + ": \"seq\" must be a positive integer";
  if (v.isBoolean() || !v.isInteger()) throw BadRequest(bad);
  if (v.isSigned()) {
    const auto n = v.convert<Poco::Int64>();
    if (n < 1) throw BadRequest(bad);
    return static_cast<uint64_t>(n);
  }
  const auto n = v.convert<Poco::UInt64>();
  if (n < 1) throw BadRequest(bad);
  return n;
}

struct StepCtx {
  StepDone done;
  void* ctx;
};

void on_step(void* p, const flowrelay_reply_published* out) noexcept {
  std::unique_ptr<StepCtx> c(static_cast<StepCtx*>(p));
  Result r;
  r.done = true;
  if (!out) {
    r.status = FLOWRELAY_EINTERNAL;
    return c->done(c->ctx, r);
  }
  r.status = out->status;
  r.offset = out->offset;
  r.duplicate = out->duplicate != 0;
  r.expected_seq = out->expected_seq;
  try {
    r.epoch = sdk::view(out->epoch);
    r.ended = sdk::view(out->ended);
  } catch (const std::bad_alloc&) {
    // Answer the outcome without the texts rather than not at all.
  }
  c->done(c->ctx, r);
}

}  // namespace

void parse_reply_step(const Object& o, const std::string& where, Request& r) {
  const std::string id = string_field(o, "reply", where, true);
  if (!valid_reply_id(id))
    throw BadRequest(where + ": \"reply\" must be 1 to 64 printable ASCII characters, no spaces");
  if (present(o, "lane"))
    throw BadRequest(where +
                     ": \"lane\" is not used with \"reply\" (replies are on the message lane)");
  if (present(o, "data"))
    throw BadRequest(where + ": \"data\" is not used with \"reply\" (a delta's text is \"delta\")");
  const bool open = flag(o, "open", where);
  const bool end = flag(o, "end", where);
  const bool delta = present(o, "delta");
  if (open + end + delta != 1)
    throw BadRequest(where + ": a reply step has exactly one of \"open\", \"delta\" and \"end\"");
  if (present(o, "error") && !end) throw BadRequest(where + ": \"error\" goes with \"end\"");
  ReplyStep& step = r.reply;
  step.id = id;
  if (open) {
    step.kind = FLOWRELAY_KIND_OPEN;
  } else if (delta) {
    step.kind = FLOWRELAY_KIND_DELTA;
    step.seq = positive_seq(o, where);
    r.data = string_field(o, "delta", where, true);
  } else {
    step.kind = FLOWRELAY_KIND_END;
    step.reason = present(o, "error") ? "error" : "done";
    step.error = string_field(o, "error", where, false);
  }
}

flowrelay_status publish_reply_step(Router& router, const Request& r, StepDone done, void* ctx) {
  flowrelay_reply reply{};
  reply.struct_size = sizeof reply;
  reply.kind = r.reply.kind;
  reply.id = sdk::str(r.reply.id);
  reply.seq = r.reply.seq;
  reply.reason = sdk::str(r.reply.reason);
  reply.error = sdk::str(r.reply.error);
  reply.ttft_ms = -1;
  reply.duration_ms = -1;
  flowrelay_message m = sdk::make_message(FLOWRELAY_LANE_MESSAGE, r.data);
  m.reply = &reply;
  auto c = std::make_unique<StepCtx>(StepCtx{done, ctx});
  const flowrelay_status s = router.publish_reply(r.channel, m, on_step, c.get());
  if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) c.release();  // on_step owns it
  return s;
}

Object reply_result_json(const Result& res) {
  Object o;
  o.set("offset", res.offset);
  o.set("epoch", res.epoch);
  if (res.duplicate) o.set("duplicate", true);
  return o;
}

int reply_error_status(flowrelay_status status) {
  switch (status) {
    case FLOWRELAY_ECONFLICT:
      return 409;
    case FLOWRELAY_ETOOBIG:
      return 413;
    case FLOWRELAY_EUNSUPPORTED:
      return 501;
    case FLOWRELAY_EINVAL:
      return 400;
    default:
      return 503;
  }
}

void reply_error_fields(const Request& r, const Result& res, Object& body) {
  const std::string reply = "reply '" + r.reply.id + "'";
  switch (res.status) {
    case FLOWRELAY_ECONFLICT:
      if (!res.ended.empty()) {
        body.set("error", reply + " has ended (" + res.ended + ")");
        body.set("ended", res.ended);
      } else {
        body.set("error", reply + " expects seq " + std::to_string(res.expected_seq) +
                              (r.reply.seq ? ", got " + std::to_string(r.reply.seq) : ""));
        body.set("expected_seq", res.expected_seq);
      }
      return;
    case FLOWRELAY_ETOOBIG:
      body.set("error", reply + ": its text would exceed the conversation's history_max_bytes");
      return;
    case FLOWRELAY_EUNSUPPORTED:
      body.set("error", "the broker keeps no reply streams");
      return;
    case FLOWRELAY_EINVAL:
      body.set("error", reply + ": the broker refused the step as malformed");
      return;
    default:
      body.set("error", "the broker could not take the reply step; try again later");
  }
}

}  // namespace flowrelay::publish
