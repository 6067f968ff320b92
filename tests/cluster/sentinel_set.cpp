#include "sentinel_set.h"

#include <stdexcept>

#include "support/ports.h"
#include "support/text.h"

namespace flowrelay::ctest {

namespace {

// "master0:name=mymaster,status=ok,address=127.0.0.1:6380,slaves=2,sentinels=3" from INFO
// sentinel; "" when absent.
std::string master_line(uint16_t sentinel_port) {
  const auto info = redis_command(sentinel_port, {"INFO", "sentinel"}, 500ms);
  if (!info) return "";
  const size_t at = info->find("name=" + std::string(SentinelSet::kMasterName) + ",");
  if (at == std::string::npos) return "";
  const size_t eol = info->find('\r', at);
  return info->substr(at, eol == std::string::npos ? std::string::npos : eol - at);
}

std::string field(const std::string& line, const std::string& key) {
  const size_t at = line.find(key + "=");
  if (at == std::string::npos) return "";
  const size_t from = at + key.size() + 1;
  return line.substr(from, line.find(',', from) - from);
}

}  // namespace

SentinelSet::SentinelSet(const TempDir& dir) : _dir(dir) {
  // No diskless-sync delay (5 s by default): the replicas hold the data from the start.
  _nodes.push_back(std::make_unique<RedisServer>(
      dir, std::vector<std::string>{"--repl-diskless-sync-delay", "0"}, "redis-m"));
  const std::string master = std::to_string(_nodes[0]->port());
  for (int i = 1; i <= 2; ++i) {
    _nodes.push_back(std::make_unique<RedisServer>(
        dir, std::vector<std::string>{"--replicaof", "127.0.0.1", master},
        "redis-r" + std::to_string(i)));
  }
  for (int i = 1; i <= 3; ++i) {
    const uint16_t port = free_port();
    const std::string name = "sentinel" + std::to_string(i);
    // Sentinels rewrite their config file: each gets its own.
    const std::string conf = _dir.write(
        name + ".conf", "port " + std::to_string(port) + "\nbind 127.0.0.1\ndir " + _dir.path() +
                            "\nsentinel monitor " + kMasterName + " 127.0.0.1 " + master +
                            " 2\nsentinel down-after-milliseconds " + kMasterName +
                            " 2000\nsentinel failover-timeout " + kMasterName +
                            " 10000\nsentinel parallel-syncs " + kMasterName + " 1\n");
    _sentinel_ports.push_back(port);
    _sentinels.push_back(std::make_unique<Process>());
    _sentinels.back()->start({"redis-sentinel", conf},
                             {_dir.path() + "/" + name + ".log", {"REDIS_URL"}});
  }
}

bool SentinelSet::wait_settled(Millis timeout) const {
  return wait_for(
      [&] {
        for (uint16_t p : _sentinel_ports) {
          const std::string line = master_line(p);
          if (field(line, "slaves") != "2" || field(line, "sentinels") != "3") return false;
        }
        // ...and both replicas have synced (a replica still loading would be promoted empty).
        for (size_t i = 1; i < _nodes.size(); ++i) {
          const auto info = redis_command(_nodes[i]->port(), {"INFO", "replication"}, 500ms);
          if (!info || info->find("master_link_status:up") == std::string::npos) return false;
        }
        return true;
      },
      timeout, 50ms);
}

std::string SentinelSet::url() const {
  std::string hosts;
  for (uint16_t p : _sentinel_ports)
    hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(p);
  return "redis+sentinel://" + hosts + "/" + kMasterName;
}

std::optional<uint16_t> SentinelSet::master_port(size_t i) const {
  const std::string address = field(master_line(_sentinel_ports.at(i)), "address");
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  return static_cast<uint16_t>(std::stoul(address.substr(colon + 1)));
}

uint16_t SentinelSet::kill_master() {
  const auto port = master_port(0);
  if (!port) throw std::runtime_error("sentinel1 names no master");
  for (auto& n : _nodes) {
    if (n->port() == *port) {
      n->kill();
      return *port;
    }
  }
  throw std::runtime_error("the master port " + std::to_string(*port) + " is none of ours");
}

std::optional<uint16_t> SentinelSet::wait_new_master(uint16_t old_port, Millis timeout) const {
  std::optional<uint16_t> now;
  wait_for(
      [&] {
        for (size_t i = 0; i < _sentinel_ports.size(); ++i) {
          now = master_port(i);
          if (now && *now != old_port) return true;
        }
        now.reset();
        return false;
      },
      timeout, 50ms);
  return now;
}

std::string SentinelSet::logs() const {
  std::string out;
  for (auto& n : _nodes)
    out += "---- redis " + std::to_string(n->port()) + " ----\n" + tail_lines(n->log(), 10);
  for (int i = 1; i <= 3; ++i) {
    const std::string name = "sentinel" + std::to_string(i);
    out += "---- " + name + " ----\n" + tail_lines(_dir.read(name + ".log"), 15);
  }
  return out;
}

}  // namespace flowrelay::ctest
