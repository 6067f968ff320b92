// The publish proxy: every client message goes to the backend's publish_url first, and its
// answer decides whether (and what) the router publishes. Messages of one session go to the
// backend one at a time, in order: the next waits until the previous one was answered and
// handed to the router.
#pragma once

#include <flowrelay/plugin.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "backend_metrics.h"
#include "backend_pool.h"

namespace flowrelay {

class Router;

class PublishProxy {
 public:
  PublishProxy(Router& router, BackendPool& pool, BackendMetrics& metrics,
               std::shared_ptr<const BackendUrl> url, std::string node_hex,
               std::string channel_prefix, uint32_t max_queued)
      : _router(router),
        _pool(pool),
        _metrics(metrics),
        _url(std::move(url)),
        _node_hex(std::move(node_hex)),
        _channel_prefix(std::move(channel_prefix)),
        _max_queued(max_queued) {}

  // [any thread, non-blocking] As the transport host's publish_client: OK and `done` later (on
  // a pool thread), or EAGAIN past max_queued (`done` not called).
  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           const flowrelay_client_info& client, flowrelay_client_published_fn done,
                           void* ctx);

  // Client messages taken and not yet answered (in flight or waiting behind their session's).
  uint64_t queued() const { return _queued.load(std::memory_order_relaxed); }
  void set_max_queued(uint32_t max) { _max_queued.store(max, std::memory_order_relaxed); }

 private:
  struct Pending {
    std::string channel;
    flowrelay_lane lane;
    flowrelay_origin origin;
    std::string data;
    std::string body;  // the request to the backend
    flowrelay_client_published_fn done;
    void* ctx;
  };
  using Queue = std::deque<std::unique_ptr<Pending>>;  // front: at the backend now

  void send(uint64_t session, Pending& pending);
  void answered(uint64_t session, Pending& pending, BackendAnswer&& answer);

  Router& _router;
  BackendPool& _pool;
  BackendMetrics& _metrics;
  const std::shared_ptr<const BackendUrl> _url;
  const std::string _node_hex;
  const std::string _channel_prefix;
  std::atomic<uint32_t> _max_queued;
  std::atomic<uint64_t> _queued{0};
  std::mutex _mutex;  // guards _sessions (never held across a pool, router or `done` call)
  std::unordered_map<uint64_t, Queue> _sessions;
};

}  // namespace flowrelay
