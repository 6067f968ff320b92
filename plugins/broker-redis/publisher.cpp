#include "publisher.h"

#include <Poco/DigestEngine.h>
#include <Poco/SHA1Engine.h>

#include <algorithm>
#include <utility>

#include "history_scripts.h"
#include "reply_scripts.h"

namespace flowrelay::redis {

namespace {

// SCRIPT LOAD answers with this too; knowing it up front lets EVALSHA follow in the same write.
std::string sha1_hex(const std::string& text) {
  Poco::SHA1Engine sha1;
  sha1.update(text);
  return Poco::DigestEngine::digestToHex(sha1.digest());
}

bool is_noscript(const redisReply* r) {
  return r->type == REDIS_REPLY_ERROR && str_of(r).starts_with("NOSCRIPT");
}

}  // namespace

Publisher::Publisher(RedisContext& ctx, LinkEvents& events, WakeFn wake, void* owner)
    : _ctx(ctx),
      _link(ctx, events, "publisher", "flowrelay-pub", true),
      _scripts{sha1_hex(append_script()), sha1_hex(history_script()), sha1_hex(reply_script())},
      _wake(wake),
      _owner(owner) {}

// ---------------------------------------------------------------------------- any thread

flowrelay_status Publisher::enqueue(PublisherRequest&& r) {
  const uint64_t size = r.bytes();
  if (r.kind != PublisherRequest::Kind::History) r.origin.node = _ctx.host.node_id();
  bool first = false;
  {
    std::lock_guard lock(_mutex);
    // Checked and counted under the lock: concurrent publishers cannot pass the bound together,
    // and the count is up before the broker thread can take the request and complete it.
    if (buffered_messages() >= _ctx.live.buffer_max_messages.load() ||
        buffered_bytes() + size > _ctx.live.buffer_max_bytes.load()) {
      _ctx.count.add(_ctx.count.buffer_full);
      return FLOWRELAY_EAGAIN;  // the caller tells its client (close 1013): never silent loss
    }
    _buffered_messages.fetch_add(1, std::memory_order_relaxed);
    _buffered_bytes.fetch_add(size, std::memory_order_relaxed);
    // Numbered in outbox order, which is the order of the writes to Redis and of any resend:
    // what makes "seq <= last seen from this node" mean a resend (history_scripts.h).
    if (r.kind == PublisherRequest::Kind::Publish) r.origin.seq = ++_next_seq;
    _outbox.push_back(std::move(r));
    if (!_wake_pending) first = _wake_pending = true;
  }
  if (first) _wake(_owner);
  return FLOWRELAY_OK;
}

// ---------------------------------------------------------------------------- broker thread

void Publisher::take_outbox() {
  std::vector<PublisherRequest> outbox;
  {
    std::lock_guard lock(_mutex);
    outbox.swap(_outbox);
    _wake_pending = false;
  }
  for (auto& r : outbox) _pending.push_back(std::move(r));
}

void Publisher::set_ready(bool ready) {
  _ready = ready;
  send_pending();
}

void Publisher::send_pending() {
  // Held until this node has resubscribed too: a message published before its own SUBSCRIBE
  // is back would never reach this node's sessions (the sender's echo included). Held while
  // the scripts are reloaded, so that what is resent keeps its place in the order.
  if (!_link.up() || !_ready || _reloading) return;
  const HistoryBounds bounds{_ctx.live.history_size.load(), _ctx.live.history_max_age_ms.load(),
                             _ctx.live.history_max_bytes.load()};
  const bool wait = _ctx.live.wait_replicas.load() > 0;
  bool stored = false;
  // Everything queued is appended to hiredis' output buffer and leaves in one write.
  while (!_pending.empty()) {
    PublisherRequest& r = _pending.front();
    if (r.kind != PublisherRequest::Kind::History) {
      // Looked up when written, not when queued: the newest acknowledgement counts.
      const ChannelFloors::Floor* floor = _floors.find(r.channel);
      r.floor_epoch = floor ? floor->epoch : std::string();
      r.floor_offset = floor ? floor->offset : 0;
    }
    if (r.write(_link.context(), reply_cb, this, _scripts, bounds) != REDIS_OK)
      return;  // the context is going down; the request stays pending
    r.awaits_wait = wait && r.stores();
    stored = stored || r.awaits_wait;
    if (_inflight.empty()) _progress_ms = monotonic_ms();
    _inflight.push_back(std::move(r));
    _pending.pop_front();
  }
  if (stored) write_wait();
}

// One WAIT per batch, not per write: it blocks this connection's pipeline until the replicas
// answer, and it covers every earlier write of the connection anyway.
void Publisher::write_wait() {
  if (redisAsyncCommand(_link.context(), reply_cb, this, "WAIT %u %u",
                        _ctx.live.wait_replicas.load(),
                        _ctx.live.wait_timeout_ms.load()) != REDIS_OK)
    return;  // going down: the batch is requeued unanswered
  PublisherRequest marker;
  marker.kind = PublisherRequest::Kind::Wait;
  marker.internal = true;
  _inflight.push_back(std::move(marker));
}

void Publisher::wait_answered(const redisReply* reply) {
  const uint32_t want = _ctx.live.wait_replicas.load();
  const long long got = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
  if (got >= 0 && static_cast<uint64_t>(got) >= want) {
    _wait_short_logged = false;
  } else if (want > 0) {
    // The writes are in the master all the same: completed, but a failover now may lose them.
    _ctx.count.add(_ctx.count.wait_short);
    if (!_wait_short_logged) {
      _wait_short_logged = true;
      _ctx.log(FLOWRELAY_LOG_WARNING,
               got < 0 ? "redis refused WAIT (" + std::string(str_of(reply)) +
                             "): writes completed without the replicas' acknowledgement"
                       : "only " + std::to_string(got) + " of " + std::to_string(want) +
                             " replicas acknowledged within wait_timeout_ms: writes completed "
                             "anyway (a failover now may lose them)");
    }
  }
  auto batch = std::move(_awaiting_wait);
  _awaiting_wait.clear();
  for (auto& [request, copied] : batch) finish(request, copied.get());
}

void Publisher::on_connected() {
  // Before any EVALSHA (hiredis keeps the order): Redis may have restarted without them.
  load_scripts();
}

void Publisher::on_down() { requeue_unanswered(); }

int64_t Publisher::check(int64_t now) {
  if (now >= _next_sweep_ms) {
    const uint64_t max_age = _ctx.live.history_max_age_ms.load();
    _floors.sweep(now - static_cast<int64_t>(max_age));
    _next_sweep_ms = now + static_cast<int64_t>(std::clamp<uint64_t>(max_age / 4, 1000, 60000));
  }
  if (!_link.up() || _inflight.empty()) return INT64_MAX;
  // A WAIT may hold the pipeline for wait_timeout_ms on top of Redis' own answer.
  const uint32_t timeout =
      _ctx.live.command_timeout_ms.load() +
      (_ctx.live.wait_replicas.load() > 0 ? _ctx.live.wait_timeout_ms.load() : 0);
  if (now - _progress_ms <= timeout) return _progress_ms + timeout + 1;
  _link.drop("no reply from Redis within command_timeout_ms", false);
  return INT64_MAX;
}

void Publisher::load_scripts() {
  for (const std::string& script : {append_script(), history_script(), reply_script()})
    redisAsyncCommand(_link.context(), script_load_cb, this, "SCRIPT LOAD %b", script.data(),
                      script.size());
}

void Publisher::script_load_cb(redisAsyncContext*, void* r, void* priv) {
  auto* self = static_cast<Publisher*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || self->_ctx.closing) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    // History cannot work, plain publishes still can: keep the link, fail what needs scripts.
    self->_scripts_refused = true;
    self->_ctx.report(FLOWRELAY_EINTERNAL,
                      "redis refused to load the history scripts: " + std::string(str_of(reply)));
    return;
  }
  self->_scripts_refused = false;
  const std::string_view sha = str_of(reply);
  if (sha != self->_scripts.append_sha && sha != self->_scripts.history_sha &&
      sha != self->_scripts.reply_sha)
    self->_ctx.log(FLOWRELAY_LOG_ERROR,
                   "redis returned an unexpected SHA for a history script: " + std::string(sha));
}

