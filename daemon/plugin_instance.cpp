#include "plugin_instance.h"

#include <vector>

namespace flowrelay {

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr, s.len}; }
flowrelay_str str(std::string_view s) { return {s.data(), s.size()}; }

void host_log(flowrelay_host* h, flowrelay_log_level level, flowrelay_str msg) {
  Poco::Message::Priority p = Poco::Message::PRIO_INFORMATION;
  switch (level) {
    case FLOWRELAY_LOG_ERROR:
      p = Poco::Message::PRIO_ERROR;
      break;
    case FLOWRELAY_LOG_WARNING:
      p = Poco::Message::PRIO_WARNING;
      break;
    case FLOWRELAY_LOG_NOTICE:
      p = Poco::Message::PRIO_NOTICE;
      break;
    case FLOWRELAY_LOG_INFO:
      p = Poco::Message::PRIO_INFORMATION;
      break;
    default:
      p = level < FLOWRELAY_LOG_ERROR ? Poco::Message::PRIO_CRITICAL : Poco::Message::PRIO_DEBUG;
  }
  if (h->logger->is(p)) h->logger->log(Poco::Message(h->logger->name(), std::string(view(msg)), p));
}

flowrelay_message message_lane(flowrelay_str data) {
  return {sizeof(flowrelay_message), FLOWRELAY_LANE_MESSAGE, 0, {nullptr, 0}, data};
}

// Calls returning a status never let an exception escape into plugin code either.
template <typename F>
flowrelay_status checked(flowrelay_host* h, const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    h->logger->error(std::string(what) + " failed: " + e.what());
    return FLOWRELAY_EINTERNAL;
  }
}

// Callbacks never let an exception escape into plugin code.
template <typename F>
void guarded(flowrelay_host* h, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    h->logger->error(std::string("host callback failed: ") + e.what());
  } catch (...) {
    h->logger->error("host callback failed");
  }
}

const flowrelay_broker_host_api kBrokerHostApi = {
    sizeof(flowrelay_broker_host_api),
    FLOWRELAY_ABI_MINOR,
    host_log,
    [](flowrelay_host* h, flowrelay_str channel, flowrelay_str payload) {
      guarded(h, [&] { h->deliver(view(channel), message_lane(payload)); });
    },
    [](flowrelay_host* h, flowrelay_str channel, flowrelay_status status) {
      guarded(h, [&] { h->subscribed(view(channel), status); });
    },
    [](flowrelay_host* h, flowrelay_status code, flowrelay_str detail) {
      guarded(h, [&] { h->report_error(code, view(detail)); });
    },
    [](flowrelay_host* h, int32_t ready) { guarded(h, [&] { h->set_ready(ready != 0); }); },
    [](flowrelay_host* h, flowrelay_str channel, const flowrelay_message* message) {
      if (message) guarded(h, [&] { h->deliver(view(channel), *message); });
    },
};

const flowrelay_transport_host_api kTransportHostApi = {
    sizeof(flowrelay_transport_host_api),
    FLOWRELAY_ABI_MINOR,
    host_log,
    [](flowrelay_host* h, flowrelay_str channel) -> flowrelay_status {
      try {
        return h->subscribe(view(channel));
      } catch (const std::exception& e) {
        h->logger->error(std::string("subscribe failed: ") + e.what());
        return FLOWRELAY_EINTERNAL;
      }
    },
    [](flowrelay_host* h, flowrelay_str channel) {
      guarded(h, [&] { h->unsubscribe(view(channel)); });
    },
    [](flowrelay_host* h, flowrelay_str channel, flowrelay_str payload) -> flowrelay_status {
      return checked(h, "publish", [&] {
        return h->publish(view(channel), message_lane(payload), nullptr, nullptr);
      });
    },
    [](flowrelay_host* h, flowrelay_str channel, const flowrelay_message* message,
       flowrelay_published_fn done, void* ctx) -> flowrelay_status {
      if (!message) return FLOWRELAY_EINVAL;
      return checked(h, "publish", [&] { return h->publish(view(channel), *message, done, ctx); });
    },
    [](flowrelay_host* h, flowrelay_str channel, uint64_t since, flowrelay_history_fn done,
       void* ctx) -> flowrelay_status {
      if (!done) return FLOWRELAY_EINVAL;
      return checked(h, "history", [&] { return h->history(view(channel), since, done, ctx); });
    },
};

