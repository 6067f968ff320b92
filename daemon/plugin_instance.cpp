#include "plugin_instance.h"

#include "plugin_host.h"

namespace flowrelay {

namespace {

// A plugin's error buffer as text (the status's name when it wrote nothing).
std::string error_text(char (&err)[512], flowrelay_status status) {
  err[sizeof err - 1] = '\0';
  return err[0] ? std::string(err) : "failed with status " + status_name(status);
}

void append_text(void* ctx, flowrelay_str text) noexcept {
  try {
    static_cast<std::string*>(ctx)->append(text.ptr, text.len);
  } catch (const std::bad_alloc&) {
    // Out of memory: this scrape lacks the plugin's metrics; nothing may reach the plugin.
  }
}

// The section's table of the given kind, or PluginError when the plugin provides none.
template <typename Vtable>
const Vtable* provided(const Vtable* vt, const LoadedPlugin& plugin, const PluginSection& section,
                       const char* kind) {
  if (!vt)
    throw PluginError(plugin.path() + ": plugin '" + section.plugin + "' does not provide a " +
                      kind);
  return vt;
}

std::string plugin_name(const LoadedPlugin& plugin, const PluginSection& section) {
  return plugin.info().name ? plugin.info().name : section.plugin;
}

}  // namespace

namespace detail {

template <typename Vtable, typename Self, typename Api>
Instance<Vtable, Self, Api>::Instance(std::shared_ptr<LoadedPlugin> plugin, const Vtable* vt,
                                      const char* kind, std::string where, std::string name,
                                      const PluginOptions& options, const Api* api,
                                      flowrelay_host host)
    : _plugin(std::move(plugin)),
      _host(host),
      _vt(vt),
      _kind(kind),
      _where(std::move(where)),
      _name(std::move(name)) {
  const auto opts = sdk::views(options);
  char err[512] = {0};
  const flowrelay_status s =
      _vt->create(api, &_host, opts.data(), opts.size(), &_self, err, sizeof err);
  if (s != FLOWRELAY_OK || !_self) {
    _self = nullptr;
    throw PluginError(_where + ": " + _kind + " '" + _name +
                      "' refused its configuration: " + error_text(err, s));
  }
}

template <typename Vtable, typename Self, typename Api>
Instance<Vtable, Self, Api>::~Instance() {
  if (_self) _vt->destroy(_self);
}

template <typename Vtable, typename Self, typename Api>
void Instance<Vtable, Self, Api>::start() {
  char err[512] = {0};
  const flowrelay_status s = _vt->start(_self, err, sizeof err);
  if (s != FLOWRELAY_OK)
    throw PluginError(_where + ": " + _kind + " '" + _name +
                      "' failed to start: " + error_text(err, s));
}

template <typename Vtable, typename Self, typename Api>
void Instance<Vtable, Self, Api>::metrics(std::string& out) const {
  if (_vt->metrics) _vt->metrics(_self, append_text, &out);
}

template <typename Vtable, typename Self, typename Api>
std::string Instance<Vtable, Self, Api>::reconfigure(const PluginOptions& options) {
  if (!_vt->reconfigure)
    return _name + " cannot reload its options: changes take effect after a restart";
  const auto opts = sdk::views(options);
  char err[512] = {0};
  const flowrelay_status s = _vt->reconfigure(_self, opts.data(), opts.size(), err, sizeof err);
  return s == FLOWRELAY_OK ? std::string() : error_text(err, s);
}

template class Instance<flowrelay_broker_vtable, flowrelay_broker, flowrelay_broker_host_api>;
template class Instance<flowrelay_transport_vtable, flowrelay_transport,
                        flowrelay_transport_host_api>;

}  // namespace detail

BrokerInstance::BrokerInstance(const PluginSection& section, const flowrelay_broker_host_api* api,
                               flowrelay_host host)
    : BrokerInstance(LoadedPlugin::load(section.path), section, api, host) {}

BrokerInstance::BrokerInstance(std::shared_ptr<LoadedPlugin> plugin, const PluginSection& section,
                               const flowrelay_broker_host_api* api, flowrelay_host host)
    : Instance(plugin, provided(plugin->broker(), *plugin, section, "broker"), "broker",
               plugin->path(), plugin_name(*plugin, section), section.options, api, host) {}

BrokerInstance::BrokerInstance(const flowrelay_broker_vtable* vt, std::string name,
                               const PluginOptions& options, const flowrelay_broker_host_api* api,
                               flowrelay_host host)
    : Instance(nullptr, vt, "broker", name, name, options, api, host) {}

TransportInstance::TransportInstance(const PluginSection& section,
                                     const flowrelay_transport_host_api* api, flowrelay_host host)
    : TransportInstance(LoadedPlugin::load(section.path), section, api, host) {}

TransportInstance::TransportInstance(std::shared_ptr<LoadedPlugin> plugin,
                                     const PluginSection& section,
                                     const flowrelay_transport_host_api* api, flowrelay_host host)
    : Instance(plugin, provided(plugin->transport(), *plugin, section, "transport"), "transport",
               plugin->path(), plugin_name(*plugin, section), section.options, api, host),
      _abi_minor(plugin->info().abi_minor) {}

TransportInstance::TransportInstance(const flowrelay_transport_vtable* vt, std::string name,
                                     const PluginOptions& options,
                                     const flowrelay_transport_host_api* api, flowrelay_host host,
                                     uint32_t abi_minor)
    : Instance(nullptr, vt, "transport", name, name, options, api, host), _abi_minor(abi_minor) {}

TransportInstance::~TransportInstance() { stop(0); }

void TransportInstance::start() {
  Instance::start();
  _stopped = false;
}

void TransportInstance::stop(uint32_t timeout_ms) {
  if (_stopped) return;
  _stopped = true;
  _vt->stop(_self, timeout_ms);
}

}  // namespace flowrelay
