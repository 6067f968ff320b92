#include "backend/backend.h"

#include "backend/cancel_notifier.h"
#include "backend/client_relay.h"
#include "backend/connect_proxy.h"
#include "backend/event_batcher.h"
#include "backend/publish_proxy.h"
#include "plugin_host.h"
#include "router.h"

namespace flowrelay {

namespace {

BackendPool::Limits limits_of(const BackendConfig& c) {
  return {c.timeout_ms, c.max_answer_bytes, c.secret};
}

std::shared_ptr<const BackendUrl> url_of(const std::string& text) {
  return std::make_shared<const BackendUrl>(BackendUrl::parse(text));
}

}  // namespace

Backend::Backend(const BackendConfig& config, Router& router, uint64_t node_id,
                 std::string channel_prefix)
    : _config(config), _router(router), _pool(config.max_in_flight, limits_of(config)) {
  const std::string node = node_id_hex(node_id);
  if (!config.publish_url.empty()) {
    const auto publish_url = url_of(config.publish_url);
    _cancel = std::make_unique<CancelNotifier>(router, _pool, _metrics, publish_url, node,
                                               channel_prefix, config.max_queued);
    _publish = std::make_unique<PublishProxy>(router, _pool, _metrics, publish_url, node,
                                              std::move(channel_prefix), config.max_queued);
  }
  if (!config.connect_url.empty())
    _connect = std::make_unique<ConnectProxy>(_pool, _metrics, url_of(config.connect_url),
                                              config.max_queued);
  if (!config.events_url.empty())
    _events = std::make_unique<EventBatcher>(_pool, _metrics, url_of(config.events_url), node,
                                             config.events_batch_ms);
  if (config.any_url())
    _log.information("backend: publish proxy " +
                     (_publish ? config.publish_url : std::string("off")) + ", connect proxy " +
                     (_connect ? config.connect_url : std::string("off")) + ", events " +
                     (_events ? config.events_url : std::string("off")) + " (timeout " +
                     std::to_string(config.timeout_ms) + " ms, " +
                     std::to_string(config.max_in_flight) + " requests at most in flight)");
}

Backend::~Backend() { stop(); }

flowrelay_status Backend::publish_client(std::string_view channel, const flowrelay_message& message,
                                         const flowrelay_client_info& client,
                                         flowrelay_client_published_fn done, void* ctx) {
  if (_publish) return _publish->publish(channel, message, client, done, ctx);
  return relay_client_message(_router, channel, message, done, ctx);
}

flowrelay_status Backend::authorize(const flowrelay_connect_request& request,
                                    flowrelay_connect_fn done, void* ctx) {
  if (!_connect) return FLOWRELAY_EUNSUPPORTED;
  return _connect->authorize(request, done, ctx);
}

void Backend::client_event(bool joined, const flowrelay_client_info& client) {
  if (_events) _events->add(joined, client);
}

flowrelay_status Backend::publish_cancel(std::string_view channel, const flowrelay_message& message,
                                         const flowrelay_client_info& client,
                                         flowrelay_reply_published_fn done, void* ctx) {
  if (_cancel) return _cancel->publish(channel, message, client, done, ctx);
  return _router.publish_reply(channel, message, done, ctx);
}

std::string Backend::reconfigure(const BackendConfig& fresh) {
  std::string restart;
  auto note = [&](bool changed, const char* key) {
    if (changed) restart += (restart.empty() ? "backend." : ", backend.") + std::string(key);
  };
  note(fresh.publish_url != _config.publish_url, "publish_url");
  note(fresh.connect_url != _config.connect_url, "connect_url");
  note(fresh.events_url != _config.events_url, "events_url");
  note(fresh.max_in_flight != _config.max_in_flight, "max_in_flight");
  note(fresh.events_batch_ms != _config.events_batch_ms, "events_batch_ms");
  const bool rotated = fresh.secret != _config.secret;
  _pool.set_limits(limits_of(fresh));
  if (_publish) _publish->set_max_queued(fresh.max_queued);
  if (_cancel) _cancel->set_max_queued(fresh.max_queued);
  if (_connect) _connect->set_max_queued(fresh.max_queued);
  // What needs a restart stays as running, so that the next reload compares with that.
  BackendConfig running = fresh;
  running.publish_url = _config.publish_url;
  running.connect_url = _config.connect_url;
  running.events_url = _config.events_url;
  running.max_in_flight = _config.max_in_flight;
  running.events_batch_ms = _config.events_batch_ms;
  _config = std::move(running);
  if (rotated) _log.notice("backend: new secret from " + fresh.secret_file);
  return restart;
}

void Backend::stop() {
  if (_events) _events->stop();
  _pool.stop();
}

void Backend::metrics(sdk::PrometheusText& out) const {
  _metrics.write(out, _publish ? _publish->queued() : 0);
}

}  // namespace flowrelay