std::vector<flowrelay_option> to_options(
    const std::vector<std::pair<std::string, std::string>>& kv) {
  std::vector<flowrelay_option> out;
  out.reserve(kv.size());
  for (const auto& [k, v] : kv) out.push_back({str(k), str(v)});
  return out;
}

std::string error_text(const char* err, flowrelay_status status) {
  std::string text(err);
  return text.empty() ? "failed with status " + status_name(status) : text;
}

void append_text(void* ctx, flowrelay_str text) {
  static_cast<std::string*>(ctx)->append(text.ptr, text.len);
}

template <typename Vtable, typename Self>
void collect_metrics(const Vtable* vt, Self* self, std::string& out) {
  if (FLOWRELAY_HAS_SLOT(vt, Vtable, metrics) && vt->metrics) vt->metrics(self, append_text, &out);
}

template <typename Vtable, typename Self>
std::string call_reconfigure(const Vtable* vt, Self* self, const std::string& name,
                             const std::vector<std::pair<std::string, std::string>>& kv) {
  if (!FLOWRELAY_HAS_SLOT(vt, Vtable, reconfigure) || !vt->reconfigure)
    return name + " cannot reload its options: changes take effect after a restart";
  auto options = to_options(kv);
  char err[512] = {0};
  const flowrelay_status s = vt->reconfigure(self, options.data(), options.size(), err, sizeof err);
  err[sizeof err - 1] = '\0';
  return s == FLOWRELAY_OK ? std::string() : error_text(err, s);
}

}  // namespace

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

BrokerInstance::BrokerInstance(const PluginSection& section, std::unique_ptr<flowrelay_host> host)
    : _plugin(LoadedPlugin::load(section.path)), _host(std::move(host)) {
  _vt = _plugin->broker();
  if (!_vt)
    throw PluginError(section.path + ": plugin '" + section.plugin +
                      "' does not provide a broker (ABI 1)");
  _name = _plugin->info().name ? _plugin->info().name : section.plugin;
  auto options = to_options(section.options);
  char err[512] = {0};
  const flowrelay_status s = _vt->create(&kBrokerHostApi, _host.get(), options.data(),
                                         options.size(), &_self, err, sizeof err);
  err[sizeof err - 1] = '\0';
  if (s != FLOWRELAY_OK || !_self)
    throw PluginError(section.path + ": broker '" + _name +
                      "' refused its configuration: " + error_text(err, s));
}

BrokerInstance::~BrokerInstance() {
  if (_self) _vt->destroy(_self);
}

void BrokerInstance::start() {
  char err[512] = {0};
  const flowrelay_status s = _vt->start(_self, err, sizeof err);
  err[sizeof err - 1] = '\0';
  if (s != FLOWRELAY_OK)
    throw PluginError(_plugin->path() + ": broker '" + _name +
                      "' failed to start: " + error_text(err, s));
}

flowrelay_status BrokerInstance::publish(std::string_view channel, const flowrelay_message& message,
                                         flowrelay_published_fn done, void* done_ctx) {
  if (FLOWRELAY_HAS_SLOT(_vt, flowrelay_broker_vtable, publish_message) && _vt->publish_message)
    return _vt->publish_message(_self, str(channel), &message, done, done_ctx);
  if (message.lane != FLOWRELAY_LANE_MESSAGE) return FLOWRELAY_EUNSUPPORTED;
  const flowrelay_status s = _vt->publish(_self, str(channel), message.data);
  if (s == FLOWRELAY_OK && done) done(done_ctx, FLOWRELAY_OK, 0, {nullptr, 0});
  return s;
}

