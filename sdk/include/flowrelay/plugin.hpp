// flowrelay/plugin.hpp: an optional, header-only C++20 layer over the C ABI (plugin.h).
//
// It turns a C++ class into the C tables, catches every exception at the boundary, and gives a
// plugin three things it would otherwise write itself:
//  - OptionTable: one declarative table of options (key, type, default, range, live or
//    restart-only) that parses, validates with messages the daemon locates in the config file
//    ('key' in quotes), documents itself, and diffs a reload;
//  - PrometheusText: the text exposition format, used by the daemon and every plugin;
//  - Broker / Transport base classes with BrokerHost / TransportHost wrappers, and
//    broker_vtable<T>() / transport_vtable<T>() that build the C tables from them.
// Everything here is compiled into the plugin: nothing C++ crosses the boundary.
#ifndef FLOWRELAY_PLUGIN_HPP
#define FLOWRELAY_PLUGIN_HPP

#include <flowrelay/plugin.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace flowrelay::sdk {

inline std::string_view view(flowrelay_str s) { return {s.ptr, s.len}; }
inline flowrelay_str str(std::string_view s) { return {s.data(), s.size()}; }

// Writes `text` NUL-terminated (truncated to fit) into err[0..cap).
inline void copy_error(char* err, size_t cap, std::string_view text) {
  if (!err || cap == 0) return;
  const size_t n = text.size() < cap - 1 ? text.size() : cap - 1;
  if (n) std::memcpy(err, text.data(), n);
  err[n] = '\0';
}

// A bad option value or an unknown key; what() names the key in single quotes.
struct OptionError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------------------ options

// Whether a changed value applies on reload (SIGHUP) or needs a restart.
enum class Reload { Live, Restart };

// One option of a plugin's section. Exactly one target: a typed member of Options, or a parser
// for values with their own syntax (it returns false for a bad value).
template <class Options>
struct Option {
  using Parser = bool (*)(std::string_view value, Options& out);
  const char* key;
  std::variant<bool Options::*, int32_t Options::*, uint32_t Options::*, uint64_t Options::*,
               double Options::*, std::string Options::*, Parser>
      target;
  const char* default_value = nullptr;  // parsed like a configured value; nullptr: none
  double min = 0, max = 0;              // numbers: the accepted range (inclusive)
  Reload reload = Reload::Restart;
  const char* expected = nullptr;  // what a bad value is told ("host:port"); numbers: derived
  const char* help = "";
};

// The options as given: kept by a plugin so that reconfigure() can diff against them.
using OptionValues = std::vector<std::pair<std::string, std::string>>;

inline OptionValues capture(const flowrelay_option* options, size_t n) {
  OptionValues out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.emplace_back(view(options[i].key), view(options[i].value));
  return out;
}

template <class Options>
class OptionTable {
 public:
  OptionTable(const char* plugin, std::initializer_list<Option<Options>> options)
      : _plugin(plugin), _options(options) {}

  // Defaults first, then every given option in order. Throws OptionError.
  Options parse(const flowrelay_option* options, size_t n) const {
    Options out{};
    for (const auto& o : _options)
      if (o.default_value) apply(o, o.default_value, out);
    for (size_t i = 0; i < n; ++i) apply(find(view(options[i].key)), view(options[i].value), out);
    return out;
  }
  Options parse(const OptionValues& values) const {
    std::vector<flowrelay_option> v;
    v.reserve(values.size());
    for (const auto& [k, val] : values) v.push_back({str(k), str(val)});
    return parse(v.data(), v.size());
  }

  // The restart-only keys whose effective value (given, else default) differs between the
  // running options and a reload's, comma-separated; "" if none.
  std::string restart_changes(const OptionValues& running, const flowrelay_option* fresh,
                              size_t n) const {
    std::string out;
    for (const auto& o : _options) {
      if (o.reload != Reload::Restart) continue;
      std::string_view before = o.default_value ? o.default_value : "";
      std::string_view after = before;
      for (const auto& [k, v] : running)
        if (k == o.key) before = v;
      for (size_t i = 0; i < n; ++i)
        if (view(fresh[i].key) == o.key) after = view(fresh[i].value);
      if (before != after) out += (out.empty() ? "" : ", ") + std::string(o.key);
    }
    return out;
  }

