// Time in the test support: one clock, and bounded waits (a test never waits without a limit).
#pragma once

#include <chrono>
#include <functional>

namespace flowrelay::test {

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

// Milliseconds left until `deadline` (0 once it passed), as poll(2) takes them.
int remaining_ms(Clock::time_point deadline);

// Polls `condition` until it is true or `timeout` passes; returns its last value.
bool wait_for(const std::function<bool()>& condition, Millis timeout, Millis interval = 10ms);

}  // namespace flowrelay::test
