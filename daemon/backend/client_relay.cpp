#include "client_relay.h"

#include <new>

#include "router.h"

namespace flowrelay {

namespace {

struct Relay {
  flowrelay_client_published_fn done;
  void* ctx;
};

void on_published(void* ctx, flowrelay_status status, uint64_t offset,
                  flowrelay_str epoch) noexcept {
  const Relay relay = *static_cast<Relay*>(ctx);
  delete static_cast<Relay*>(ctx);
  flowrelay_client_published r{};
  r.struct_size = sizeof r;
  r.status = status;
  if (status == FLOWRELAY_OK) {
    r.relayed = 1;
    r.offset = offset;
    r.epoch = epoch;
  } else {
    r.code = client_code_of(status);
    const std::string_view why = client_reason_of(status);
    r.reason = {why.data(), why.size()};
  }
  relay.done(relay.ctx, &r);
}

}  // namespace

uint32_t client_code_of(flowrelay_status broker_status) {
  return broker_status == FLOWRELAY_EUNSUPPORTED ? 501 : 503;
}

std::string_view client_reason_of(flowrelay_status broker_status) {
  switch (broker_status) {
    case FLOWRELAY_EUNSUPPORTED:
      return "the broker does not carry this lane";
    case FLOWRELAY_EAGAIN:
      return "the broker's buffer is full; try again later";
    default:
      return "the broker could not take the message; try again later";
  }
}

flowrelay_status relay_client_message(Router& router, std::string_view channel,
                                      const flowrelay_message& message,
                                      flowrelay_client_published_fn done, void* ctx) {
  auto* relay = new (std::nothrow) Relay{done, ctx};
  if (!relay) return FLOWRELAY_ENOMEM;
  const flowrelay_status s = router.publish(channel, message, on_published, relay);
  if (s != FLOWRELAY_OK && s != FLOWRELAY_PENDING) delete relay;
  return s;
}

void report_client_message(flowrelay_client_published_fn done, void* ctx, flowrelay_status status,
                           uint32_t code, std::string_view reason) {
  flowrelay_client_published r{};
  r.struct_size = sizeof r;
  r.status = status;
  r.code = status == FLOWRELAY_OK ? 0 : code;
  r.reason = {reason.data(), reason.size()};
  done(ctx, &r);
}

}  // namespace flowrelay