  // "key (default: d; range; live|restart): help", one line per option: for --help and docs.
  std::string describe() const {
    std::string out;
    for (const auto& o : _options) {
      out += std::string(o.key) + " (default: " + (o.default_value ? o.default_value : "none");
      out += o.reload == Reload::Live ? "; applies on reload" : "; needs a restart";
      out += "): " + std::string(o.help) + "\n";
    }
    return out;
  }

 private:
  const Option<Options>& find(std::string_view key) const {
    for (const auto& o : _options)
      if (key == o.key) return o;
    std::string known;
    for (const auto& o : _options) known += (known.empty() ? "" : ", ") + std::string(o.key);
    throw OptionError(_plugin + ": unknown option '" + std::string(key) + "' (known: " + known +
                      ")");
  }

  template <class T>
  static bool number(std::string_view text, double min, double max, T& out) {
    T value{};
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    // !(a <= b) also rejects NaN, which from_chars accepts for double.
    if (ec != std::errc() || ptr != end || !(double(value) >= min && double(value) <= max))
      return false;
    out = value;
    return true;
  }

  static std::string range_text(const Option<Options>& o, bool integral) {
    char text[96];
    std::snprintf(text, sizeof text, integral ? "a whole number from %.0f to %.0f" : "a number from %g to %g",
                  o.min, o.max);
    return text;
  }

  void apply(const Option<Options>& o, std::string_view value, Options& out) const {
    std::string expected = o.expected ? o.expected : "";
    bool ok = std::visit(
        [&](auto target) -> bool {
          using T = decltype(target);
          if constexpr (std::is_same_v<T, typename Option<Options>::Parser>) {
            return target(value, out);
          } else if constexpr (std::is_same_v<T, bool Options::*>) {
            if (expected.empty()) expected = "true or false";
            if (value != "true" && value != "false") return false;
            out.*target = value == "true";
            return true;
          } else if constexpr (std::is_same_v<T, std::string Options::*>) {
            (out.*target).assign(value);
            return true;
          } else {
            using V = std::remove_reference_t<decltype(out.*target)>;
            if (expected.empty()) expected = range_text(o, std::is_integral_v<V>);
            return number<V>(value, o.min, o.max, out.*target);
          }
        },
        o.target);
    if (!ok)
      throw OptionError(_plugin + ": option '" + o.key + "' must be " +
                        (expected.empty() ? "valid" : expected) + ", got '" + std::string(value) +
                        "'");
  }

  std::string _plugin;
  std::vector<Option<Options>> _options;
};

// ------------------------------------------------------------------------------ metrics

// The Prometheus text exposition format 0.0.4. `labels` are preformatted pairs without braces
// (`broker="redis"`, see label()); samples follow their family's HELP/TYPE lines.
class PrometheusText {
 public:
  static std::string label(std::string_view key, std::string_view value) {
    std::string out(key);
    out += "=\"";
    for (char c : value) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out + "\"";
  }

