// Talks to the service manager: systemd's sd_notify (READY=1, STOPPING=1, WATCHDOG=1,
// RELOADING=1) when built with libsystemd and started by systemd; no-ops otherwise.
#pragma once

#include <chrono>
#include <string>

namespace flowrelay {

class ServiceManager {
 public:
  ServiceManager();
  void ready(const std::string& status);
  void reloading();
  void stopping();
  void watchdog();
  // Half the watchdog period when WatchdogSec is set, else zero.
  std::chrono::milliseconds watchdog_interval() const { return _watchdog; }

 private:
  std::chrono::milliseconds _watchdog{0};
};

}  // namespace flowrelay
