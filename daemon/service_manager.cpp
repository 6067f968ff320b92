#include "service_manager.h"

#ifdef FLOWRELAY_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace flowrelay {

#ifdef FLOWRELAY_HAVE_SYSTEMD
ServiceManager::ServiceManager() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    _watchdog = std::chrono::milliseconds(usec / 2000);
}
void ServiceManager::ready(const std::string& status) {
  sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str());
}
void ServiceManager::reloading() { sd_notify(0, "RELOADING=1"); }
void ServiceManager::stopping() { sd_notify(0, "STOPPING=1"); }
void ServiceManager::watchdog() { sd_notify(0, "WATCHDOG=1"); }
#else
ServiceManager::ServiceManager() = default;
void ServiceManager::ready(const std::string&) {}
void ServiceManager::reloading() {}
void ServiceManager::stopping() {}
void ServiceManager::watchdog() {}
#endif

}  // namespace flowrelay
