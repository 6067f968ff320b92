#include "daemon.h"

#include <Poco/AutoPtr.h>
#include <Poco/ConsoleChannel.h>
#include <Poco/Exception.h>
#include <Poco/FormattingChannel.h>
#include <Poco/PatternFormatter.h>
#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>

#include <signal.h>
#include <string.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "log_format.h"

namespace flowrelay {

using Poco::Util::Application;
using Poco::Util::Option;

Daemon::Daemon() { setUnixOptions(true); }
Daemon::~Daemon() { destroy_plugins(); }

void Daemon::defineOptions(Poco::Util::OptionSet& options) {
  ServerApplication::defineOptions(options);  // --daemon, --pidfile, --umask
  options.addOption(Option("config", "c",
                           "configuration file (default "
                           "/etc/flowrelay/flowrelay.yaml)")
                        .argument("FILE")
                        .repeatable(false));
  options.addOption(Option("check-config", "t",
                           "validate the configuration and its plugins, print OK or the error, "
                           "exit 0 or non-zero"));
  options.addOption(Option("version", "v", "print the version and exit"));
  options.addOption(Option("help", "h", "print this help and exit"));
}

void Daemon::handleOption(const std::string& name, const std::string& value) {
  ServerApplication::handleOption(name, value);
  if (name == "config") {
    _config_path = value;
  } else if (name == "check-config") {
    _check_only = true;
  } else if (name == "version") {
    std::cout << "flowrelayd " FLOWRELAY_VERSION " (plugin ABI " << FLOWRELAY_ABI_MAJOR << "."
              << FLOWRELAY_ABI_MINOR << ")\n";
    _exit_early = true;
    stopOptionsProcessing();
  } else if (name == "help") {
    Poco::Util::HelpFormatter help(options());
    help.setUnixStyle(true);
    help.setCommand("flowrelayd");
    help.setUsage("[--config FILE] [--check-config] [--daemon] [--pidfile FILE]");
    help.setHeader("Relays WebSocket chat messages through a message broker.");
    help.setFooter(
        "Signals: SIGTERM/SIGINT close every client with 1001 and exit 0; SIGHUP reloads the "
        "configuration (log level, limits, auth keys).");
    help.format(std::cout);
    _exit_early = true;
    stopOptionsProcessing();
  }
}

void Daemon::setup_logging(const Config& config) {
  Poco::AutoPtr<Poco::Formatter> formatter;
  if (config.log_format == "json")
    formatter = new JsonLogFormatter;
  else if (std::getenv("JOURNAL_STREAM"))
    formatter = new JournalLogFormatter;
  else
    formatter = new Poco::PatternFormatter("%Y-%m-%d %H:%M:%S.%i [%p] %s: %t");
  Poco::AutoPtr<Poco::ConsoleChannel> console(new Poco::ConsoleChannel(std::cerr));
  Poco::AutoPtr<Poco::FormattingChannel> channel(new Poco::FormattingChannel(formatter, console));
  // Applies to every logger, including those created before the configuration was read.
  Poco::Logger::setChannel("", channel);
  Poco::Logger::setLevel("", Poco::Logger::parseLevel(config.log_level));
}

void Daemon::create_plugins(const Config& config) {
  auto broker_host = std::make_unique<flowrelay_host>();
  broker_host->logger = &Poco::Logger::get("broker");
  broker_host->deliver = [this](std::string_view ch, const flowrelay_message& message) {
    _router->deliver(ch, message);
  };
  broker_host->subscribed = [this](std::string_view ch, flowrelay_status s) {
    if (s != FLOWRELAY_OK)
      _log.warning("broker refused subscription to '" + std::string(ch) + "': " + status_name(s));
    _router->subscribed(ch, s);
  };
  broker_host->report_error = [this](flowrelay_status code, std::string_view detail) {
    ++_state.broker_errors;
    _log.error("broker error (" + status_name(code) + "): " + std::string(detail));
  };
  broker_host->set_ready = [this](bool ready) {
    if (_state.broker_ready.exchange(ready) == ready) return;
    if (ready && _state.broker_was_ready.exchange(true)) ++_state.broker_reconnects;
    _log.notice(ready ? "broker ready" : "broker not ready");
  };
  // A plugin refusing its options is a configuration error: point at the option it names.
  auto located = [&](const PluginSection& section, const PluginError& e) {
    const auto [line, column] = section.locate(e.what());
    return ConfigError(config.file, line, column, section.where + ": " + e.what());
  };
  try {
    _broker = std::make_unique<BrokerInstance>(config.broker, std::move(broker_host));
  } catch (const PluginError& e) {
    throw located(config.broker, e);
  }

  _router = std::make_unique<Router>(BrokerPort{
      [this](std::string_view ch) { return _broker->subscribe(ch); },
      [this](std::string_view ch) { return _broker->unsubscribe(ch); },
      [this](std::string_view ch, const flowrelay_message& m, flowrelay_published_fn done,
             void* ctx) { return _broker->publish(ch, m, done, ctx); },
      [this](std::string_view ch, uint64_t since, flowrelay_history_fn done, void* ctx) {
        return _broker->history(ch, since, done, ctx);
      }});

  const std::vector<std::pair<std::string, std::string>> extra = {
      {"channel_prefix", config.channel_prefix},
      {"echo", config.echo ? "true" : "false"},
      {"config_dir", std::filesystem::path(config.file).parent_path().string()}};
  for (const auto& section : config.transports) {
    auto host = std::make_unique<flowrelay_host>();
    host->logger = &Poco::Logger::get("transport");
    host->subscribe = [this](std::string_view ch) { return _router->subscribe(ch); };
    host->unsubscribe = [this](std::string_view ch) { _router->unsubscribe(ch); };
    host->publish = [this](std::string_view ch, const flowrelay_message& m,
                           flowrelay_published_fn done, void* ctx) {
      return _router->publish(ch, m, done, ctx);
    };
    host->history = [this](std::string_view ch, uint64_t since, flowrelay_history_fn done,
                           void* ctx) { return _router->history(ch, since, done, ctx); };
    std::unique_ptr<TransportInstance> transport;
    try {
      transport = std::make_unique<TransportInstance>(section, std::move(host), extra);
    } catch (const PluginError& e) {
      throw located(section, e);
    }
    TransportInstance* t = transport.get();
    _router->add_transport(
        TransportPort{[t](std::string_view ch, const flowrelay_message& m) { t->deliver(ch, m); },
                      [t](std::string_view ch, flowrelay_status s) { t->subscribed(ch, s); }});
    _transports.push_back(std::move(transport));
  }
}

void Daemon::destroy_plugins() {
  // Transports first stop (no more router calls), then the broker goes (no more deliveries),
  // then the transports are freed.
  for (auto& t : _transports) t->stop(0);
  _broker.reset();
  _transports.clear();
  _router.reset();
}

void Daemon::wait_for_stop_signal() {
  // The signals were blocked in main() before any thread started; only this thread takes them.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGQUIT, SIGHUP}) sigaddset(&set, sig);
  const auto period = _service.watchdog_interval();
  for (;;) {
    int sig = 0;
    if (period.count() > 0) {
      timespec ts{static_cast<time_t>(period.count() / 1000),
                  static_cast<long>(period.count() % 1000) * 1000000L};
      sig = sigtimedwait(&set, nullptr, &ts);
      _service.watchdog();
      if (sig < 0) continue;  // timeout (or EINTR): just a watchdog beat
    } else if (sigwait(&set, &sig) != 0) {
      continue;
    }
    if (sig == SIGHUP) {
      reload();
      continue;
    }
    _log.information(std::string("received ") + strsignal(sig));
    return;
  }
}

std::string Daemon::metrics_text() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double value,
                    const std::string& labels = "") {
    char num[32];
    std::snprintf(num, sizeof num, "%.15g", value);
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + labels + " " + num + "\n";
  };
  metric("flowrelay_build_info", "gauge", "Version of this flowrelayd", 1,
         "{version=\"" FLOWRELAY_VERSION "\"}");
  metric("flowrelay_uptime_seconds", "gauge", "Seconds since start",
         std::chrono::duration<double>(std::chrono::steady_clock::now() - _started).count());
  metric("flowrelay_ready", "gauge", "1 when GET /ready answers 200", _state.ready() ? 1 : 0);
  metric("flowrelay_broker_ready", "gauge", "1 while the broker can publish and deliver",
         _state.broker_ready ? 1 : 0, "{broker=\"" + (_broker ? _broker->name() : "") + "\"}");
  metric("flowrelay_broker_reconnects_total", "counter",
         "Times the broker became ready again after an outage", _state.broker_reconnects.load());
  metric("flowrelay_broker_errors_total", "counter", "Errors the broker reported",
         _state.broker_errors.load());
  if (_router) {
    metric("flowrelay_channels", "gauge", "Channels with local sessions", _router->channel_count());
    metric("flowrelay_sessions", "gauge", "Sessions joined to a channel", _router->session_count());
  }
  if (_publish_api) out += _publish_api->metrics();
  if (_broker) _broker->metrics(out);
  for (const auto& t : _transports) t->metrics(out);
  return out;
}

