// The daemon's side of the host API: what a plugin's calls reach. Each host call goes straight
// to the Router (messages, subscriptions), the Backend (client messages, handshakes, joins and
// leaves) or the ServiceState (readiness, errors) through the plain pointers below; no exception
// thrown beneath a host call reaches the plugin.
#pragma once

#include <flowrelay/plugin.h>

#include <Poco/Logger.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace flowrelay {

class Backend;
class Router;
struct ServiceState;

// This daemon as its plugins see it. One per daemon; it outlives every plugin instance, since
// the host API tables (and the strings they point at) live in it.
class Node {
 public:
  Node(uint64_t id, std::string config_dir, std::string channel_prefix, bool echo,
       ServiceState& state);
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  uint64_t id() const { return _broker_api.node_id; }
  const flowrelay_broker_host_api* broker_api() const { return &_broker_api; }
  const flowrelay_transport_host_api* transport_api() const { return &_transport_api; }

  Router* router = nullptr;  // [main] set before any plugin starts
  // [main] set before any plugin starts (publish_client, authorize, client_event); null: no
  // backend (client messages are published directly, authorize is unsupported).
  Backend* backend = nullptr;
  ServiceState& state;
  std::atomic<uint64_t> sessions_issued{0};  // new_session_id(): one sequence for all transports

 private:
  std::string _config_dir;
  std::string _channel_prefix;
  flowrelay_broker_host_api _broker_api;
  flowrelay_transport_host_api _transport_api;
};

// A fresh node id per start (flowrelay_origin.node): random, never 0.
uint64_t random_node_id();
// The id as 16 lowercase hex digits (logs, the flowrelay_node_info metric).
std::string node_id_hex(uint64_t id);

std::string status_name(flowrelay_status status);

}  // namespace flowrelay

// The opaque handle of one plugin instance.
struct flowrelay_host {
  flowrelay::Node* node;
  Poco::Logger* logger;  // the plugin's own log lines and the host's notes about it
};
