// Resume (?since=N&epoch=E, envelope mode), the loop's part: the history read and its answer's
// way back to the loop thread. What the answer means (replay, "resumed", the seam) is the
// Session's (session.cpp, plugins/common/seam_replay.h). See docs/PROTOCOL.md.
#include "event_loop.h"
#include "utf8_repair.h"

namespace flowrelay::stream {

namespace {

// Allocated before the read, so that the completion needs no allocation to answer the loop.
struct HistoryCall {
  EventLoop* loop;
  std::unique_ptr<HistoryResult> result;
};

// [any thread, maybe inside history()] Copies what the broker lent and hands it to the loop.
void history_answered(void* ctx, flowrelay_status status, const flowrelay_history* h) noexcept {
  std::unique_ptr<HistoryCall> call(static_cast<HistoryCall*>(ctx));
  HistoryResult& result = *call->result;
  result.status = status;
  try {
    if (status == FLOWRELAY_OK && h) {
      result.epoch.assign(h->epoch.ptr, h->epoch.len);
      result.top = h->top;
      result.trimmed_known = sdk::history_trimmed(*h, result.trimmed);
      result.entries.reserve(h->count);
      for (size_t i = 0; i < h->count; ++i) {
        const flowrelay_message& m = h->messages[i];
        result.entries.push_back({m.offset, m.lane, std::string(m.data.ptr, m.data.len)});
        // A reply's entry (SNAPSHOT, REPLY) keeps what its frame says; its text, like a live
        // delta's, must reach the client as valid UTF-8.
        if (const flowrelay_reply* r = sdk::reply_of(m); r && r->kind != FLOWRELAY_KIND_MESSAGE) {
          HistoryResult::Entry& e = result.entries.back();
          e.lane = FLOWRELAY_LANE_MESSAGE;
          if (!is_valid_utf8(e.data)) e.data = repair_utf8(e.data);
          e.reply = {r->kind,
                     std::string(sdk::view(r->id)),
                     std::string(sdk::view(r->reason)),
                     std::string(sdk::view(r->error)),
                     r->seq,
                     r->ttft_ms,
                     r->duration_ms,
                     r->bytes};
        }
      }
    }
  } catch (const std::bad_alloc&) {
    result.status = FLOWRELAY_ENOMEM;  // answered as not recovered
    result.entries.clear();
  }
  try {
    call->loop->post_history(std::move(call->result));
  } catch (const std::bad_alloc&) {
    // The loop's inbox could not grow: the session waits for its handshake timer instead.
  }
}

}  // namespace

// The session is already a member of its channel (so no live message can slip past it) and
// holds live frames until the answer is in.
void EventLoop::read_history(Connection& s, uint64_t since) {
  Connection& c = s;
  c.recovering = true;
  _recovering[s.id()] = &c;
  auto call = std::make_unique<HistoryCall>(HistoryCall{this, std::make_unique<HistoryResult>()});
  call->result->session = s.id();
  const flowrelay_status status =
      _ctx.host.history(c.channel->name, since, history_answered, call.get());
  if (status == FLOWRELAY_OK) {
    call.release();  // history_answered owns it and will post the answer
    return;
  }
  call->result->status = status;
  post_history(std::move(call->result));  // answered like any other: recovered:false
}

void EventLoop::on_history(std::unique_ptr<HistoryResult> result) {
  auto it = _recovering.find(result->session);
  if (it == _recovering.end()) return;  // the session left meanwhile
  Connection* c = it->second;
  _recovering.erase(it);
  c->recovering = false;
  c->replay(*result);
}

}  // namespace flowrelay::stream