void Daemon::reload() {
  _service.reloading();
  _log.notice("SIGHUP: reloading " + _config_path);
  try {
    Config fresh = Config::load(_config_path);
    setup_logging(fresh);
    auto note = [&](bool changed, const std::string& what) {
      if (changed) _log.warning(what + " changed: takes effect after a restart");
    };
    note(fresh.http_listen != _config.http_listen, "http.listen");
    note(fresh.plugin_dir != _config.plugin_dir, "plugin_dir");
    note(fresh.channel_prefix != _config.channel_prefix || fresh.echo != _config.echo, "channels");
    // Plugins apply their live options (limits, timeouts) themselves and say what needs a
    // restart; a different plugin or another number of transports always does.
    note(fresh.broker.plugin != _config.broker.plugin, "broker.plugin");
    if (fresh.broker.plugin == _config.broker.plugin && _broker) {
      const std::string said = _broker->reconfigure(fresh.broker);
      if (!said.empty()) _log.warning("broker: " + said);
    }
    const bool same_shape = fresh.transports.size() == _config.transports.size();
    note(!same_shape, "transports");
    const std::vector<std::pair<std::string, std::string>> extra = {
        {"channel_prefix", _config.channel_prefix},
        {"echo", _config.echo ? "true" : "false"},
        {"config_dir", std::filesystem::path(_config.file).parent_path().string()}};
    for (size_t i = 0; same_shape && i < fresh.transports.size(); ++i) {
      if (fresh.transports[i].plugin != _config.transports[i].plugin) {
        note(true, fresh.transports[i].where + ".plugin");
        continue;
      }
      const std::string said = _transports[i]->reconfigure(fresh.transports[i], extra);
      if (!said.empty()) _log.warning(fresh.transports[i].where + ": " + said);
    }
    if (_publish_api) _publish_api->reconfigure(publish_api_options(fresh));
    _config.log_level = fresh.log_level;
    _config.log_format = fresh.log_format;
    _config.shutdown_timeout_ms = fresh.shutdown_timeout_ms;
    _log.notice("reloaded: log level " + fresh.log_level + ", shutdown_timeout_ms " +
                std::to_string(fresh.shutdown_timeout_ms));
  } catch (const ConfigError& e) {
    _log.error(std::string("reload failed, keeping the running configuration: ") + e.what());
  }
  _service.ready("serving");
}