void Publisher::reply_cb(redisAsyncContext*, void* r, void* priv) {
  auto* self = static_cast<Publisher*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || self->_inflight.empty()) return;  // link lost: requeued by on_down()
  PublisherRequest request = std::move(self->_inflight.front());
  self->_inflight.pop_front();
  self->_progress_ms = monotonic_ms();
  if (request.kind == PublisherRequest::Kind::Wait)
    self->wait_answered(reply);
  else if (is_noscript(reply) && !self->_scripts_refused)
    self->retry_after_reload(std::move(request));
  else if (request.awaits_wait)
    self->_awaiting_wait.emplace_back(std::move(request), copy_reply(reply));
  else
    self->finish(request, reply);
  if (self->_reloading && self->_inflight.empty()) self->finish_reload();
}

void Publisher::finish(const PublisherRequest& request, const redisReply* reply) {
  PublisherRequest::Ack ack;
  if (request.internal) {
    request.complete(reply, &ack);  // a failure is the gap fill's to log
    noted(request, ack);
    return;
  }
  // Released first: a completion may publish again.
  _buffered_messages.fetch_sub(1, std::memory_order_relaxed);
  _buffered_bytes.fetch_sub(request.bytes(), std::memory_order_relaxed);
  const bool read = request.kind == PublisherRequest::Kind::History;
  auto& count = _ctx.count;
  const auto outcome = request.complete(reply, &ack);
  noted(request, ack);
  switch (outcome) {
    case PublisherRequest::Outcome::Done:
      count.add(read ? count.history_reads : count.published);
      return;
    case PublisherRequest::Outcome::Resent:
      count.add(count.resends_stored_once);
      return;
    case PublisherRequest::Outcome::ResentLost:
      count.add(count.resends_stored_once);
      count.add(count.resend_offsets_lost);
      _ctx.log(FLOWRELAY_LOG_WARNING,
               "a publish on " + request.channel + " resent after a lost reply was stored " +
                   "already, but its entry is no longer in history: completed with offset 0");
      return;
    case PublisherRequest::Outcome::Answered:
      return;
    case PublisherRequest::Outcome::Refused:
      break;
  }
  count.add(count.publish_errors);
  const std::string why =
      reply->type == REDIS_REPLY_ERROR ? std::string(str_of(reply)) : "unexpected reply";
  _ctx.report(FLOWRELAY_EINTERNAL,
              std::string("redis rejected ") +
                  (read                                            ? "a history read of "
                   : request.kind == PublisherRequest::Kind::Reply ? "a reply step on "
                                                                   : "a publish on ") +
                  request.channel + ": " + why);
}

