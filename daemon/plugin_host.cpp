#include "plugin_host.h"

#include <flowrelay/plugin.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <type_traits>

#include "backend/backend.h"
#include "backend/client_relay.h"
#include "http_api.h"
#include "replies/reply_rules.h"
#include "router.h"

namespace flowrelay {

namespace {

using sdk::view;

Poco::Message::Priority priority(flowrelay_log_level level) {
  switch (level) {
    case FLOWRELAY_LOG_ERROR:
      return Poco::Message::PRIO_ERROR;
    case FLOWRELAY_LOG_WARNING:
      return Poco::Message::PRIO_WARNING;
    case FLOWRELAY_LOG_NOTICE:
      return Poco::Message::PRIO_NOTICE;
    case FLOWRELAY_LOG_INFO:
      return Poco::Message::PRIO_INFORMATION;
    default:
      return level < FLOWRELAY_LOG_ERROR ? Poco::Message::PRIO_CRITICAL : Poco::Message::PRIO_DEBUG;
  }
}

// Runs f() for a plugin's call: an exception becomes a log line (and EINTERNAL for a call
// with a status), never a throw into plugin code.
template <typename F>
auto shielded(flowrelay_host* h, const char* what, F&& f) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    h->logger->error(std::string(what) + " failed: " + e.what());
  } catch (...) {
    h->logger->error(std::string(what) + " failed");
  }
  if constexpr (!std::is_void_v<decltype(f())>) return FLOWRELAY_EINTERNAL;
}

void host_log(flowrelay_host* h, flowrelay_log_level level, flowrelay_str text) {
  const Poco::Message::Priority p = priority(level);
  shielded(h, "log", [&] {
    if (h->logger->is(p))
      h->logger->log(Poco::Message(h->logger->name(), std::string(view(text)), p));
  });
}

int64_t host_now_ms(flowrelay_host*) {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void host_report_error(flowrelay_host* h, flowrelay_status code, flowrelay_str detail) {
  ++h->node->state.broker_errors;
  shielded(h, "report_error", [&] {
    h->logger->error("broker error (" + status_name(code) + "): " + std::string(view(detail)));
  });
}

void host_set_ready(flowrelay_host* h, int32_t ready_flag) {
  ServiceState& state = h->node->state;
  const bool ready = ready_flag != 0;
  if (state.broker_ready.exchange(ready) == ready) return;
  if (ready && state.broker_was_ready.exchange(true)) ++state.broker_reconnects;
  shielded(h, "set_ready", [&] { h->logger->notice(ready ? "broker ready" : "broker not ready"); });
}

void host_deliver(flowrelay_host* h, flowrelay_str channel, const flowrelay_message* message) {
  if (message) shielded(h, "deliver", [&] { h->node->router->deliver(view(channel), *message); });
}

void host_subscribed(flowrelay_host* h, flowrelay_str channel, flowrelay_status status) {
  shielded(h, "subscribed", [&] {
    if (status != FLOWRELAY_OK)
      h->logger->warning("broker refused subscription to '" + std::string(view(channel)) +
                         "': " + status_name(status));
    h->node->router->subscribed(view(channel), status);
  });
}

uint64_t host_new_session_id(flowrelay_host* h) { return ++h->node->sessions_issued; }

flowrelay_status host_subscribe(flowrelay_host* h, flowrelay_str channel) {
  return shielded(h, "subscribe", [&] { return h->node->router->subscribe(view(channel)); });
}

void host_unsubscribe(flowrelay_host* h, flowrelay_str channel) {
  shielded(h, "unsubscribe", [&] { h->node->router->unsubscribe(view(channel)); });
}

flowrelay_status host_publish(flowrelay_host* h, flowrelay_str channel,
                              const flowrelay_message* message, flowrelay_published_fn done,
                              void* ctx) {
  if (!message) return FLOWRELAY_EINVAL;
  return shielded(h, "publish",
                  [&] { return h->node->router->publish(view(channel), *message, done, ctx); });
}

flowrelay_status host_history(flowrelay_host* h, flowrelay_str channel, uint64_t since,
                              flowrelay_history_fn done, void* ctx) {
  if (!done) return FLOWRELAY_EINVAL;
  return shielded(h, "history",
                  [&] { return h->node->router->history(view(channel), since, done, ctx); });
}

flowrelay_status host_publish_client(flowrelay_host* h, flowrelay_str channel,
                                     const flowrelay_message* message,
                                     const flowrelay_client_info* client,
                                     flowrelay_client_published_fn done, void* ctx) {
  if (!message || !client || !done) return FLOWRELAY_EINVAL;
  return shielded(h, "publish_client", [&] {
    Node& node = *h->node;
    if (node.backend)
      return node.backend->publish_client(view(channel), *message, *client, done, ctx);
    return relay_client_message(*node.router, view(channel), *message, done, ctx);
  });
}

flowrelay_status host_authorize(flowrelay_host* h, const flowrelay_connect_request* request,
                                flowrelay_connect_fn done, void* ctx) {
  if (!request || !done) return FLOWRELAY_EINVAL;
  return shielded(h, "authorize", [&] {
    Backend* backend = h->node->backend;
    return backend ? backend->authorize(*request, done, ctx) : FLOWRELAY_EUNSUPPORTED;
  });
}

void host_client_event(flowrelay_host* h, int32_t joined, const flowrelay_client_info* client) {
  if (!client) return;
  shielded(h, "client_event", [&] {
    if (Backend* backend = h->node->backend) backend->client_event(joined != 0, *client);
  });
}

flowrelay_status host_publish_reply(flowrelay_host* h, flowrelay_str channel,
                                    const flowrelay_message* message,
                                    const flowrelay_client_info* client,
                                    flowrelay_reply_published_fn done, void* ctx) {
  const flowrelay_reply* reply = message ? flowrelay_reply_of(message) : nullptr;
  if (!reply) return FLOWRELAY_EINVAL;
  return shielded(h, "publish_reply", [&] {
    // A transport checks its clients' frames; what still fails here is the transport's bug.
    if (const std::string problem = reply_step_problem(*reply, client != nullptr);
        !problem.empty()) {
      h->logger->warning("publish_reply refused: " + problem);
      return FLOWRELAY_EINVAL;
    }
    Node& node = *h->node;
    if (client && node.backend && node.backend->tells_cancels() &&
        reply->kind == FLOWRELAY_KIND_END && view(reply->reason) == "cancelled")
      return node.backend->publish_cancel(view(channel), *message, *client, done, ctx);
    return node.router->publish_reply(view(channel), *message, done, ctx);
  });
}

}  // namespace

