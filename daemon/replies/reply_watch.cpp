#include "replies/reply_watch.h"

#include <flowrelay/plugin.hpp>

#include <Poco/Logger.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>

namespace flowrelay {

namespace {

using sdk::view;

// With the timeout off, a reply that never ends is still forgotten after this long without a
// step (the watch's memory must not grow with abandoned replies).
constexpr int64_t kForgetUs = int64_t{3600} * 1000 * 1000;
// A seal the broker could not take (unavailable, full) is tried again this soon.
constexpr int64_t kSealRetryUs = int64_t{5000} * 1000;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

constexpr std::string_view kProducerLost = "producer_lost";

}  // namespace

struct ReplyWatch::SealCtx {
  ReplyWatch* watch;
  std::string channel;
  std::string reply;
};

ReplyWatch::ReplyWatch(uint64_t node_id, DeliverFn deliver, PublishFn publish)
    : _node_id(node_id), _deliver(std::move(deliver)), _publish(std::move(publish)) {}

int64_t ReplyWatch::now_us() {
  // Microseconds: inter-token gaps are often below a millisecond.
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

void ReplyWatch::set_timers(uint32_t stall_ms, uint32_t timeout_ms) {
  std::lock_guard lock(_mutex);
  if (stall_ms == _stall_ms && timeout_ms == _timeout_ms) return;
  _stall_ms = stall_ms;
  _timeout_ms = timeout_ms;
  // Deadlines may move earlier: every reply is armed anew.
  _heap = {};
  for (auto& [channel, replies] : _channels)
    for (auto& [id, w] : replies) {
      w.armed_us = 0;
      arm_locked(channel, id, w);
    }
  _wake.notify_all();
}

void ReplyWatch::watch_channel(std::string_view channel) {
  std::lock_guard lock(_mutex);
  if (_channels.find(channel) == _channels.end())
    _channels.emplace(std::string(channel), Replies{});
}

void ReplyWatch::forget_channel(std::string_view channel) {
  std::lock_guard lock(_mutex);
  auto it = _channels.find(channel);
  if (it == _channels.end()) return;
  _open -= it->second.size();
  _channels.erase(it);  // its heap items find nothing when they fire
}

size_t ReplyWatch::open() const {
  std::lock_guard lock(_mutex);
  return _open;
}

int64_t ReplyWatch::due_locked(const Watched& w) const {
  int64_t due = kNever;
  if (_stall_ms != 0 && !w.stalled) due = std::min(due, w.last_us + int64_t{_stall_ms} * 1000);
  if (_timeout_ms == 0)
    due = std::min(due, w.last_us + kForgetUs);
  else if (!w.sealing)
    due = std::min(due, w.last_us + int64_t{_timeout_ms} * 1000);
  return due == kNever ? 0 : due;
}

void ReplyWatch::arm_locked(std::string_view channel, std::string_view reply, Watched& w) {
  const int64_t due = due_locked(w);
  // The live item fires at or before `due`: nothing to do (the common case of a delta).
  if (due == 0 || (w.armed_us != 0 && w.armed_us <= due) || _stopping) return;
  w.armed_us = due;  // an older item of this reply no longer matches: it is skipped
  const bool earliest = _heap.empty() || due < _heap.top().at;
  _heap.push({due, std::string(channel), std::string(reply)});
  if (!_thread.joinable())
    _thread = std::thread([this] { run(); });
  else if (earliest)
    _wake.notify_all();
}

void ReplyWatch::observe(std::string_view channel, const flowrelay_message& message,
                         const flowrelay_reply& reply) {
  const std::string_view id = view(reply.id);
  const bool ours = message.origin.node == _node_id;
  switch (reply.kind) {
    case FLOWRELAY_KIND_OPEN:
    case FLOWRELAY_KIND_DELTA:
    case FLOWRELAY_KIND_SNAPSHOT: {
      const int64_t now = now_us();
      std::lock_guard lock(_mutex);
      auto ch = _channels.find(channel);
      if (ch == _channels.end()) return;  // no local session: not ours to watch
      auto it = ch->second.find(id);
      const bool fresh = it == ch->second.end();
      if (fresh) {
        it = ch->second.emplace(std::string(id), Watched{}).first;
        ++_open;
      } else if (reply.kind == FLOWRELAY_KIND_SNAPSHOT) {
        return;  // a gap fill's snapshot is no sign of life of a reply already watched
      }
      Watched& w = it->second;
      w.last_us = now;
      if (reply.kind == FLOWRELAY_KIND_DELTA) {
        if (ours && w.last_delta_us != 0) _metrics.inter_token((now - w.last_delta_us) / 1e6);
        w.last_delta_us = ours ? now : 0;
      }
      if (reply.kind != FLOWRELAY_KIND_OPEN) w.seq = reply.seq;
      w.stalled = false;
      arm_locked(channel, id, w);
      return;
    }
    case FLOWRELAY_KIND_END:
      if (ours) _metrics.ended(view(reply.reason), reply.ttft_ms, reply.seq, reply.bytes);
      [[fallthrough]];
    case FLOWRELAY_KIND_REPLY: {
      std::lock_guard lock(_mutex);
      auto ch = _channels.find(channel);
      if (ch == _channels.end()) return;
      auto it = ch->second.find(id);
      if (it == ch->second.end()) return;
      ch->second.erase(it);
      --_open;
      return;
    }
    default:
      return;
  }
}

void ReplyWatch::fire_locked(const Due& due, int64_t now, std::vector<Action>& actions) {
  auto ch = _channels.find(due.channel);
  if (ch == _channels.end()) return;
  auto it = ch->second.find(due.reply);
  if (it == ch->second.end() || it->second.armed_us != due.at) return;  // gone, or re-armed
  Watched& w = it->second;
  w.armed_us = 0;
  if (_stall_ms != 0 && !w.stalled && now >= w.last_us + int64_t{_stall_ms} * 1000) {
    w.stalled = true;
    _metrics.stalled();
    actions.push_back({false, due.channel, due.reply, w.seq});
  }
  if (_timeout_ms == 0 && now >= w.last_us + kForgetUs) {
    ch->second.erase(it);
    --_open;
    return;
  }
  if (_timeout_ms != 0 && !w.sealing && now >= w.last_us + int64_t{_timeout_ms} * 1000) {
    w.sealing = true;
    actions.push_back({true, due.channel, due.reply, w.seq});
  }
  arm_locked(due.channel, due.reply, w);
}

void ReplyWatch::act(const Action& a) {
  flowrelay_reply r{};
  r.struct_size = sizeof r;
  r.id = sdk::str(a.reply);
  r.seq = a.seq;
  r.ttft_ms = -1;
  r.duration_ms = -1;
  flowrelay_message m = sdk::make_message(FLOWRELAY_LANE_MESSAGE, {});
  m.origin.node = _node_id;
  m.reply = &r;
  if (!a.seal) {
    r.kind = FLOWRELAY_KIND_STALLED;
    _deliver(a.channel, m);
    return;
  }
  r.kind = FLOWRELAY_KIND_END;
  r.seq = 0;
  r.reason = sdk::str(kProducerLost);
  auto ctx = std::make_unique<SealCtx>(SealCtx{this, a.channel, a.reply});
  auto on_sealed = [](void* p, const flowrelay_reply_published* result) noexcept {
    std::unique_ptr<SealCtx> c(static_cast<SealCtx*>(p));
    try {
      c->watch->sealed(*c, result ? result->status : FLOWRELAY_EINTERNAL);
      if (result && result->status == FLOWRELAY_OK && !result->duplicate)
        Poco::Logger::get("replies").information(
            "reply '" + c->reply + "' of " + c->channel +
            ": no delta within channels.reply_timeout_ms, sealed (producer_lost)");
    } catch (...) {
      // Nothing may cross into the broker; the reply is tried again or forgotten by then.
    }
  };
  const flowrelay_status s = _publish(a.channel, m, on_sealed, ctx.get());
  if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) {
    ctx.release();  // on_sealed owns it
    return;
  }
  sealed(*ctx, s);
}

void ReplyWatch::sealed(const SealCtx& c, flowrelay_status status) {
  std::lock_guard lock(_mutex);
  auto ch = _channels.find(c.channel);
  if (ch == _channels.end()) return;
  auto it = ch->second.find(c.reply);
  if (it == ch->second.end()) return;  // its END was delivered already
  // OK (ours, or another node's first), ECONFLICT (it had ended otherwise): the broker has it
  // sealed. EUNSUPPORTED: it never will. Anything else may pass: try again soon.
  if (status == FLOWRELAY_OK || status == FLOWRELAY_ECONFLICT || status == FLOWRELAY_EUNSUPPORTED ||
      _stopping) {
    ch->second.erase(it);
    --_open;
    return;
  }
  Watched& w = it->second;
  w.sealing = false;
  const int64_t timeout_us = int64_t{_timeout_ms} * 1000;
  w.last_us = now_us() - timeout_us + std::min(timeout_us, kSealRetryUs);
  arm_locked(c.channel, c.reply, w);
}

void ReplyWatch::run() {
  std::unique_lock lock(_mutex);
  std::vector<Action> actions;
  while (!_stopping) {
    if (_heap.empty()) {
      _wake.wait(lock);
      continue;
    }
    const int64_t now = now_us();
    if (_heap.top().at > now) {
      _wake.wait_for(lock, std::chrono::microseconds(_heap.top().at - now));
      continue;
    }
    while (!_heap.empty() && _heap.top().at <= now) {
      const Due due = _heap.top();
      _heap.pop();
      fire_locked(due, now, actions);
    }
    if (actions.empty()) continue;
    lock.unlock();
    for (const Action& a : actions) act(a);
    actions.clear();
    lock.lock();
  }
}

void ReplyWatch::stop() {
  {
    std::lock_guard lock(_mutex);
    _stopping = true;
  }
  _wake.notify_all();
  if (_thread.joinable() && _thread.get_id() != std::this_thread::get_id()) _thread.join();
}

}  // namespace flowrelay
