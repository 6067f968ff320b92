// The publisher's replies (publisher.h): matching them in order per pipe, completing requests,
// WAIT batches, NOSCRIPT reloads, and putting back what a lost link left unanswered.
#include <algorithm>
#include <utility>

#include "publisher.h"

namespace flowrelay::redis {

namespace {
bool is_noscript(const redisReply* r) {
  return r->type == REDIS_REPLY_ERROR && str_of(r).starts_with("NOSCRIPT");
}
}  // namespace

void Publisher::reply_cb(redisAsyncContext*, void* r, void* priv) {
  auto& pipe = *static_cast<PublisherPipe*>(priv);
  Publisher& self = *pipe.owner;
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || pipe.inflight.empty()) return;  // link lost: requeued by link_down()
  PublisherRequest request = std::move(pipe.inflight.front());
  pipe.inflight.pop_front();
  pipe.progress_ms = monotonic_ms();
  if (request.kind == PublisherRequest::Kind::Wait)
    self.wait_answered(pipe, reply);
  else if (is_noscript(reply) && !pipe.scripts_refused)
    self.retry_after_reload(pipe, std::move(request));
  else if (self._cluster && reply->type == REDIS_REPLY_ERROR &&
           self.redirected(pipe, request, reply))
    ;  // sent again, to where the cluster said
  else if (request.awaits_wait)
    pipe.awaiting_wait.emplace_back(std::move(request), copy_reply(reply));
  else
    self.finish(request, reply);
  if (pipe.reloading && pipe.inflight.empty()) self.finish_reload(pipe);
}

void Publisher::wait_answered(PublisherPipe& pipe, const redisReply* reply) {
  const uint32_t want = _ctx.live.wait_replicas.load();
  const long long got = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
  if (got >= 0 && static_cast<uint64_t>(got) >= want) {
    pipe.wait_short_logged = false;
  } else if (want > 0) {
    // The writes are in the master all the same: completed, but a failover now may lose them.
    _ctx.count.add(_ctx.count.wait_short);
    if (!pipe.wait_short_logged) {
      pipe.wait_short_logged = true;
      _ctx.log(FLOWRELAY_LOG_WARNING,
               got < 0 ? "redis refused WAIT (" + std::string(str_of(reply)) +
                             "): writes completed without the replicas' acknowledgement"
                       : "only " + std::to_string(got) + " of " + std::to_string(want) +
                             " replicas acknowledged within wait_timeout_ms: writes completed "
                             "anyway (a failover now may lose them)");
    }
  }
  auto batch = std::move(pipe.awaiting_wait);
  pipe.awaiting_wait.clear();
  for (auto& [request, copied] : batch) finish(request, copied.get());
}

void Publisher::finish(const PublisherRequest& request, const redisReply* reply) {
  landed(request);
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
void Publisher::retry_after_reload(PublisherPipe& pipe, PublisherRequest&& request) {
  if (!pipe.reloading) {
    pipe.reloading = true;
    _ctx.count.add(_ctx.count.script_reloads);
    _ctx.report(FLOWRELAY_EINTERNAL,
                "redis lost the history scripts (NOSCRIPT): reloading them and "
                "resending what it refused");
  }
  pipe.retry.push_back(std::move(request));
}

void Publisher::finish_reload(PublisherPipe& pipe) {
  requeue_refused(pipe);
  pipe.reloading = false;
  load_scripts(pipe);
  send_pending();
}

// Back into the pending queue at its place in the order (the queue is kept by `order`).
void Publisher::requeue(PublisherRequest&& r) {
  landed(r);
  const auto at =
      std::upper_bound(_pending.begin(), _pending.end(), r.order,
                       [](uint64_t order, const PublisherRequest& p) { return order < p.order; });
  _pending.insert(at, std::move(r));
}

void Publisher::requeue_unanswered(PublisherPipe& pipe) {
  // Unanswered requests go back in their place, behind those refused with NOSCRIPT (the
  // oldest): Redis may have run some before the link broke; the append script recognises
  // those by origin and does not store them twice. The scripts are loaded again on connect.
  // Those answered but still waiting for their WAIT are older still: the resend is stored once
  // if they did reach the replicas, appended anew if the new master never had them.
  auto put_back = [&](PublisherRequest&& r) {
    r.may_have_run = true;
    r.ask.reset();  // routed by the map again
    requeue(std::move(r));
  };
  for (auto& r : pipe.inflight)
    if (r.kind != PublisherRequest::Kind::Wait) put_back(std::move(r));
  pipe.inflight.clear();
  for (auto& entry : pipe.awaiting_wait) put_back(std::move(entry.first));
  pipe.awaiting_wait.clear();
  requeue_refused(pipe);
  pipe.reloading = false;
}

// What Redis refused with NOSCRIPT goes back in its place. A publish of it that never ran
// cannot keep its seq: a later one may have run meanwhile (another node reloaded the scripts
// between the two), and the append script would take the retry for a resend of an appended
// seq and drop it. It takes a new seq instead, and so does every publish never written behind
// it, so that seqs still reach Redis in ascending order (history_scripts.h); those that may
// have run keep theirs and go first.
void Publisher::requeue_refused(PublisherPipe& pipe) {
  const bool renumber = std::any_of(pipe.retry.begin(), pipe.retry.end(), [](const auto& r) {
    return r.kind == PublisherRequest::Kind::Publish && !r.may_have_run;
  });
  for (auto& r : pipe.retry) requeue(std::move(r));
  pipe.retry.clear();
  if (renumber) renumber_unrun();
}

// Every publish never run gets a new seq, in the queue's order, after those that may have run
// (which keep theirs: a resend is recognised by it); the outbox's join the queue first. Under
// the lock that numbers publishes: nothing queued meanwhile can take a seq between.
void Publisher::renumber_unrun() {
  std::lock_guard lock(_mutex);
  for (auto& r : _outbox) push_internal(std::move(r));
  _outbox.clear();
  _wake_pending = false;
  const auto ran = [](const PublisherRequest& r) {
    return r.kind == PublisherRequest::Kind::Publish && r.may_have_run;
  };
  std::stable_partition(_pending.begin(), _pending.end(), ran);
  // The queue's new order: after anything still in flight elsewhere (older), and renumbered.
  for (auto& r : _pending) {
    r.order = ++_next_order;
    if (r.kind == PublisherRequest::Kind::Publish && !r.may_have_run) r.origin.seq = ++_next_seq;
  }
}

}  // namespace flowrelay::redis