void Publisher::noted(const PublisherRequest& request, const PublisherRequest::Ack& ack) {
  if (ack.fenced) {
    // One line per regression: the fence starts a new epoch, so the floor of the old one
    // (still carried by the rest of this batch) no longer matches and fences nothing more.
    _ctx.count.add(_ctx.count.history_regressions);
    _ctx.log(FLOWRELAY_LOG_WARNING,
             "history of " + request.channel + " had lost writes this node knew of (epoch " +
                 request.floor_epoch + " ended before offset " +
                 std::to_string(request.floor_offset) +
                 ": a failover to a replica that lagged?): started epoch " + ack.epoch +
                 "; clients resuming the old one get recovered:false");
  }
  _floors.note(request.channel, ack.epoch, ack.offset, monotonic_ms());
}

// Redis lost the scripts (SCRIPT FLUSH, or a failover to a replica that never had them).
// Everything sent before the reload is refused alike (unless another client reloaded them in
// between): collect it, then reload and resend it, ahead of what was never sent.
void Publisher::retry_after_reload(PublisherRequest&& request) {
  if (!_reloading) {
    _reloading = true;
    _ctx.count.add(_ctx.count.script_reloads);
    _ctx.report(FLOWRELAY_EINTERNAL,
                "redis lost the history scripts (NOSCRIPT): reloading them and "
                "resending what it refused");
  }
  _retry.push_back(std::move(request));
}

