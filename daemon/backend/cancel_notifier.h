// Stop: a client's cancel (an END with reason "cancelled" from the transport host) is
// published as any reply step; once the broker sealed the reply with it (not a duplicate: a
// reply cancelled twice, or by two clients, is told once), the backend's publish_url gets a
// signed {"type":"cancel",...} event so that the agent stops generating. Best effort: a
// failed or refused event is counted (endpoint "cancel"), never retried, never waited for.
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "backend_metrics.h"
#include "backend_pool.h"

namespace flowrelay {

class Router;

class CancelNotifier {
 public:
  CancelNotifier(Router& router, BackendPool& pool, BackendMetrics& metrics,
                 std::shared_ptr<const BackendUrl> url, std::string node_hex,
                 std::string channel_prefix, uint32_t max_queued)
      : _router(router),
        _pool(pool),
        _metrics(metrics),
        _url(std::move(url)),
        _node_hex(std::move(node_hex)),
        _channel_prefix(std::move(channel_prefix)),
        _max_queued(max_queued) {}

  // [any thread, non-blocking] As the transport host's publish_reply for a client's cancel.
  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           const flowrelay_client_info& client, flowrelay_reply_published_fn done,
                           void* ctx);
  void set_max_queued(uint32_t max) { _max_queued.store(max, std::memory_order_relaxed); }

 private:
  struct Pending;
  static void on_sealed(void* ctx, const flowrelay_reply_published* result) noexcept;
  void notify(std::string body);

  Router& _router;
  BackendPool& _pool;
  BackendMetrics& _metrics;
  const std::shared_ptr<const BackendUrl> _url;
  const std::string _node_hex;
  const std::string _channel_prefix;
  std::atomic<uint32_t> _max_queued;
  std::atomic<uint32_t> _in_flight{0};  // events posted and not yet answered
};

}  // namespace flowrelay
