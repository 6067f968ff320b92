// Runs the conformance suites that apply to the broker under test. A suite that needs what the
// broker does not have (history, an option, the host clock, an optional slot) is filtered out
// before the run, with the reason on stderr, so that it is neither run nor counted as passed.
// FLOWRELAY_BROKER_HOST_CLOCK=1 declares that the broker measures history ages with now_ms().
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "broker_fixture.h"
#include "broker_presence.h"

namespace flowrelay::test {
namespace {

// A suite and what the broker lacks for it ("" if nothing).
struct Gate {
  const char* suite;
  std::string missing;
};

bool accepts(const flowrelay_broker_vtable* vt, const std::string& option) {
  BrokerTestHost host;
  OptionList options = BrokerFixture::configured_options(option);
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  if (vt->create(host.api(), host.handle(), options.data(), options.size(), &b, err, sizeof err) !=
      FLOWRELAY_OK)
    return false;
  vt->destroy(b);
  return true;
}

enum class History { Kept, None, Unknown };

// Whether a started instance with the configured options answers history(). Unknown (it would
// not start) keeps every suite: their tests then fail loudly in SetUp.
History probe_history(const flowrelay_broker_vtable* vt) {
  if (!vt->history) return History::None;
  BrokerTestHost host;
  OptionList options = BrokerFixture::configured_options();
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  if (vt->create(host.api(), host.handle(), options.data(), options.size(), &b, err, sizeof err) !=
      FLOWRELAY_OK)
    return History::Unknown;
  History found = History::Unknown;
  HistoryRead read;
  if (vt->start(b, err, sizeof err) == FLOWRELAY_OK && host.wait_ready(1, kReadyTimeout)) {
    const std::string ch = "conformance.probe";
    const flowrelay_status st = vt->history(b, view(ch), 0, &HistoryRead::on_done, &read);
    if (st == FLOWRELAY_EUNSUPPORTED)
      found = History::None;
    else if (st == FLOWRELAY_OK && read.wait(kDeliveryTimeout))
      found = History::Kept;
  }
  vt->destroy(b);
  return found;
}

// Whether a started instance answers presence() itself (ABI 2.1), rather than leaving the
// count to the daemon (slot missing or NULL, or FLOWRELAY_EUNSUPPORTED).
std::string probe_presence(const flowrelay_broker_vtable* vt) {
  if (!has_presence(vt))
    return "presence() or presence_set() is missing (an ABI 2.0 table) or NULL";
  BrokerTestHost host;
  OptionList options = BrokerFixture::configured_options();
  char err[512] = "";
  flowrelay_broker* b = nullptr;
  if (vt->create(host.api(), host.handle(), options.data(), options.size(), &b, err, sizeof err) !=
      FLOWRELAY_OK)
    return "";  // the suite's tests fail loudly in SetUp
  std::string missing;
  if (vt->start(b, err, sizeof err) == FLOWRELAY_OK && host.wait_ready(1, kReadyTimeout) &&
      read_presence(vt, b, "conformance.probe", kDeliveryTimeout).status == FLOWRELAY_EUNSUPPORTED)
    missing = "presence() answers FLOWRELAY_EUNSUPPORTED (the daemon counts)";
  vt->destroy(b);
  return missing;
}

std::vector<Gate> gates(const flowrelay_broker_vtable* vt) {
  std::vector<Gate> out = {{"BrokerReconfigure", vt->reconfigure ? "" : "reconfigure() is NULL"},
                           {"BrokerMetrics", vt->metrics ? "" : "metrics() is NULL"},
                           {"BrokerPresence", probe_presence(vt)}};
  const History probed = probe_history(vt);
  if (probed == History::Unknown) return out;
  const std::string none = "the broker keeps no history (history() NULL or FLOWRELAY_EUNSUPPORTED)";
  if (probed == History::None) {
    for (const char* suite : {"BrokerHistory", "BrokerHistorySize", "BrokerHostClock"})
      out.push_back({suite, none});
    return out;
  }
  if (!accepts(vt, "history_size=5"))
    out.push_back({"BrokerHistorySize", "no option history_size"});
  if (env("FLOWRELAY_BROKER_HOST_CLOCK") != "1")
    out.push_back({"BrokerHostClock",
                   "FLOWRELAY_BROKER_HOST_CLOCK is not 1 (ages measured by another clock)"});
  else if (!accepts(vt, "history_max_age_ms=60000"))
    out.push_back({"BrokerHostClock", "no option history_max_age_ms"});
  return out;
}

// Adds an exclusion to a GoogleTest filter ("positive[-negative]").
std::string exclude(const std::string& filter, const std::string& pattern) {
  if (filter.empty()) return "*-" + pattern;
  return filter + (filter.find('-') == std::string::npos ? "-" : ":") + pattern;
}

}  // namespace
}  // namespace flowrelay::test

int main(int argc, char** argv) {
  using namespace flowrelay::test;
  ::testing::InitGoogleTest(&argc, argv);
  if (BrokerFixture::load_plugin().empty()) {
    std::string filter = GTEST_FLAG_GET(filter);
    for (const Gate& g : gates(BrokerFixture::plugin()->broker())) {
      if (g.missing.empty()) continue;
      std::fprintf(stderr, "broker_conformance: %s.* not run for this broker: %s\n", g.suite,
                   g.missing.c_str());
      filter = exclude(filter, std::string(g.suite) + ".*");
    }
    GTEST_FLAG_SET(filter, filter);
  }
  return RUN_ALL_TESTS();
}