void Publisher::finish_reload() {
  requeue_refused();
  _reloading = false;
  load_scripts();
  send_pending();
}

void Publisher::requeue_unanswered() {
  // Unanswered requests go back in front, in order, behind those refused with NOSCRIPT (the
  // oldest): Redis may have run some before the link broke; the append script recognises
  // those by origin and does not store them twice. The scripts are loaded again on connect.
  // Those answered but still waiting for their WAIT are the oldest: the resend is stored once
  // if they did reach the replicas, appended anew if the new master never had them.
  while (!_inflight.empty()) {
    if (_inflight.back().kind != PublisherRequest::Kind::Wait) {
      _inflight.back().may_have_run = true;
      _pending.push_front(std::move(_inflight.back()));
    }
    _inflight.pop_back();
  }
  while (!_awaiting_wait.empty()) {
    _awaiting_wait.back().first.may_have_run = true;
    _pending.push_front(std::move(_awaiting_wait.back().first));
    _awaiting_wait.pop_back();
  }
  requeue_refused();
  _reloading = false;
}

// What Redis refused with NOSCRIPT goes back in front, in order. A publish of it that never ran
// cannot keep its seq: a later one may have run meanwhile (another node reloaded the scripts
// between the two), and the append script would take the retry for a resend of an appended
// seq and drop it. It takes a new seq instead, and so does every publish never written behind
// it, so that seqs still reach Redis in ascending order (history_scripts.h); those that may
// have run keep theirs and go first.
void Publisher::requeue_refused() {
  const bool renumber = std::any_of(_retry.begin(), _retry.end(), [](const auto& r) {
    return r.kind == PublisherRequest::Kind::Publish && !r.may_have_run;
  });
  while (!_retry.empty()) {
    _pending.push_front(std::move(_retry.back()));
    _retry.pop_back();
  }
  if (!renumber) return;
  std::lock_guard lock(_mutex);  // the outbox's publishes are never written yet either
  for (auto& r : _outbox) _pending.push_back(std::move(r));
  _outbox.clear();
  _wake_pending = false;
  const auto ran = [](const PublisherRequest& r) {
    return r.kind == PublisherRequest::Kind::Publish && r.may_have_run;
  };
  std::stable_partition(_pending.begin(), _pending.end(), ran);
  for (auto& r : _pending)
    if (r.kind == PublisherRequest::Kind::Publish && !r.may_have_run) r.origin.seq = ++_next_seq;
}

void Publisher::abandon() {
  std::vector<PublisherRequest> outbox;
  {
    std::lock_guard lock(_mutex);
    outbox.swap(_outbox);
  }
  // Answered by Redis, only their WAIT is missing: completed as answered.
  for (const auto& [request, copied] : _awaiting_wait) request.complete(copied.get());
  for (auto* queue : {&_retry, &_inflight, &_pending})
    for (const auto& request : *queue)
      if (request.kind != PublisherRequest::Kind::Wait) request.fail(FLOWRELAY_EUNAVAIL);
  for (const auto& request : outbox) request.fail(FLOWRELAY_EUNAVAIL);
}

}  // namespace flowrelay::redis