PublishApiOptions Daemon::publish_api_options(const Config& config) {
  PublishApiOptions o;
  o.api_key = config.api_key;
  o.max_body_bytes = config.http_max_body_bytes;
  o.timeout_ms = config.publish_timeout_ms;
  o.channel_prefix = _config.channel_prefix;  // as started: a prefix change needs a restart
  o.max_conversation_id_length = config.max_conversation_id_length;
  return o;
}

int Daemon::main(const std::vector<std::string>& args) {
  if (_exit_early) return EXIT_OK;
  if (!args.empty()) {
    std::cerr << "flowrelayd: unexpected argument '" << args.front() << "' (see --help)\n";
    return EXIT_USAGE;
  }
  Config& config = _config;
  try {
    config = Config::load(_config_path);
    if (!_check_only) setup_logging(config);
    create_plugins(config);
  } catch (const ConfigError& e) {
    std::cerr << "flowrelayd: " << e.what() << "\n";
    return EXIT_CONFIG;
  }
  if (_check_only) {
    destroy_plugins();
    std::cout << config.file << ": OK\n";
    return EXIT_OK;
  }
  return serve(config);
}

int Daemon::serve(const Config& config) {
  try {
    _publish_api = std::make_unique<PublishApi>(
        [this](std::string_view ch, const flowrelay_message& m, flowrelay_published_fn done,
               void* ctx) { return _router->publish(ch, m, done, ctx); },
        publish_api_options(config));
    if (!config.http_listen.empty())
      _http = std::make_unique<HttpApi>(config.http_listen, _state, FLOWRELAY_VERSION,
                                        [this] { return metrics_text(); }, _publish_api.get());
    _broker->start();
    for (auto& t : _transports) t->start();
  } catch (const std::exception& e) {
    // Poco's what() is only the class ("Net Exception"); displayText() has the reason.
    const auto* poco = dynamic_cast<const Poco::Exception*>(&e);
    std::string why = poco ? poco->displayText() : e.what();
    if (poco && !config.http_listen.empty() && !_http)
      why = "http.listen " + config.http_listen + ": " + why;
    _log.critical("cannot start: " + why);
    std::cerr << "flowrelayd: cannot start: " << why << "\n";
    _http.reset();
    destroy_plugins();
    return EXIT_SOFTWARE;
  }
  if (_http) _http->start();
  _state.listening = true;
  _log.information("flowrelayd " FLOWRELAY_VERSION " serving (http " +
                   (config.http_listen.empty() ? std::string("off") : config.http_listen) + ")");

  _service.ready("serving");
  wait_for_stop_signal();
  _service.stopping();

  _log.information("shutting down: closing clients (at most " +
                   std::to_string(config.shutdown_timeout_ms) + " ms)");
  _state.stopping = true;
  for (auto& t : _transports) t->stop(_config.shutdown_timeout_ms);
  if (_http) _http->stop();
  _http.reset();
  destroy_plugins();
  _log.information("stopped");
  return EXIT_OK;
}

}  // namespace flowrelay
