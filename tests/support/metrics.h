// Prometheus samples from a daemon's GET /metrics.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flowrelay::test {

// The values of `name` in a Prometheus text page, one per sample (label set), in page order.
std::vector<double> metric_samples(const std::string& page, const std::string& name);

// From GET /metrics on 127.0.0.1:<http_port>; -1 when the metric is absent or the page did not
// load (0 would hide a missing metric):
// the sum over all label sets of `name`,
double metric_value(uint16_t http_port, const std::string& name);
// its first sample (the unlabelled one, or the first label set).
double metric_or(uint16_t http_port, const std::string& name);

}  // namespace flowrelay::test
