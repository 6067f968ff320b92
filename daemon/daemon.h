// flowrelayd: the Poco ServerApplication that wires config, plugins, router and HTTP together.
#pragma once

#include <Poco/Logger.h>
#include <Poco/Util/ServerApplication.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "config.h"
#include "http_api.h"
#include "plugin_host.h"
#include "plugin_instance.h"
#include "presence_api.h"
#include "publish_api.h"
#include "router.h"
#include "service_manager.h"

namespace flowrelay {

class Daemon : public Poco::Util::ServerApplication {
 public:
  Daemon();
  ~Daemon() override;

 protected:
  void defineOptions(Poco::Util::OptionSet& options) override;
  void handleOption(const std::string& name, const std::string& value) override;
  int main(const std::vector<std::string>& args) override;

 private:
  void setup_logging(const Config& config);
  // Loads and creates every plugin (no I/O). Throws PluginError / ConfigError.
  void create_plugins(const Config& config);
  void destroy_plugins();
  int serve(const Config& config);
  void wait_for_stop_signal();  // SIGHUP reloads; SIGTERM/SIGINT/SIGQUIT return
  void reload();
  std::string metrics_text() const;
  PublishApiOptions publish_api_options(const Config& config);
  PresenceApiOptions presence_api_options(const Config& config) const;
  static HttpOptions http_options(const Config& config);

  Poco::Logger& _log = Poco::Logger::get("flowrelayd");
  std::string _config_path = "/etc/flowrelay/flowrelay.yaml";
  bool _check_only = false;
  bool _exit_early = false;  // --help / --version handled
  std::chrono::steady_clock::time_point _started = std::chrono::steady_clock::now();
  const uint64_t _node_id = random_node_id();
  Config _config;  // as loaded (reload updates what applies live)
  ServiceManager _service;
  ServiceState _state;
  std::unique_ptr<Node> _node;  // outlives every plugin instance: their host tables live in it
  std::unique_ptr<BrokerInstance> _broker;
  std::unique_ptr<Router> _router;
  std::unique_ptr<Backend> _backend;  // between the transports and the router
  std::vector<std::unique_ptr<TransportInstance>> _transports;
  std::unique_ptr<PublishApi> _publish_api;    // outlives _http, which serves it
  std::unique_ptr<PresenceApi> _presence_api;  // likewise
  std::unique_ptr<HttpApi> _http;
};

}  // namespace flowrelay
