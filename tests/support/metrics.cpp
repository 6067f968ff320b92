#include "support/metrics.h"

#include <numeric>
#include <sstream>

#include "support/http.h"

namespace flowrelay::test {

namespace {

std::vector<double> samples_at(uint16_t http_port, const std::string& name) {
  const HttpResult r = http_get(http_port, "/metrics");
  if (r.status != 200) return {};
  return metric_samples(r.body, name);
}

}  // namespace

std::vector<double> metric_samples(const std::string& page, const std::string& name) {
  std::vector<double> values;
  std::istringstream in(page);
  for (std::string line; std::getline(in, line);) {
    // "name 3" or "name{label=\"x\"} 3"; "# HELP name" and "name_other 1" are not samples.
    if (line.size() <= name.size() || line.compare(0, name.size(), name) != 0) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    try {
      values.push_back(std::stod(line.substr(line.rfind(' ') + 1)));
    } catch (...) {
    }
  }
  return values;
}

double metric_value(uint16_t http_port, const std::string& name) {
  const std::vector<double> values = samples_at(http_port, name);
  return values.empty() ? -1 : std::accumulate(values.begin(), values.end(), 0.0);
}

double metric_or(uint16_t http_port, const std::string& name) {
  const std::vector<double> values = samples_at(http_port, name);
  return values.empty() ? -1 : values.front();
}

}  // namespace flowrelay::test