  PrometheusText& family(std::string_view name, std::string_view type, std::string_view help) {
    _text.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
    _text.append(name).append(" ").append(type).append("\n");
    return *this;
  }
  PrometheusText& sample(std::string_view name, std::string_view labels, double value) {
    char num[32];
    if (std::isnan(value))
      std::snprintf(num, sizeof num, "NaN");
    else
      std::snprintf(num, sizeof num, "%.15g", value);
    return put(name, labels, num);
  }
  PrometheusText& sample(std::string_view name, std::string_view labels, uint64_t value) {
    char num[24];
    std::snprintf(num, sizeof num, "%llu", static_cast<unsigned long long>(value));
    return put(name, labels, num);
  }
  template <class T>
  PrometheusText& counter(std::string_view name, std::string_view help, T value,
                          std::string_view labels = {}) {
    return family(name, "counter", help).sample(name, labels, value);
  }
  template <class T>
  PrometheusText& gauge(std::string_view name, std::string_view help, T value,
                        std::string_view labels = {}) {
    return family(name, "gauge", help).sample(name, labels, value);
  }
  // `counts[i]` observations fell into (bounds[i-1], bounds[i]] (not cumulative); `count` is
  // the total, including those above the last bound.
  PrometheusText& histogram(std::string_view name, std::string_view help, const double* bounds,
                            const uint64_t* counts, size_t n, double sum, uint64_t count,
                            std::string_view labels = {}) {
    family(name, "histogram", help);
    const std::string bucket = std::string(name) + "_bucket";
    const std::string prefix = labels.empty() ? std::string() : std::string(labels) + ",";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < n; ++i) {
      cumulative += counts[i];
      char le[32];
      std::snprintf(le, sizeof le, "%g", bounds[i]);
      sample(bucket, prefix + label("le", le), cumulative);
    }
    sample(bucket, prefix + "le=\"+Inf\"", count);
    sample(std::string(name) + "_sum", labels, sum);
    return sample(std::string(name) + "_count", labels, count);
  }

  const std::string& text() const { return _text; }
  void write_to(flowrelay_write_fn write, void* ctx) const { write(ctx, str(_text)); }

 private:
  PrometheusText& put(std::string_view name, std::string_view labels, const char* num) {
    _text.append(name);
    if (!labels.empty()) _text.append("{").append(labels).append("}");
    _text.append(" ").append(num).append("\n");
    return *this;
  }
  std::string _text;
};

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
};

// A message to publish: the host and the broker fill in the rest.
inline flowrelay_message make_message(flowrelay_lane lane, std::string_view data,
                                      uint64_t session = 0) {
  return {sizeof(flowrelay_message), lane, 0, {nullptr, 0}, {0, session, 0}, str(data)};
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

inline flowrelay_status reconfigured(std::string changed, char* err, size_t cap) {
  if (changed.empty()) return FLOWRELAY_OK;
  copy_error(err, cap, "'" + changed + "' changed: takes effect after a restart");
  return FLOWRELAY_EUNSUPPORTED;
}

template <class Base, class Self>
Base* impl(Self* self) {
  return reinterpret_cast<Base*>(self);
}

}  // namespace detail

template <class Impl>
const flowrelay_broker_vtable* broker_vtable() {
  using detail::impl;
  static const flowrelay_broker_vtable vt = {
      sizeof(flowrelay_broker_vtable),
      FLOWRELAY_ABI_MAJOR,
      [](const flowrelay_broker_host_api* api, flowrelay_host* host,
         const flowrelay_option* options, size_t n, flowrelay_broker** out, char* err,
         size_t cap) {
        return guard(
            [&] {
              Broker* b = new Impl(BrokerHost(api, host), options, n);
              *out = reinterpret_cast<flowrelay_broker*>(b);
              return FLOWRELAY_OK;
            },
            err, cap);
      },
      [](flowrelay_broker* self, char* err, size_t cap) {
        return guard([&] { return impl<Broker>(self)->start(), FLOWRELAY_OK; }, err, cap);
      },
      [](flowrelay_broker* self) { delete impl<Broker>(self); },
      [](flowrelay_broker* self, flowrelay_str channel, const flowrelay_message* m,
         flowrelay_published_fn done, void* ctx) {
        if (!m) return FLOWRELAY_EINVAL;
        return guard([&] { return impl<Broker>(self)->publish(view(channel), *m, done, ctx); });
      },
      [](flowrelay_broker* self, flowrelay_str channel, uint64_t since, flowrelay_history_fn done,
         void* ctx) {
        if (!done) return FLOWRELAY_EINVAL;
        return guard([&] { return impl<Broker>(self)->history(view(channel), since, done, ctx); });
      },
      [](flowrelay_broker* self, flowrelay_str channel) {
        return guard([&] { return impl<Broker>(self)->subscribe(view(channel)); });
      },
      [](flowrelay_broker* self, flowrelay_str channel) {
        guard([&] { return impl<Broker>(self)->unsubscribe(view(channel)), FLOWRELAY_OK; });
      },
      [](flowrelay_broker* self, flowrelay_write_fn write, void* ctx) {
        guard([&] {
          PrometheusText text;
          impl<Broker>(self)->metrics(text);
          return text.write_to(write, ctx), FLOWRELAY_OK;
        });
      },
      [](flowrelay_broker* self, const flowrelay_option* options, size_t n, char* err,
         size_t cap) {
        return guard(
            [&] { return detail::reconfigured(impl<Broker>(self)->reconfigure(options, n), err, cap); },
            err, cap);
      },
  };
  return &vt;
}

