// flowrelay/plugin_metrics.hpp: the Prometheus text exposition format 0.0.4 (part of the
// optional C++ layer, see plugin.hpp), used by the daemon and every in-tree plugin.
#ifndef FLOWRELAY_PLUGIN_METRICS_HPP
#define FLOWRELAY_PLUGIN_METRICS_HPP

#include <flowrelay/plugin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace flowrelay::sdk {

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
  void write_to(flowrelay_write_fn write, void* ctx) const {
    write(ctx, flowrelay_str{_text.data(), _text.size()});
  }

 private:
  PrometheusText& put(std::string_view name, std::string_view labels, const char* num) {
    _text.append(name);
    if (!labels.empty()) _text.append("{").append(labels).append("}");
    _text.append(" ").append(num).append("\n");
    return *this;
  }
  std::string _text;
};

}  // namespace flowrelay::sdk

#endif  // FLOWRELAY_PLUGIN_METRICS_HPP
