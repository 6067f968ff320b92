// Resume (?since=N&epoch=E, envelope mode): replay the history after N, then a "resumed" frame,
// then live frames, with no gap and no duplicate across the seam. See docs/PROTOCOL.md.
//
// The session joins the channel's members first (so no live message can slip past it), then
// asks the broker for the history. Live frames arriving before the answer are held; the
// answer is replayed, the held frames follow minus those the replay already carried.
#include "envelope.h"
#include "event_loop.h"

namespace flowrelay::ws {

namespace {

struct HistoryCall {
  EventLoop* loop;
  uint64_t session;
};

// [any thread, maybe inside history()] Copies what the broker lent and hands it to the loop.
void on_history(void* ctx, flowrelay_status status, const flowrelay_history* h) {
  std::unique_ptr<HistoryCall> call(static_cast<HistoryCall*>(ctx));
  auto result = std::make_unique<HistoryResult>();
  result->session = call->session;
  result->status = status;
  try {
    if (status == FLOWRELAY_OK && h) {
      result->epoch.assign(h->epoch.ptr, h->epoch.len);
      result->top = h->top;
      result->entries.reserve(h->count);
      for (size_t i = 0; i < h->count; ++i) {
        const flowrelay_message& m = h->messages[i];
        result->entries.push_back({m.offset, m.lane, std::string(m.data.ptr, m.data.len)});
      }
    }
  } catch (const std::bad_alloc&) {
    result->status = FLOWRELAY_ENOMEM;
    result->entries.clear();
  }
  call->loop->post_history(std::move(result));
}

// Did the broker's answer cover everything after `since` of the client's epoch?
bool recovered(const Resume& r, const HistoryResult& h) {
  if (h.status != FLOWRELAY_OK) return false;
  if (!r.epoch.empty() && r.epoch != h.epoch) return false;  // history was reset
  if (h.epoch.empty()) return r.since == 0;  // nothing was ever kept: nothing to miss
  if (r.since > h.top) return false;         // an offset this epoch never reached
  if (h.entries.empty()) return r.since == h.top;
  return h.entries.front().offset == r.since + 1;  // else the oldest were trimmed
}

}  // namespace

void EventLoop::start_resume(Connection* c) {
  _recovering[c->id] = c;
  const std::string& ch = c->channel->name;
  auto* call = new HistoryCall{this, c->id};
  flowrelay_status s = FLOWRELAY_EUNSUPPORTED;
  if (FLOWRELAY_HAS_SLOT(_ctx.api, flowrelay_transport_host_api, history) && _ctx.api->history)
    s = _ctx.api->history(_ctx.host, {ch.data(), ch.size()}, c->resume->since, on_history, call);
  if (s == FLOWRELAY_OK) return;  // on_history owns `call` and will post the answer
  delete call;
  auto result = std::make_unique<HistoryResult>();
  result->session = c->id;
  result->status = s;
  post_history(std::move(result));  // answered like any other: recovered:false
}

bool EventLoop::replayed_already(Connection* c, const SharedFrame* f) {
  if (!c->seam_offset || !f->offset()) return false;
  // Just after a replay, a live frame may repeat one the replay already sent (history and
  // live deliveries travel separately); offsets of a channel arrive in order, so the first
  // newer one closes the seam for good.
  if (f->offset() <= c->seam_offset) return true;
  c->seam_offset = 0;
  return false;
}

void EventLoop::hold(Connection* c, SharedFrame* f) {
  Resume& r = *c->resume;
  const uint64_t max = _ctx.limits.max_outbound_bytes.load(std::memory_order_relaxed);
  if (r.overflow || r.held_bytes + f->size() > max) {
    r.overflow = true;
    f->unref();
    return;
  }
  r.held.push_back(f);
  r.held_bytes += f->size();
}

void EventLoop::finish_resume(Connection* c, const HistoryResult& h) {
  std::unique_ptr<Resume> r(c->resume);
  c->resume = nullptr;
  if (c->state != ConnState::Open || !c->channel) return;
  if (r->overflow) {
    // More live traffic arrived during the read than the session may queue: closed like any
    // slow consumer; it can resume again from its last offset.
    _stats.slow_consumer_closes.add();
    return send_close(c, close_code::PolicyViolation, "slow consumer");
  }
  const bool ok = recovered(*r, h);
  (ok ? _stats.resumes_recovered : _stats.resumes_unrecovered).add();
  uint64_t last = ok ? r->since : h.top;
  const std::string& channel = c->channel->name;
  if (ok) {
    for (const auto& e : h.entries) {
      SharedFrame* f = SharedFrame::message(channel, Opcode::Text,
                                            envelope_message(e.lane, e.offset, h.epoch, e.data));
      f->set_position(e.lane, e.offset);
      send(c, f);
      last = e.offset;
      _stats.deliveries.add();
    }
  }
  send(c, SharedFrame::message({}, Opcode::Text, envelope_resumed(ok, last, h.epoch)));
  // The held frames continue the stream; those the replay (or, when not recovered, the
  // reported offset) already covers are dropped.
  c->seam_offset = last;
  for (SharedFrame*& f : r->held) {
    SharedFrame* frame = f;
    f = nullptr;  // ownership moves on (~Resume must not release it again)
    if (replayed_already(c, frame)) {
      frame->unref();
      continue;
    }
    send(c, frame);
    _stats.deliveries.add();
  }
  r->held.clear();
}

}  // namespace flowrelay::ws
