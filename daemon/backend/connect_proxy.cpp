#include "connect_proxy.h"

#include <string>

#include "backend_messages.h"

namespace flowrelay {

namespace {

void answer(flowrelay_connect_fn done, void* ctx, const ConnectVerdict& v) {
  flowrelay_connect_result r{};
  r.struct_size = sizeof r;
  r.code = v.code;
  r.can_publish = v.code == 200 && v.can_publish ? 1 : 0;
  r.user = {v.user.data(), v.user.size()};
  r.reason = {v.reason.data(), v.reason.size()};
  done(ctx, &r);
}

}  // namespace

flowrelay_status ConnectProxy::authorize(const flowrelay_connect_request& request,
                                         flowrelay_connect_fn done, void* ctx) {
  if (!done) return FLOWRELAY_EINVAL;
  if (_waiting.fetch_add(1, std::memory_order_relaxed) >=
      _max_queued.load(std::memory_order_relaxed)) {
    _waiting.fetch_sub(1, std::memory_order_relaxed);
    _metrics.count(BackendEndpoint::Connect, BackendOutcome::Busy);
    ConnectVerdict busy;
    busy.outcome = BackendOutcome::Busy;
    busy.code = 503;
    busy.reason = "backend unavailable: too many handshakes waiting for the connect proxy";
    answer(done, ctx, busy);
    return FLOWRELAY_OK;
  }
  _pool.post(_url, connect_request_body(request), [this, done, ctx](BackendAnswer&& a) {
    if (a.seconds > 0) _metrics.observe(BackendEndpoint::Connect, a.seconds);
    const ConnectVerdict v = judge_connect_answer(a);
    _metrics.count(BackendEndpoint::Connect, v.outcome);
    _waiting.fetch_sub(1, std::memory_order_relaxed);
    answer(done, ctx, v);
  });
  return FLOWRELAY_OK;
}

}  // namespace flowrelay
