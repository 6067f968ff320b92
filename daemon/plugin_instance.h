// Live plugin instances: a broker or transport created from a plugin's table. The only code
// that calls a plugin's vtable. LoadedPlugin::load checked every ABI 2.0 slot of a loaded
// plugin, so the calls on a message's path go straight to the slot; only optional (NULL-able)
// slots are checked. (The constructors from an in-memory table, for tests and benchmarks, trust
// their caller's table.)
#pragma once

#include <flowrelay/plugin.h>
#include <flowrelay/plugin.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"
#include "plugin_host.h"
#include "plugin_loader.h"

namespace flowrelay {

using PluginOptions = sdk::OptionValues;  // a section's options, as plugin.hpp keeps them

namespace detail {

// What a broker and a transport instance share: create (in the constructor), start, metrics,
// reload, destroy (in the destructor).
template <typename Vtable, typename Self, typename Api>
class Instance {
 public:
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  const std::string& name() const { return _name; }
  // [main] Starts I/O. Throws PluginError "<where>: <kind> '<name>' failed to start: ...".
  void start();
  // Appends the plugin's Prometheus text (nothing when its metrics slot is NULL).
  void metrics(std::string& out) const;
  // [main] SIGHUP: the section's options again. "" when applied, else what the plugin said
  // (or that its options need a restart when it cannot reload).
  std::string reconfigure(const PluginOptions& options);

 protected:
  // Creates the instance (no I/O) with its own copy of `host`. Throws PluginError "<where>: <kind>
  // '<name>' refused its configuration: <the plugin's message>".
  Instance(std::shared_ptr<LoadedPlugin> plugin, const Vtable* vt, const char* kind,
           std::string where, std::string name, const PluginOptions& options, const Api* api,
           flowrelay_host host);
  ~Instance();

  std::shared_ptr<LoadedPlugin> _plugin;  // keeps the code mapped; null for a table in memory
  flowrelay_host _host;                   // the plugin's handle on the daemon (stable address)
  const Vtable* _vt;
  Self* _self = nullptr;
  const char* _kind;
  std::string _where;  // the .so path, or the name of a table in memory
  std::string _name;
};

}  // namespace detail

class BrokerInstance : public detail::Instance<flowrelay_broker_vtable, flowrelay_broker,
                                               flowrelay_broker_host_api> {
 public:
  // Loads the section's plugin and creates its broker. Throws PluginError.
  BrokerInstance(const PluginSection& section, const flowrelay_broker_host_api* api,
                 flowrelay_host host);
  // A broker from a table in memory (tests, benchmarks).
  BrokerInstance(const flowrelay_broker_vtable* vt, std::string name, const PluginOptions& options,
                 const flowrelay_broker_host_api* api, flowrelay_host host);

  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           flowrelay_published_fn done, void* done_ctx) {
    return _vt->publish(_self, sdk::str(channel), &message, done, done_ctx);
  }
  // EUNSUPPORTED when the broker keeps no history.
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* done_ctx) {
    if (!_vt->history) return FLOWRELAY_EUNSUPPORTED;
    return _vt->history(_self, sdk::str(channel), since, done, done_ctx);
  }
  flowrelay_status subscribe(std::string_view channel) {
    return _vt->subscribe(_self, sdk::str(channel));
  }
  void unsubscribe(std::string_view channel) { _vt->unsubscribe(_self, sdk::str(channel)); }
  // ABI 2.1 presence; a broker without the slots (2.0, or NULL) leaves the counting to the
  // daemon: presence_set() does nothing and presence() answers EUNSUPPORTED.
  void presence_set(std::string_view channel, uint64_t clients) {
    if (_has_presence_set) _vt->presence_set(_self, sdk::str(channel), clients);
  }
  flowrelay_status presence(std::string_view channel, flowrelay_presence_fn done, void* done_ctx) {
    if (!_has_presence) return FLOWRELAY_EUNSUPPORTED;
    return _vt->presence(_self, sdk::str(channel), done, done_ctx);
  }
  // ABI 2.2 reply streams; EUNSUPPORTED from a broker without them.
  flowrelay_status publish_reply(std::string_view channel, const flowrelay_message& message,
                                 flowrelay_reply_published_fn done, void* done_ctx) {
    if (!_has_publish_reply) return FLOWRELAY_EUNSUPPORTED;
    return _vt->publish_reply(_self, sdk::str(channel), &message, done, done_ctx);
  }

 private:
  BrokerInstance(std::shared_ptr<LoadedPlugin> plugin, const PluginSection& section,
                 const flowrelay_broker_host_api* api, flowrelay_host host);

  // Looked up once: presence_set() runs on every join and leave.
  const bool _has_presence_set =
      FLOWRELAY_HAS_SLOT(_vt, flowrelay_broker_vtable, presence_set) && _vt->presence_set;
  const bool _has_presence =
      FLOWRELAY_HAS_SLOT(_vt, flowrelay_broker_vtable, presence) && _vt->presence;
  const bool _has_publish_reply =
      FLOWRELAY_HAS_SLOT(_vt, flowrelay_broker_vtable, publish_reply) && _vt->publish_reply;
};

class TransportInstance : public detail::Instance<flowrelay_transport_vtable, flowrelay_transport,
                                                  flowrelay_transport_host_api> {
 public:
  TransportInstance(const PluginSection& section, const flowrelay_transport_host_api* api,
                    flowrelay_host host);
  // `abi_minor`: the minor the table was built with (its plugin info's).
  TransportInstance(const flowrelay_transport_vtable* vt, std::string name,
                    const PluginOptions& options, const flowrelay_transport_host_api* api,
                    flowrelay_host host, uint32_t abi_minor = FLOWRELAY_ABI_MINOR);
  ~TransportInstance();

  uint32_t abi_minor() const { return _abi_minor; }
  // Built for ABI 2.2 or later: takes every kind of message (reply steps, STALLED).
  bool takes_replies() const { return _abi_minor >= 2; }

  void start();  // binds; throws PluginError
  void stop(uint32_t timeout_ms);
  void deliver(std::string_view channel, const flowrelay_message& message) {
    _vt->deliver(_self, sdk::str(channel), &message);
  }
  void subscribed(std::string_view channel, flowrelay_status status) {
    _vt->subscribed(_self, sdk::str(channel), status);
  }

 private:
  TransportInstance(std::shared_ptr<LoadedPlugin> plugin, const PluginSection& section,
                    const flowrelay_transport_host_api* api, flowrelay_host host);
  bool _stopped = true;
  uint32_t _abi_minor = FLOWRELAY_ABI_MINOR;
};

}  // namespace flowrelay