flowrelay_status BrokerInstance::history(std::string_view channel, uint64_t since,
                                         flowrelay_history_fn done, void* done_ctx) {
  if (!FLOWRELAY_HAS_SLOT(_vt, flowrelay_broker_vtable, history) || !_vt->history)
    return FLOWRELAY_EUNSUPPORTED;
  return _vt->history(_self, str(channel), since, done, done_ctx);
}
flowrelay_status BrokerInstance::subscribe(std::string_view channel) {
  return _vt->subscribe(_self, str(channel));
}
flowrelay_status BrokerInstance::unsubscribe(std::string_view channel) {
  return _vt->unsubscribe(_self, str(channel));
}

void BrokerInstance::metrics(std::string& out) const { collect_metrics(_vt, _self, out); }

std::string BrokerInstance::reconfigure(const PluginSection& section) {
  return call_reconfigure(_vt, _self, _name, section.options);
}

TransportInstance::TransportInstance(const PluginSection& section,
                                     std::unique_ptr<flowrelay_host> host,
                                     const std::vector<std::pair<std::string, std::string>>& extra)
    : _plugin(LoadedPlugin::load(section.path)), _host(std::move(host)) {
  _vt = _plugin->transport();
  if (!_vt)
    throw PluginError(section.path + ": plugin '" + section.plugin +
                      "' does not provide a transport (ABI 1)");
  _name = _plugin->info().name ? _plugin->info().name : section.plugin;
  auto all = section.options;
  all.insert(all.end(), extra.begin(), extra.end());
  auto options = to_options(all);
  char err[512] = {0};
  const flowrelay_status s = _vt->create(&kTransportHostApi, _host.get(), options.data(),
                                         options.size(), &_self, err, sizeof err);
  err[sizeof err - 1] = '\0';
  if (s != FLOWRELAY_OK || !_self)
    throw PluginError(section.path + ": transport '" + _name +
                      "' refused its configuration: " + error_text(err, s));
}

TransportInstance::~TransportInstance() {
  if (!_self) return;
  if (!_stopped) _vt->stop(_self, 0);
  _vt->destroy(_self);
}

void TransportInstance::start() {
  char err[512] = {0};
  const flowrelay_status s = _vt->start(_self, err, sizeof err);
  err[sizeof err - 1] = '\0';
  if (s != FLOWRELAY_OK)
    throw PluginError(_plugin->path() + ": transport '" + _name +
                      "' failed to start: " + error_text(err, s));
  _stopped = false;
}

void TransportInstance::stop(uint32_t timeout_ms) {
  if (_stopped) return;
  _vt->stop(_self, timeout_ms);
  _stopped = true;
}

void TransportInstance::deliver(std::string_view channel, const flowrelay_message& message) {
  if (FLOWRELAY_HAS_SLOT(_vt, flowrelay_transport_vtable, deliver_message) && _vt->deliver_message)
    return _vt->deliver_message(_self, str(channel), &message);
  if (message.lane == FLOWRELAY_LANE_MESSAGE) _vt->deliver(_self, str(channel), message.data);
}

void TransportInstance::subscribed(std::string_view channel, flowrelay_status status) {
  _vt->subscribed(_self, str(channel), status);
}

}  // namespace flowrelay

namespace flowrelay {

void TransportInstance::metrics(std::string& out) const { collect_metrics(_vt, _self, out); }

std::string TransportInstance::reconfigure(
    const PluginSection& section, const std::vector<std::pair<std::string, std::string>>& extra) {
  auto all = section.options;
  all.insert(all.end(), extra.begin(), extra.end());
  return call_reconfigure(_vt, _self, _name, all);
}

}  // namespace flowrelay
