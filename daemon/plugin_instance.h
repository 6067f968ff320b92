// Live plugin instances: a broker or transport created from a loaded plugin, plus the host
// callback tables through which it reaches the daemon. These are the only places where the C
// ABI is called, so status codes become C++ exceptions here and nowhere else.
#pragma once

#include <flowrelay/plugin.h>

#include <Poco/Logger.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "config.h"
#include "plugin_loader.h"

// The daemon's side of the opaque host handle handed to each plugin instance.
struct flowrelay_host {
  Poco::Logger* logger = nullptr;
  // Broker events (set for brokers).
  std::function<void(std::string_view, const flowrelay_message&)> deliver;
  std::function<void(std::string_view, flowrelay_status)> subscribed;
  std::function<void(flowrelay_status, std::string_view)> report_error;
  std::function<void(bool)> set_ready;
  // Session events (set for transports).
  std::function<flowrelay_status(std::string_view)> subscribe;
  std::function<void(std::string_view)> unsubscribe;
  std::function<flowrelay_status(std::string_view, const flowrelay_message&,
                                 flowrelay_published_fn, void*)>
      publish;
  std::function<flowrelay_status(std::string_view, uint64_t, flowrelay_history_fn, void*)> history;
};

namespace flowrelay {

std::string status_name(flowrelay_status status);

class BrokerInstance {
 public:
  // Loads and creates (no I/O). Throws PluginError naming the file and reason.
  BrokerInstance(const PluginSection& section, std::unique_ptr<flowrelay_host> host);
  ~BrokerInstance();
  void start();  // throws PluginError
  // ABI 1.2 publish; a broker older than 1.2 gets publish() for the message lane (offset 0)
  // and refuses other lanes with EUNSUPPORTED.
  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           flowrelay_published_fn done, void* done_ctx);
  // EUNSUPPORTED when the broker keeps no history.
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* done_ctx);
  flowrelay_status subscribe(std::string_view channel);
  flowrelay_status unsubscribe(std::string_view channel);
  // Appends the plugin's Prometheus text (nothing if it predates ABI 1.1).
  void metrics(std::string& out) const;
  // SIGHUP: hands the section's options again; returns "" or what the plugin said.
  std::string reconfigure(const PluginSection& section);
  const std::string& name() const { return _name; }

 private:
  std::shared_ptr<LoadedPlugin> _plugin;
  std::unique_ptr<flowrelay_host> _host;
  const flowrelay_broker_vtable* _vt = nullptr;
  flowrelay_broker* _self = nullptr;
  std::string _name;
};

class TransportInstance {
 public:
  // Loads and creates (no I/O). `extra` options (channel prefix, echo) are appended.
  TransportInstance(const PluginSection& section, std::unique_ptr<flowrelay_host> host,
                    const std::vector<std::pair<std::string, std::string>>& extra);
  ~TransportInstance();
  void start();  // binds; throws PluginError
  void stop(uint32_t timeout_ms);
  // A transport older than 1.2 gets deliver() of message-lane messages only.
  void deliver(std::string_view channel, const flowrelay_message& message);
  void subscribed(std::string_view channel, flowrelay_status status);
  void metrics(std::string& out) const;
  std::string reconfigure(const PluginSection& section,
                          const std::vector<std::pair<std::string, std::string>>& extra);
  const std::string& name() const { return _name; }

 private:
  std::shared_ptr<LoadedPlugin> _plugin;
  std::unique_ptr<flowrelay_host> _host;
  const flowrelay_transport_vtable* _vt = nullptr;
  flowrelay_transport* _self = nullptr;
  std::string _name;
  bool _stopped = true;
};

}  // namespace flowrelay
