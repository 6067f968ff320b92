#include "publish_proxy.h"

#include "backend_messages.h"
#include "client_relay.h"
#include "router.h"

namespace flowrelay {

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr ? s.ptr : "", s.len}; }

}  // namespace

flowrelay_status PublishProxy::publish(std::string_view channel, const flowrelay_message& message,
                                       const flowrelay_client_info& client,
                                       flowrelay_client_published_fn done, void* ctx) {
  // Reserve a place first, so that the bound holds under concurrent callers.
  if (_queued.fetch_add(1, std::memory_order_relaxed) >=
      _max_queued.load(std::memory_order_relaxed)) {
    _queued.fetch_sub(1, std::memory_order_relaxed);
    _metrics.count(BackendEndpoint::Publish, BackendOutcome::Busy);
    return FLOWRELAY_EAGAIN;
  }
  auto p = std::make_unique<Pending>();
  p->channel = channel;
  p->lane = message.lane;
  p->origin = message.origin;
  p->data = view(message.data);
  p->done = done;
  p->ctx = ctx;
  std::string_view conversation = view(client.conversation);
  if (conversation.empty() && channel.substr(0, _channel_prefix.size()) == _channel_prefix)
    conversation = channel.substr(_channel_prefix.size());
  const std::string who = _node_hex + "-" + std::to_string(client.session);
  p->body = publish_request_body(conversation, p->lane, p->data, view(client.user), who,
                                 view(client.remote_addr));
  Pending* first = nullptr;
  {
    std::lock_guard lock(_mutex);
    Queue& q = _sessions[client.session];
    q.push_back(std::move(p));
    if (q.size() == 1) first = q.front().get();
  }
  if (first) send(client.session, *first);
  return FLOWRELAY_OK;
}

void PublishProxy::send(uint64_t session, Pending& pending) {
  // `pending` stays at the front of its queue (so alive) until answered() pops it.
  _pool.post(_url, pending.body, [this, session, &pending](BackendAnswer&& answer) {
    answered(session, pending, std::move(answer));
  });
}

void PublishProxy::answered(uint64_t session, Pending& p, BackendAnswer&& answer) {
  if (answer.failure != BackendAnswer::Failure::Unavailable || answer.seconds > 0)
    _metrics.observe(BackendEndpoint::Publish, answer.seconds);
  const PublishVerdict v = judge_publish_answer(answer);
  const BackendOutcome outcome = v.outcome;
  if (v.publish()) {
    flowrelay_message m{};
    m.struct_size = sizeof m;
    m.lane = p.lane;
    m.origin = p.origin;
    const std::string& data = v.outcome == BackendOutcome::Rewritten ? v.data : p.data;
    m.data = {data.data(), data.size()};
    const flowrelay_status s = relay_client_message(_router, p.channel, m, p.done, p.ctx);
    if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) {
      _metrics.count(BackendEndpoint::Publish, outcome);
    } else {  // the backend said yes, the broker could not take it
      _metrics.count(BackendEndpoint::Publish, BackendOutcome::Unavailable);
      report_client_message(p.done, p.ctx, s, client_code_of(s), client_reason_of(s));
    }
  } else {
    // Counted before the client hears of it. A refusal (4xx) is the client's to fix (EINVAL);
    // a failure (503) may pass (EUNAVAIL).
    _metrics.count(BackendEndpoint::Publish, outcome);
    const flowrelay_status s = outcome == BackendOutcome::Private ? FLOWRELAY_OK
                               : v.code < 500                     ? FLOWRELAY_EINVAL
                                                                  : FLOWRELAY_EUNAVAIL;
    report_client_message(p.done, p.ctx, s, v.code, v.reason);
  }
  // Only now may the session's next message go: the router has this one.
  Pending* next = nullptr;
  {
    std::lock_guard lock(_mutex);
    auto it = _sessions.find(session);
    Queue& q = it->second;
    q.pop_front();  // frees `p`
    if (q.empty())
      _sessions.erase(it);
    else
      next = q.front().get();
  }
  _queued.fetch_sub(1, std::memory_order_relaxed);
  if (next) send(session, *next);
}

}  // namespace flowrelay
