// The broker thread's part for the cluster tests of broker-redis' parts (the sharded Pub/Sub
// link, the cluster map and subscriber): one epoll set in the test's own thread, a context on
// the conformance suites' test host with short timeouts, and the parts' check() each turn.
#pragma once

#include <sys/epoll.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "broker_test_host.h"
#include "cluster.h"
#include "redis_context.h"
#include "redis_link.h"

namespace flowrelay::ctest {

class BrokerLoop {
 public:
  // `extra_options`: "k=v;..." after the short timeouts (and may override them); a cluster's
  // seeds by hand (the URL form is not parsed yet).
  explicit BrokerLoop(const std::string& extra_options = "",
                      std::vector<redis::RedisEndpoint> cluster_seeds = {})
      : _seeds(std::move(cluster_seeds)),
        _options(test::OptionList::parse("ping_interval_ms=200;command_timeout_ms=600;"
                                         "connect_timeout_ms=500;reconnect_min_ms=50;"
                                         "reconnect_max_ms=200;" +
                                         extra_options)),
        _ctx(sdk::BrokerHost(host.api(), host.handle()), options()) {
    _ctx.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  }
  // The parts go first (their destructors close their links): set_closing() in the owner's
  // destructor, then destroy them.
  ~BrokerLoop() { ::close(_ctx.epoll_fd); }
  BrokerLoop(const BrokerLoop&) = delete;
  BrokerLoop& operator=(const BrokerLoop&) = delete;

  redis::RedisContext& ctx() { return _ctx; }
  // Run each turn, after epoll's events, in the order added.
  void on_turn(std::function<void(int64_t now)> fn) { _turns.push_back(std::move(fn)); }

  // Runs the loop until `done` holds or `timeout` passed; returns done().
  template <class Pred>
  bool run_until(Pred done, Millis timeout = 5s) {
    const auto until = Clock::now() + timeout;
    epoll_event events[16];
    while (!done()) {
      if (Clock::now() >= until) return false;
      const int n = epoll_wait(_ctx.epoll_fd, events, 16, 10);
      for (int i = 0; i < n; ++i)
        static_cast<redis::EpollHandler*>(events[i].data.ptr)->handle(events[i].events);
      const int64_t now = redis::monotonic_ms();
      for (auto& fn : _turns) fn(now);
    }
    return true;
  }
  void run_for(Millis time) {
    run_until([] { return false; }, time);
  }

  test::BrokerTestHost host;  // first: the context refers to it

 private:
  redis::RedisOptions options() const {
    redis::RedisOptions o = redis::parse_options(_options.data(), _options.size(), nullptr);
    o.cluster_seeds = _seeds;
    return o;
  }

  std::vector<redis::RedisEndpoint> _seeds;
  test::OptionList _options;
  redis::RedisContext _ctx;
  std::vector<std::function<void(int64_t)>> _turns;
};

}  // namespace flowrelay::ctest
