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
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "demo_page.h"
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

namespace {

// Loads and creates one plugin instance. A plugin refusing its options is a configuration
// error: it points at the option the message names (else at the section).
template <typename Instance, typename Api>
std::unique_ptr<Instance> create_instance(const Config& config, const PluginSection& section,
                                          const Api* api, flowrelay_host host) {
  try {
    return std::make_unique<Instance>(section, api, host);
  } catch (const PluginError& e) {
    const auto [line, column] = section.locate(e.what());
    throw ConfigError(config.file, line, column, section.where + ": " + e.what());
  }
}

}  // namespace

void Daemon::create_plugins(const Config& config) {
  _node =
      std::make_unique<Node>(_node_id, std::filesystem::path(config.file).parent_path().string(),
                             config.channel_prefix, config.echo, _state);
  _broker = create_instance<BrokerInstance>(config, config.broker, _node->broker_api(),
                                            {_node.get(), &Poco::Logger::get("broker")});
  _router = std::make_unique<Router>(_node_id, *_broker);
  _router->set_reply_timers(config.reply_stall_ms, config.reply_timeout_ms);
  _node->router = _router.get();
  for (const auto& section : config.transports) {
    _transports.push_back(create_instance<TransportInstance>(
        config, section, _node->transport_api(), {_node.get(), &Poco::Logger::get("transport")}));
    _router->add_transport(*_transports.back());
  }
}

