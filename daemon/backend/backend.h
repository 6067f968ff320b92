// The daemon's side of the application backend (config section `backend:`): the publish
// proxy, the connect proxy and join/leave events behind the transport host's publish_client,
// authorize and client_event slots, on one pool of signed keep-alive HTTP requests.
#pragma once

#include <flowrelay/plugin.h>
#include <flowrelay/plugin_metrics.hpp>

#include <Poco/Logger.h>

#include <memory>
#include <string>

#include "backend/backend_config.h"
#include "backend/backend_metrics.h"
#include "backend/backend_pool.h"

namespace flowrelay {

class Router;
class PublishProxy;
class ConnectProxy;
class EventBatcher;
class CancelNotifier;

class Backend {
 public:
  // Publishes through `router`, which must outlive this. No thread starts before the first
  // request (the events batcher's starts with events_url).
  Backend(const BackendConfig& config, Router& router, uint64_t node_id,
          std::string channel_prefix);
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // [any thread, non-blocking] The transport host slots (see plugin.h).
  flowrelay_status publish_client(std::string_view channel, const flowrelay_message& message,
                                  const flowrelay_client_info& client,
                                  flowrelay_client_published_fn done, void* ctx);
  flowrelay_status authorize(const flowrelay_connect_request& request, flowrelay_connect_fn done,
                             void* ctx);
  void client_event(bool joined, const flowrelay_client_info& client);
  // A client's cancel (END "cancelled"): published, and once it sealed the reply the
  // publish_url gets a cancel event. Only with a publish_url (see tells_cancels()).
  flowrelay_status publish_cancel(std::string_view channel, const flowrelay_message& message,
                                  const flowrelay_client_info& client,
                                  flowrelay_reply_published_fn done, void* ctx);
  bool tells_cancels() const { return _cancel != nullptr; }

  // [main] SIGHUP: the secret (re-read from secret_file), timeout_ms, max_queued and
  // max_answer_bytes apply to the next requests. Returns the keys that changed and need a
  // restart ("" if none).
  std::string reconfigure(const BackendConfig& fresh);
  // [main] After the transports stopped: cuts what is in flight, answers what waits (503).
  void stop();

  void metrics(sdk::PrometheusText& out) const;

 private:
  BackendConfig _config;
  Router& _router;
  BackendMetrics _metrics;
  BackendPool _pool;
  std::unique_ptr<PublishProxy> _publish;
  std::unique_ptr<ConnectProxy> _connect;
  std::unique_ptr<EventBatcher> _events;
  std::unique_ptr<CancelNotifier> _cancel;  // with _publish: the same publish_url
  Poco::Logger& _log = Poco::Logger::get("backend");
};

}  // namespace flowrelay