Node::Node(uint64_t id, std::string config_dir, std::string channel_prefix, bool echo,
           ServiceState& service)
    : state(service),
      _config_dir(std::move(config_dir)),
      _channel_prefix(std::move(channel_prefix)) {
  const flowrelay_str dir{_config_dir.data(), _config_dir.size()};
  _broker_api = {sizeof(flowrelay_broker_host_api),
                 FLOWRELAY_ABI_MINOR,
                 id,
                 dir,
                 host_log,
                 host_now_ms,
                 host_report_error,
                 host_set_ready,
                 host_deliver,
                 host_subscribed};
  _transport_api = {sizeof(flowrelay_transport_host_api),
                    FLOWRELAY_ABI_MINOR,
                    id,
                    dir,
                    {_channel_prefix.data(), _channel_prefix.size()},
                    echo ? 1 : 0,
                    host_log,
                    host_new_session_id,
                    host_subscribe,
                    host_unsubscribe,
                    host_publish,
                    host_history,
                    host_publish_client,
                    host_authorize,
                    host_client_event,
                    host_publish_reply};
}

uint64_t random_node_id() {
  std::random_device device;
  for (;;) {
    const uint64_t id = (uint64_t{device()} << 32) ^ device();
    if (id != 0) return id;
  }
}

std::string node_id_hex(uint64_t id) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(id));
  return text;
}

std::string status_name(flowrelay_status status) {
  switch (status) {
    case FLOWRELAY_OK:
      return "OK";
    case FLOWRELAY_PENDING:
      return "PENDING";
    case FLOWRELAY_EINVAL:
      return "EINVAL";
    case FLOWRELAY_EAGAIN:
      return "EAGAIN";
    case FLOWRELAY_EUNAVAIL:
      return "EUNAVAIL";
    case FLOWRELAY_ENOMEM:
      return "ENOMEM";
    case FLOWRELAY_EUNSUPPORTED:
      return "EUNSUPPORTED";
    case FLOWRELAY_EINTERNAL:
      return "EINTERNAL";
    default:
      return "status " + std::to_string(status);
  }
}

}  // namespace flowrelay