template <class Impl>
const flowrelay_transport_vtable* transport_vtable() {
  using detail::impl;
  static const flowrelay_transport_vtable vt = {
      sizeof(flowrelay_transport_vtable),
      FLOWRELAY_ABI_MAJOR,
      [](const flowrelay_transport_host_api* api, flowrelay_host* host,
         const flowrelay_option* options, size_t n, flowrelay_transport** out, char* err,
         size_t cap) {
        return guard(
            [&] {
              Transport* t = new Impl(TransportHost(api, host), options, n);
              *out = reinterpret_cast<flowrelay_transport*>(t);
              return FLOWRELAY_OK;
            },
            err, cap);
      },
      [](flowrelay_transport* self, char* err, size_t cap) {
        return guard([&] { return impl<Transport>(self)->start(), FLOWRELAY_OK; }, err, cap);
      },
      [](flowrelay_transport* self, uint32_t timeout_ms) {
        guard([&] { return impl<Transport>(self)->stop(timeout_ms), FLOWRELAY_OK; });
      },
      [](flowrelay_transport* self) { delete impl<Transport>(self); },
      [](flowrelay_transport* self, flowrelay_str channel, const flowrelay_message* m) {
        if (m) guard([&] { return impl<Transport>(self)->deliver(view(channel), *m), FLOWRELAY_OK; });
      },
      [](flowrelay_transport* self, flowrelay_str channel, flowrelay_status status) {
        guard([&] { return impl<Transport>(self)->subscribed(view(channel), status), FLOWRELAY_OK; });
      },
      [](flowrelay_transport* self, flowrelay_write_fn write, void* ctx) {
        guard([&] {
          PrometheusText text;
          impl<Transport>(self)->metrics(text);
          return text.write_to(write, ctx), FLOWRELAY_OK;
        });
      },
      [](flowrelay_transport* self, const flowrelay_option* options, size_t n, char* err,
         size_t cap) {
        return guard(
            [&] {
              return detail::reconfigured(impl<Transport>(self)->reconfigure(options, n), err, cap);
            },
            err, cap);
      },
  };
  return &vt;
}

}  // namespace flowrelay::sdk

// Defines the entry symbol. BROKER / TRANSPORT: a vtable pointer or nullptr, e.g.
//   FLOWRELAY_PLUGIN_ENTRY("broker-local", "0.1.0", flowrelay::sdk::broker_vtable<Local>(), nullptr)
#define FLOWRELAY_PLUGIN_ENTRY(NAME, VERSION, BROKER, TRANSPORT)                                \
  extern "C" FLOWRELAY_EXPORT const flowrelay_plugin_info* flowrelay_plugin_entry_v2(uint32_t) { \
    static const flowrelay_plugin_info info = {sizeof(flowrelay_plugin_info),                   \
                                               FLOWRELAY_ABI_MAJOR,                              \
                                               FLOWRELAY_ABI_MINOR,                              \
                                               NAME,                                             \
                                               VERSION,                                          \
                                               BROKER,                                           \
                                               TRANSPORT};                                       \
    return &info;                                                                                \
  }

#endif  // FLOWRELAY_PLUGIN_HPP
