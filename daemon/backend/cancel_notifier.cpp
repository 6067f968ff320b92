#include "cancel_notifier.h"

#include "backend_messages.h"
#include "router.h"

namespace flowrelay {

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr ? s.ptr : "", s.len}; }

}  // namespace

// The caller's completion, and the event to send if the broker seals the reply with this END.
struct CancelNotifier::Pending {
  CancelNotifier* notifier;
  flowrelay_reply_published_fn done;
  void* ctx;
  std::string body;
};

flowrelay_status CancelNotifier::publish(std::string_view channel, const flowrelay_message& message,
                                         const flowrelay_client_info& client,
                                         flowrelay_reply_published_fn done, void* ctx) {
  std::string_view conversation = view(client.conversation);
  if (conversation.empty() && channel.substr(0, _channel_prefix.size()) == _channel_prefix)
    conversation = channel.substr(_channel_prefix.size());
  const std::string who = _node_hex + "-" + std::to_string(client.session);
  auto p = std::make_unique<Pending>(
      Pending{this, done, ctx,
              cancel_event_body(conversation, view(message.reply->id), view(client.user), who,
                                view(client.remote_addr))});
  const flowrelay_status s = _router.publish_reply(channel, message, on_sealed, p.get());
  if (s == FLOWRELAY_OK || s == FLOWRELAY_PENDING) p.release();  // on_sealed owns it
  return s;
}

void CancelNotifier::on_sealed(void* ctx, const flowrelay_reply_published* result) noexcept {
  std::unique_ptr<Pending> p(static_cast<Pending*>(ctx));
  // The event follows the seal; the client's answer does not wait for it.
  if (result && result->status == FLOWRELAY_OK && !result->duplicate) {
    try {
      p->notifier->notify(std::move(p->body));
    } catch (...) {
      // Out of memory: no event (best effort); the client still gets its answer.
    }
  }
  if (p->done) p->done(p->ctx, result);
}

void CancelNotifier::notify(std::string body) {
  if (_in_flight.fetch_add(1, std::memory_order_relaxed) >=
      _max_queued.load(std::memory_order_relaxed)) {
    _in_flight.fetch_sub(1, std::memory_order_relaxed);
    _metrics.count(BackendEndpoint::Cancel, BackendOutcome::Busy);
    return;
  }
  _pool.post(_url, std::move(body), [this](BackendAnswer&& a) {
    if (a.seconds > 0) _metrics.observe(BackendEndpoint::Cancel, a.seconds);
    _metrics.count(BackendEndpoint::Cancel, delivery_outcome(a));
    _in_flight.fetch_sub(1, std::memory_order_relaxed);
  });
}

}  // namespace flowrelay