void Daemon::destroy_plugins() {
  // No stalled notice or seal from the reply watch once the plugins begin to go.
  if (_router) _router->stop_reply_watch();
  // Transports first stop (no more router calls), then the broker goes (no more deliveries),
  // then the transports are freed.
  for (auto& t : _transports) t->stop(0);
  // The backend's requests in flight are cut and what waits is answered 503 (the broker still
  // takes what was already approved).
  if (_backend) _backend->stop();
  _broker.reset();
  _transports.clear();
  if (_node) _node->backend = nullptr;
  _backend.reset();
  _router.reset();
  _node.reset();
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
  using sdk::PrometheusText;
  PrometheusText m;
  m.gauge("flowrelay_build_info", "Version of this flowrelayd", uint64_t{1},
          PrometheusText::label("version", FLOWRELAY_VERSION));
  m.gauge("flowrelay_node_info", "This daemon's node id (random per start, in every origin)",
          uint64_t{1}, PrometheusText::label("node", node_id_hex(_node_id)));
  m.gauge("flowrelay_uptime_seconds", "Seconds since start",
          std::chrono::duration<double>(std::chrono::steady_clock::now() - _started).count());
  m.gauge("flowrelay_ready", "1 when GET /ready answers 200", uint64_t{_state.ready()});
  m.gauge("flowrelay_broker_ready", "1 while the broker can publish and deliver",
          uint64_t{_state.broker_ready},
          PrometheusText::label("broker", _broker ? _broker->name() : ""));
  m.counter("flowrelay_broker_reconnects_total",
            "Times the broker became ready again after an outage", _state.broker_reconnects.load());
  m.counter("flowrelay_broker_errors_total", "Errors the broker reported",
            _state.broker_errors.load());
  if (_router) {
    m.gauge("flowrelay_channels", "Channels with local sessions", _router->channel_count());
    m.gauge("flowrelay_sessions", "Sessions joined to a channel", _router->session_count());
    _router->reply_metrics(m);
  }
  if (_publish_api) _publish_api->metrics(m);
  if (_backend) _backend->metrics(m);
  if (_http) _http->metrics(m);
  std::string out = m.text();
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
    note(fresh.channel_prefix != _config.channel_prefix || fresh.echo != _config.echo,
         "channels (prefix, echo)");
    if (_router) _router->set_reply_timers(fresh.reply_stall_ms, fresh.reply_timeout_ms);
    // Plugins apply their live options (limits, timeouts) themselves and say what needs a
    // restart; a different plugin always does.
    auto reconfigure = [&](auto& instance, const PluginSection& running,
                           const PluginSection& section) {
      if (section.plugin != running.plugin) return note(true, section.where + ".plugin");
      const std::string said = instance.reconfigure(section.options);
      if (!said.empty()) _log.warning(section.where + ": " + said);
    };
    if (_broker) reconfigure(*_broker, _config.broker, fresh.broker);
    const bool same_shape = fresh.transports.size() == _config.transports.size();
    note(!same_shape, "transports");
    for (size_t i = 0; same_shape && i < fresh.transports.size(); ++i)
      reconfigure(*_transports[i], _config.transports[i], fresh.transports[i]);
    if (_publish_api) _publish_api->reconfigure(publish_api_options(fresh));
    if (_presence_api) _presence_api->reconfigure(presence_api_options(fresh));
    if (_backend) {  // the secret rotates live; the URLs need a restart
      const std::string said = _backend->reconfigure(fresh.backend);
      note(!said.empty(), said);
    }
    if (_http) _http->set_max_body_bytes(fresh.http_max_body_bytes);
    note(fresh.http_threads != _config.http_threads ||
             fresh.http_header_timeout_ms != _config.http_header_timeout_ms ||
             fresh.http_idle_timeout_ms != _config.http_idle_timeout_ms ||
             fresh.http_max_connections != _config.http_max_connections ||
             fresh.http_demo != _config.http_demo,
         "http (threads, timeouts, max_connections, demo)");
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

HttpOptions Daemon::http_options(const Config& config) {
  HttpOptions o;
  o.listen = config.http_listen;
  o.threads = config.http_threads;
  o.header_timeout_ms = config.http_header_timeout_ms;
  o.idle_timeout_ms = config.http_idle_timeout_ms;
  o.max_connections = config.http_max_connections;
  o.max_body_bytes = config.http_max_body_bytes;
  return o;
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

PresenceApiOptions Daemon::presence_api_options(const Config& config) const {
  PresenceApiOptions o;
  o.api_key = config.api_key;
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
    // The publish deadline runs on the listener's loop (never called without a listener).
    _publish_api = std::make_unique<PublishApi>(
        *_router, publish_api_options(config),
        [this](uint32_t ms, std::function<void()> fn) { _http->after(ms, std::move(fn)); });
    _presence_api = std::make_unique<PresenceApi>(
        *_router, presence_api_options(config),
        [this](uint32_t ms, std::function<void()> fn) { _http->after(ms, std::move(fn)); });
    if (!config.http_listen.empty()) {
      _http = std::make_unique<HttpApi>(http_options(config), _state, FLOWRELAY_VERSION,
                                        [this] { return metrics_text(); });
      _http->route("/api/publish",
                   [api = _publish_api.get()](const HttpRequest& req, HttpReply reply) {
                     api->handle(req, std::move(reply));
                   });
      _http->route("/api/presence",
                   [api = _presence_api.get()](const HttpRequest& req, HttpReply reply) {
                     api->handle(req, std::move(reply));
                   });
      if (config.http_demo) {
        auto demo = std::make_shared<const DemoPage>(DemoPage::from_config(config));
        auto serve_demo = [demo](const HttpRequest& req, HttpReply reply) {
          demo->handle(req, std::move(reply));
        };
        _http->route("/demo", serve_demo);
        _http->route_prefix("/demo/", serve_demo);
      }
    }
    _backend = std::make_unique<Backend>(config.backend, *_router, _node_id, config.channel_prefix);
    _node->backend = _backend.get();
    _broker->start();
    for (auto& t : _transports) t->start();
  } catch (const std::exception& e) {
    // Poco's what() is only the class ("Net Exception"); displayText() has the reason.
    const auto* poco = dynamic_cast<const Poco::Exception*>(&e);
    std::string why = poco ? poco->displayText() : e.what();
    if (!config.http_listen.empty() && !_http)
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
                   (config.http_listen.empty() ? std::string("off") : config.http_listen) +
                   ", node id " + node_id_hex(_node_id) + ")");

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
