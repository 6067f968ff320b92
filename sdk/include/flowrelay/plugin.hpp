// flowrelay/plugin.hpp: an optional, header-only C++20 layer over the C ABI (plugin.h).
//
// It turns a C++ class into the C tables, catches every exception at the boundary, and gives a
// plugin three things it would otherwise write itself:
//  - OptionTable (plugin_options.hpp): one declarative table of options (key, type, default,
//    range, live or restart-only) that parses, validates with messages the daemon locates in
//    the config file ('key' in quotes), documents itself, and diffs a reload;
//  - PrometheusText (plugin_metrics.hpp): the text exposition format, used by the daemon and
//    every plugin;
//  - Broker / Transport base classes with BrokerHost / TransportHost wrappers, and
//    broker_vtable<T>() / transport_vtable<T>() that build the C tables from them.
// Everything here is compiled into the plugin: nothing C++ crosses the boundary.
#ifndef FLOWRELAY_PLUGIN_HPP
#define FLOWRELAY_PLUGIN_HPP

#include <flowrelay/plugin.h>
#include <flowrelay/plugin_metrics.hpp>
#include <flowrelay/plugin_options.hpp>

#include <exception>
#include <new>
#include <string>
#include <string_view>

namespace flowrelay::sdk {

// ------------------------------------------------------------------------------ boundary

// Runs f(); an exception becomes `on_error` (and, with err, its message). Used by every shim.
template <class F>
flowrelay_status guard(F&& f, char* err = nullptr, size_t err_cap = 0) noexcept {
  try {
    return f();
  } catch (const OptionError& e) {
    copy_error(err, err_cap, e.what());
    return FLOWRELAY_EINVAL;
  } catch (const std::bad_alloc&) {
    copy_error(err, err_cap, "out of memory");
    return FLOWRELAY_ENOMEM;
  } catch (const std::exception& e) {
    copy_error(err, err_cap, e.what());
    return FLOWRELAY_EINTERNAL;
  } catch (...) {
    copy_error(err, err_cap, "unknown exception");
    return FLOWRELAY_EINTERNAL;
  }
}

// What every host API has: the node id, the config folder and the log.
template <class Api>
class HostBase {
 public:
  HostBase(const Api* api, flowrelay_host* host) : _api(api), _host(host) {}
  uint64_t node_id() const { return _api->node_id; }
  std::string_view config_dir() const { return view(_api->config_dir); }
  void log(flowrelay_log_level level, std::string_view text) const {
    _api->log(_host, level, str(text));
  }
  const Api* api() const { return _api; }
  flowrelay_host* host() const { return _host; }

 protected:
  const Api* _api;
  flowrelay_host* _host;
};

class BrokerHost : public HostBase<flowrelay_broker_host_api> {
 public:
  using HostBase::HostBase;
  int64_t now_ms() const { return _api->now_ms(_host); }
  void report_error(flowrelay_status code, std::string_view detail) const {
    _api->report_error(_host, code, str(detail));
  }
  void set_ready(bool ready) const { _api->set_ready(_host, ready ? 1 : 0); }
  void deliver(std::string_view channel, const flowrelay_message& m) const {
    _api->deliver(_host, str(channel), &m);
  }
  void subscribed(std::string_view channel, flowrelay_status status) const {
    _api->subscribed(_host, str(channel), status);
  }
};

class TransportHost : public HostBase<flowrelay_transport_host_api> {
 public:
  using HostBase::HostBase;
  std::string_view channel_prefix() const { return view(_api->channel_prefix); }
  bool echo() const { return _api->echo != 0; }
  uint64_t new_session_id() const { return _api->new_session_id(_host); }
  flowrelay_status subscribe(std::string_view channel) const {
    return _api->subscribe(_host, str(channel));
  }
  void unsubscribe(std::string_view channel) const { _api->unsubscribe(_host, str(channel)); }
  flowrelay_status publish(std::string_view channel, const flowrelay_message& m,
                           flowrelay_published_fn done = nullptr, void* ctx = nullptr) const {
    return _api->publish(_host, str(channel), &m, done, ctx);
  }
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* ctx) const {
    return _api->history(_host, str(channel), since, done, ctx);
  }
  // ABI 2.1 slots; on a 2.0 daemon they do what that daemon can: publish_client() is false
  // there (call publish()), authorize() answers EUNSUPPORTED, client_event() does nothing.
  bool has_publish_client() const {
    return FLOWRELAY_HAS_SLOT(_api, flowrelay_transport_host_api, publish_client);
  }
  flowrelay_status publish_client(std::string_view channel, const flowrelay_message& m,
                                  const flowrelay_client_info& client,
                                  flowrelay_client_published_fn done, void* ctx) const {
    return _api->publish_client(_host, str(channel), &m, &client, done, ctx);
  }
  flowrelay_status authorize(const flowrelay_connect_request& request, flowrelay_connect_fn done,
                             void* ctx) const {
    if (!FLOWRELAY_HAS_SLOT(_api, flowrelay_transport_host_api, authorize))
      return FLOWRELAY_EUNSUPPORTED;
    return _api->authorize(_host, &request, done, ctx);
  }
  void client_event(bool joined, const flowrelay_client_info& client) const {
    if (FLOWRELAY_HAS_SLOT(_api, flowrelay_transport_host_api, client_event))
      _api->client_event(_host, joined ? 1 : 0, &client);
  }
  // ABI 2.2: EUNSUPPORTED on an older daemon (tell the client 501). `client` may be nullptr.
  flowrelay_status publish_reply(std::string_view channel, const flowrelay_message& m,
                                 const flowrelay_client_info* client,
                                 flowrelay_reply_published_fn done, void* ctx) const {
    if (!FLOWRELAY_HAS_SLOT(_api, flowrelay_transport_host_api, publish_reply))
      return FLOWRELAY_EUNSUPPORTED;
    return _api->publish_reply(_host, str(channel), &m, client, done, ctx);
  }
};

