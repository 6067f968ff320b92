// flowrelay/plugin_options.hpp: a plugin's options as one declarative table (part of the
// optional C++ layer, see plugin.hpp): key, type, default, range, live or restart-only. It
// parses, validates with messages the daemon locates in the config file ('key' in quotes),
// documents itself and diffs a reload.
#ifndef FLOWRELAY_PLUGIN_OPTIONS_HPP
#define FLOWRELAY_PLUGIN_OPTIONS_HPP

#include <flowrelay/plugin.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
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

// The C views of kept options (valid while `values` is unchanged): what create() and
// reconfigure() take.
inline std::vector<flowrelay_option> views(const OptionValues& values) {
  std::vector<flowrelay_option> out;
  out.reserve(values.size());
  for (const auto& [k, v] : values) out.push_back({str(k), str(v)});
  return out;
}

// The whole of `text` as a number within [min, max]: no sign or space around it, no trailing
// text, no overflow, no NaN (which from_chars accepts for double). For options with a syntax of
// their own (a port inside "host:port"); OptionTable uses it for every number.
template <class T>
bool parse_number(std::string_view text, T min, T max, T& out) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || !(value >= min && value <= max)) return false;
  out = value;
  return true;
}

template <class Options>
class OptionTable {
 public:
  OptionTable(const char* plugin, std::initializer_list<Option<Options>> options)
      : _plugin(plugin), _options(options) {}
  // Rows shared by several tables (a family of plugins), then each one's own.
  OptionTable(const char* plugin, std::vector<Option<Options>> shared,
              std::initializer_list<Option<Options>> own)
      : _plugin(plugin), _options(std::move(shared)) {
    _options.insert(_options.end(), own.begin(), own.end());
  }

  // Defaults first, then every given option in order. Throws OptionError.
  Options parse(const flowrelay_option* options, size_t n) const {
    Options out{};
    for (const auto& o : _options)
      if (o.default_value) apply(o, o.default_value, out);
    for (size_t i = 0; i < n; ++i) apply(find(view(options[i].key)), view(options[i].value), out);
    return out;
  }
  Options parse(const OptionValues& values) const {
    const auto v = views(values);
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

  // An option's double bounds in V's own range (a bound beyond it is V's limit).
  template <class V>
  static V bound(double b) {
    if constexpr (std::is_integral_v<V>) {
      if (b <= double(std::numeric_limits<V>::lowest())) return std::numeric_limits<V>::lowest();
      if (b >= double(std::numeric_limits<V>::max())) return std::numeric_limits<V>::max();
    }
    return static_cast<V>(b);
  }

  static std::string range_text(const Option<Options>& o, bool integral) {
    char text[96];
    std::snprintf(text, sizeof text,
                  integral ? "a whole number from %.0f to %.0f" : "a number from %g to %g", o.min,
                  o.max);
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
            return parse_number<V>(value, bound<V>(o.min), bound<V>(o.max), out.*target);
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

}  // namespace flowrelay::sdk

#endif  // FLOWRELAY_PLUGIN_OPTIONS_HPP
