// The connect proxy: at a client's handshake the backend's connect_url decides whether to
// admit it (and who it is), for applications with cookie sessions instead of tokens.
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "backend_metrics.h"
#include "backend_pool.h"

namespace flowrelay {

class ConnectProxy {
 public:
  ConnectProxy(BackendPool& pool, BackendMetrics& metrics, std::shared_ptr<const BackendUrl> url,
               uint32_t max_queued)
      : _pool(pool), _metrics(metrics), _url(std::move(url)), _max_queued(max_queued) {}

  // [any thread, non-blocking] As the transport host's authorize: OK, and `done` runs once (on
  // a pool thread; at once with 503 past max_queued handshakes waiting).
  flowrelay_status authorize(const flowrelay_connect_request& request, flowrelay_connect_fn done,
                             void* ctx);
  void set_max_queued(uint32_t max) { _max_queued.store(max, std::memory_order_relaxed); }

 private:
  BackendPool& _pool;
  BackendMetrics& _metrics;
  const std::shared_ptr<const BackendUrl> _url;
  std::atomic<uint32_t> _max_queued;
  std::atomic<uint32_t> _waiting{0};
};

}  // namespace flowrelay