// ABI 2.2: a message's reply info, nullptr for a plain message (or one from an older plugin).
inline const flowrelay_reply* reply_of(const flowrelay_message& m) {
  return flowrelay_reply_of(&m);
}
inline flowrelay_kind kind_of(const flowrelay_message& m) {
  const flowrelay_reply* r = reply_of(m);
  return r ? r->kind : FLOWRELAY_KIND_MESSAGE;
}
// ABI 2.2: true and `trimmed` set when the history answer carries it (older brokers: false).
inline bool history_trimmed(const flowrelay_history& h, uint64_t& trimmed) {
  if (!FLOWRELAY_HAS_SLOT(&h, flowrelay_history, trimmed)) return false;
  trimmed = h.trimmed;
  return true;
}

// A message to publish: the host and the broker fill in the rest.
inline flowrelay_message make_message(flowrelay_lane lane, std::string_view data,
                                      uint64_t session = 0) {
  return {sizeof(flowrelay_message), lane, 0, {nullptr, 0}, {0, session, 0}, str(data), nullptr};
}

// Base of a C++ broker. The constructor takes (BrokerHost, const flowrelay_option*, size_t)
// and throws OptionError for bad options; each virtual has its slot's contract in plugin.h.
class Broker {
 public:
  virtual ~Broker() = default;
  virtual void start() {}  // throw: start() fails with what()
  virtual flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                                   flowrelay_published_fn done, void* ctx) = 0;
  virtual flowrelay_status history(std::string_view, uint64_t, flowrelay_history_fn, void*) {
    return FLOWRELAY_EUNSUPPORTED;
  }
  virtual flowrelay_status subscribe(std::string_view channel) = 0;
  virtual void unsubscribe(std::string_view channel) = 0;
  virtual void metrics(PrometheusText&) const {}
  // Applies what may change live; returns the restart-only keys that changed ("" if none).
  // Throws OptionError (nothing applied).
  virtual std::string reconfigure(const flowrelay_option*, size_t) { return "any option"; }
  // ABI 2.1. The defaults suit a broker that serves one node: the daemon counts.
  virtual void presence_set(std::string_view /*channel*/, uint64_t /*clients*/) {}
  virtual flowrelay_status presence(std::string_view, flowrelay_presence_fn, void*) {
    return FLOWRELAY_EUNSUPPORTED;
  }
  // ABI 2.2. The default: no reply streams (the daemon answers 501).
  virtual flowrelay_status publish_reply(std::string_view, const flowrelay_message&,
                                         flowrelay_reply_published_fn, void*) {
    return FLOWRELAY_EUNSUPPORTED;
  }
};

// Base of a C++ transport; as Broker.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual void start() {}
  virtual void stop(uint32_t timeout_ms) = 0;
  virtual void deliver(std::string_view channel, const flowrelay_message& message) = 0;
  virtual void subscribed(std::string_view channel, flowrelay_status status) = 0;
  virtual void metrics(PrometheusText&) const {}
  virtual std::string reconfigure(const flowrelay_option*, size_t) { return "any option"; }
};

namespace detail {

// The shims both tables share: Base is Broker or Transport, Handle the C handle type. The C
// handle is the C++ object's address.
template <class Base, class Handle>
Base* impl(Handle* self) {
  return reinterpret_cast<Base*>(self);
}

template <class Base, class Impl, class Host, class Api, class Handle>
flowrelay_status create(const Api* api, flowrelay_host* host, const flowrelay_option* options,
                        size_t n, Handle** out, char* err, size_t cap) {
  return guard(
      [&] {
        Base* object = new Impl(Host(api, host), options, n);
        *out = reinterpret_cast<Handle*>(object);
        return FLOWRELAY_OK;
      },
      err, cap);
}

template <class Base, class Handle>
flowrelay_status start(Handle* self, char* err, size_t cap) {
  return guard([&] { return impl<Base>(self)->start(), FLOWRELAY_OK; }, err, cap);
}

template <class Base, class Handle>
void destroy(Handle* self) {
  delete impl<Base>(self);
}

template <class Base, class Handle>
void metrics(Handle* self, flowrelay_write_fn write, void* ctx) {
  guard([&] {
    PrometheusText text;
    impl<Base>(self)->metrics(text);
    return text.write_to(write, ctx), FLOWRELAY_OK;
  });
}

template <class Base, class Handle>
flowrelay_status reconfigure(Handle* self, const flowrelay_option* options, size_t n, char* err,
                             size_t cap) {
  return guard(
      [&] {
        const std::string changed = impl<Base>(self)->reconfigure(options, n);
        if (changed.empty()) return FLOWRELAY_OK;
        copy_error(err, cap, "'" + changed + "' changed: takes effect after a restart");
        return FLOWRELAY_EUNSUPPORTED;
      },
      err, cap);
}

}  // namespace detail

template <class Impl>
const flowrelay_broker_vtable* broker_vtable() {
  using detail::impl;
  using H = flowrelay_broker;
  static const flowrelay_broker_vtable vt = {
      sizeof(flowrelay_broker_vtable),
      FLOWRELAY_ABI_MAJOR,
      detail::create<Broker, Impl, BrokerHost, flowrelay_broker_host_api, H>,
      detail::start<Broker, H>,
      detail::destroy<Broker, H>,
      [](H* self, flowrelay_str channel, const flowrelay_message* m, flowrelay_published_fn done,
         void* ctx) {
        if (!m) return FLOWRELAY_EINVAL;
        return guard([&] { return impl<Broker>(self)->publish(view(channel), *m, done, ctx); });
      },
      [](H* self, flowrelay_str channel, uint64_t since, flowrelay_history_fn done, void* ctx) {
        if (!done) return FLOWRELAY_EINVAL;
        return guard([&] { return impl<Broker>(self)->history(view(channel), since, done, ctx); });
      },
      [](H* self, flowrelay_str channel) {
        return guard([&] { return impl<Broker>(self)->subscribe(view(channel)); });
      },
      [](H* self, flowrelay_str channel) {
        guard([&] { return impl<Broker>(self)->unsubscribe(view(channel)), FLOWRELAY_OK; });
      },
      detail::metrics<Broker, H>,
      detail::reconfigure<Broker, H>,
      [](H* self, flowrelay_str channel, uint64_t clients) {
        guard(
            [&] { return impl<Broker>(self)->presence_set(view(channel), clients), FLOWRELAY_OK; });
      },
      [](H* self, flowrelay_str channel, flowrelay_presence_fn done, void* ctx) {
        if (!done) return FLOWRELAY_EINVAL;
        return guard([&] { return impl<Broker>(self)->presence(view(channel), done, ctx); });
      },
      [](H* self, flowrelay_str channel, const flowrelay_message* m,
         flowrelay_reply_published_fn done, void* ctx) {
        if (!m || !reply_of(*m)) return FLOWRELAY_EINVAL;
        return guard(
            [&] { return impl<Broker>(self)->publish_reply(view(channel), *m, done, ctx); });
      },
  };
  return &vt;
}

template <class Impl>
const flowrelay_transport_vtable* transport_vtable() {
  using detail::impl;
  using H = flowrelay_transport;
  static const flowrelay_transport_vtable vt = {
      sizeof(flowrelay_transport_vtable),
      FLOWRELAY_ABI_MAJOR,
      detail::create<Transport, Impl, TransportHost, flowrelay_transport_host_api, H>,
      detail::start<Transport, H>,
      [](H* self, uint32_t timeout_ms) {
        guard([&] { return impl<Transport>(self)->stop(timeout_ms), FLOWRELAY_OK; });
      },
      detail::destroy<Transport, H>,
      [](H* self, flowrelay_str channel, const flowrelay_message* m) {
        if (!m) return;
        guard([&] { return impl<Transport>(self)->deliver(view(channel), *m), FLOWRELAY_OK; });
      },
      [](H* self, flowrelay_str channel, flowrelay_status status) {
        guard(
            [&] { return impl<Transport>(self)->subscribed(view(channel), status), FLOWRELAY_OK; });
      },
      detail::metrics<Transport, H>,
      detail::reconfigure<Transport, H>,
  };
  return &vt;
}

}  // namespace flowrelay::sdk

// Defines the entry symbol. BROKER / TRANSPORT: a vtable pointer or nullptr, e.g.
//   FLOWRELAY_PLUGIN_ENTRY("broker-local", "0.1.0", flowrelay::sdk::broker_vtable<Local>(),
//   nullptr)
#define FLOWRELAY_PLUGIN_ENTRY(NAME, VERSION, BROKER, TRANSPORT)                                 \
  extern "C" FLOWRELAY_EXPORT const flowrelay_plugin_info* flowrelay_plugin_entry_v2(uint32_t) { \
    static const flowrelay_plugin_info info = {sizeof(flowrelay_plugin_info),                    \
                                               FLOWRELAY_ABI_MAJOR,                              \
                                               FLOWRELAY_ABI_MINOR,                              \
                                               NAME,                                             \
                                               VERSION,                                          \
                                               BROKER,                                           \
                                               TRANSPORT};                                       \
    return &info;                                                                                \
  }

#endif  // FLOWRELAY_PLUGIN_HPP