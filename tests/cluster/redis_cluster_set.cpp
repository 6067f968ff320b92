#include "redis_cluster_set.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <stdexcept>

#include "support/ports.h"
#include "support/text.h"

namespace flowrelay::ctest {

namespace {

constexpr uint16_t kBusOffset = 10000;  // a node's cluster bus: its port + 10000

// The content of a bulk-string reply ("$5 hello" -> "hello"); nullopt for anything else.
std::optional<std::string> bulk(const std::optional<std::string>& reply) {
  if (!reply || reply->empty() || (*reply)[0] != '$' || *reply == "$-1") return std::nullopt;
  const size_t space = reply->find(' ');
  return space == std::string::npos ? std::string() : reply->substr(space + 1);
}

std::string str(const std::optional<std::string>& reply) { return reply ? *reply : "(no answer)"; }

// "id 127.0.0.1:7000@17000[,hostname] flags master ping pong epoch link slot..." (CLUSTER NODES).
std::optional<ClusterNodeView> parse_node_line(const std::string& line) {
  std::istringstream in(line);
  std::string address, flags, master, ignored;
  ClusterNodeView n;
  if (!(in >> n.id >> address >> flags >> master >> ignored >> ignored >> ignored >> ignored))
    return std::nullopt;
  const size_t colon = address.rfind(':', address.find('@'));
  if (colon == std::string::npos) return std::nullopt;
  n.port = static_cast<uint16_t>(std::stoul(address.substr(colon + 1)));
  const std::string f = "," + flags + ",";
  n.master = f.find(",master,") != std::string::npos;
  n.failing = f.find(",fail,") != std::string::npos || f.find(",fail?,") != std::string::npos;
  if (master != "-") n.master_id = master;
  for (std::string s; in >> s;) {
    if (s.empty() || s[0] == '[') continue;  // "[slot->-id]" / "[slot-<-id]": a migration
    const size_t dash = s.find('-');
    const int lo = std::stoi(s.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : std::stoi(s.substr(dash + 1));
    n.slots.emplace_back(lo, hi);
  }
  return n;
}

std::optional<std::string> info_field(uint16_t port, const std::vector<std::string>& command,
                                      const std::string& key) {
  const auto text = bulk(redis_command(port, command, 500ms));
  if (!text) return std::nullopt;
  const size_t at = text->find(key + ":");
  if (at == std::string::npos) return std::nullopt;
  const size_t from = at + key.size() + 1;
  return text->substr(from, text->find('\r', from) - from);
}

// "port:lo-hi,lo-hi;port:..." for the masters owning slots in `view`, by port; "" if a node in
// it is failing while it owns slots.
std::string owners_of(const std::vector<ClusterNodeView>& view) {
  std::map<uint16_t, std::string> owners;
  for (const auto& n : view) {
    if (!n.master || n.slots.empty()) continue;
    if (n.failing) return "";
    std::vector<std::pair<int, int>> ranges = n.slots;
    std::sort(ranges.begin(), ranges.end());
    std::string& o = owners[n.port];
    for (const auto& [lo, hi] : ranges)
      o += (o.empty() ? "" : ",") + std::to_string(lo) + "-" + std::to_string(hi);
  }
  std::string out;
  for (const auto& [port, ranges] : owners) out += std::to_string(port) + ":" + ranges + ";";
  return out;
}

size_t slots_covered(const std::vector<ClusterNodeView>& view) {
  size_t n = 0;
  for (const auto& v : view)
    if (v.master)
      for (const auto& [lo, hi] : v.slots) n += static_cast<size_t>(hi - lo + 1);
  return n;
}

}  // namespace

RedisClusterSet::RedisClusterSet(const TempDir& dir, Millis node_timeout) : _dir(dir) {
  for (int i = 0; i < 2 * kMasters; ++i) {
    const std::string name = "redis-c" + std::to_string(i + 1);
    for (int attempt = 1;; ++attempt) {
      // The port may have been taken between the check and redis' bind: try another one.
      const uint16_t port = free_port_pair(kBusOffset);
      try {
        _nodes.push_back(std::make_unique<RedisServer>(
            dir, port,
            std::vector<std::string>{
                "--cluster-enabled", "yes", "--cluster-config-file",
                dir.file("nodes-" + std::to_string(port) + ".conf"), "--cluster-node-timeout",
                std::to_string(node_timeout.count()),
                // Promote whatever the replica has (a test kills masters on purpose).
                "--cluster-replica-validity-factor", "0",
                // No diskless-sync delay (5 s by default): the replicas sync at once.
                "--repl-diskless-sync-delay", "0"},
            name));
        break;
      } catch (const std::exception&) {
        if (attempt == 3) throw;
      }
    }
  }
  // The first three become the masters; redis-cli assigns each a replica of the other three.
  std::vector<std::string> argv{"redis-cli", "--cluster", "create"};
  for (const auto& n : _nodes) argv.push_back("127.0.0.1:" + std::to_string(n->port()));
  for (const char* a : {"--cluster-replicas", "1", "--cluster-yes"}) argv.push_back(a);
  const ProcessResult created = run_process(argv, 30s);
  if (!created.status.exited || created.status.code != 0) {
    throw std::runtime_error("redis-cli --cluster create: " + created.status.describe() + "\n" +
                             tail_lines(created.out + created.err, 20) + logs());
  }
}

bool RedisClusterSet::wait_settled(Millis timeout) const {
  return wait_for(
      [&] {
        if (!agree_on_owners()) return false;
        size_t replicas = 0, masters = 0;
        for (const auto& n : _nodes) {
          const uint16_t p = n->port();
          if (killed(p)) continue;
          if (info_field(p, {"CLUSTER", "INFO"}, "cluster_state").value_or("") != "ok")
            return false;
          const std::string role = info_field(p, {"INFO", "replication"}, "role").value_or("");
          if (role == "master") {
            ++masters;
          } else if (role == "slave") {
            ++replicas;
            // Synced: a replica still loading would be promoted empty.
            const auto link = info_field(p, {"INFO", "replication"}, "master_link_status");
            const auto master = info_field(p, {"INFO", "replication"}, "master_port");
            const bool master_live = master && !killed(static_cast<uint16_t>(std::stoul(*master)));
            if (master_live && link.value_or("") != "up") return false;
          } else {
            return false;
          }
        }
        if (!_killed.empty()) return true;
        if (masters != kMasters || replicas != kMasters) return false;
        // Every node's own view (gossip) knows each slot owner's replica too: a replica's role
        // is known to itself before the others hear of it.
        for (const auto& n : _nodes) {
          const auto v = view(n->port());
          for (const auto& owner : v) {
            if (!owner.master || owner.slots.empty()) continue;
            if (std::none_of(v.begin(), v.end(),
                             [&](const ClusterNodeView& r) { return r.master_id == owner.id; }))
              return false;
          }
        }
        return true;
      },
      timeout, 50ms);
}

bool RedisClusterSet::agree_on_owners() const {
  std::optional<std::string> first;
  for (const auto& n : _nodes) {
    if (killed(n->port())) continue;
    const auto v = view(n->port());
    const std::string owners = owners_of(v);
    if (owners.empty() || slots_covered(v) != kSlots) return false;
    if (!first) first = owners;
    if (*first != owners) return false;
    // Every owner live (a killed master still owning slots: not failed over yet).
    for (const auto& node : v)
      if (node.master && !node.slots.empty() && killed(node.port)) return false;
  }
  return first.has_value();
}

std::string RedisClusterSet::url() const {
  std::string hosts;
  for (const auto& n : _nodes)
    hosts += (hosts.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(n->port());
  return "redis://" + hosts;
}

std::vector<uint16_t> RedisClusterSet::ports() const {
  std::vector<uint16_t> out;
  for (const auto& n : _nodes) out.push_back(n->port());
  return out;
}

std::vector<ClusterNodeView> RedisClusterSet::view(uint16_t port) const {
  std::vector<ClusterNodeView> out;
  const auto text = bulk(redis_command(port, {"CLUSTER", "NODES"}, 500ms));
  if (!text) return out;
  for (const std::string& line : non_empty_lines(*text))
    if (auto n = parse_node_line(line)) out.push_back(std::move(*n));
  return out;
}

std::optional<uint16_t> RedisClusterSet::live_master() const {
  for (const auto& n : _nodes) {
    const uint16_t p = n->port();
    if (!killed(p) && info_field(p, {"INFO", "replication"}, "role").value_or("") == "master" &&
        n->answers_ping())
      return p;
  }
  return std::nullopt;
}

std::vector<uint16_t> RedisClusterSet::masters() const {
  const auto asked = live_master();
  if (!asked) return {};
  std::vector<std::pair<int, uint16_t>> by_slot;
  for (const auto& n : view(*asked)) {
    if (!n.master || n.failing || n.slots.empty() || killed(n.port)) continue;
    int lowest = kSlots;
    for (const auto& r : n.slots) lowest = std::min(lowest, r.first);
    by_slot.emplace_back(lowest, n.port);
  }
  std::sort(by_slot.begin(), by_slot.end());
  std::vector<uint16_t> out;
  for (const auto& [slot, port] : by_slot) out.push_back(port);
  return out;
}

std::optional<uint16_t> RedisClusterSet::replica_of(uint16_t master_port) const {
  const auto asked = live_master();
  if (!asked) return std::nullopt;
  const auto v = view(*asked);
  std::string id;
  for (const auto& n : v)
    if (n.port == master_port) id = n.id;
  for (const auto& n : v)
    if (!id.empty() && n.master_id == id) return n.port;
  return std::nullopt;
}

std::string RedisClusterSet::node_id(uint16_t port) const {
  const auto id = bulk(redis_command(port, {"CLUSTER", "MYID"}));
  if (!id || id->empty()) throw std::runtime_error("CLUSTER MYID on " + std::to_string(port));
  return *id;
}

int RedisClusterSet::slot_of(const std::string& key) const {
  for (const auto& n : _nodes) {
    if (killed(n->port())) continue;
    const auto r = redis_command(n->port(), {"CLUSTER", "KEYSLOT", key});
    if (r && r->size() > 1 && (*r)[0] == ':') return std::stoi(r->substr(1));
  }
  throw std::runtime_error("CLUSTER KEYSLOT " + key + ": no node answers");
}

std::optional<uint16_t> RedisClusterSet::owner_of_slot(int slot) const {
  const auto asked = live_master();
  if (!asked) return std::nullopt;
  for (const auto& n : view(*asked)) {
    if (!n.master || n.failing) continue;
    for (const auto& [lo, hi] : n.slots)
      if (slot >= lo && slot <= hi) return n.port;
  }
  return std::nullopt;
}

bool RedisClusterSet::wait_replica_caught_up(uint16_t master, Millis timeout) const {
  const auto replica = replica_of(master);
  if (!replica) return false;
  const auto offset = info_field(master, {"INFO", "replication"}, "master_repl_offset");
  if (!offset) return false;
  const uint64_t target = std::stoull(*offset);
  return wait_for(
      [&] {
        const auto got = info_field(*replica, {"INFO", "replication"}, "slave_repl_offset");
        return got && std::stoull(*got) >= target;
      },
      timeout, 20ms);
}

std::optional<uint16_t> RedisClusterSet::kill_master(size_t i, Millis timeout) {
  const auto now = masters();
  if (i >= now.size()) throw std::runtime_error("no master " + std::to_string(i));
  const uint16_t victim = now[i];
  const auto replica = replica_of(victim);
  if (!replica) throw std::runtime_error("master " + std::to_string(victim) + " has no replica");
  const auto deadline = Clock::now() + timeout;
  for (auto& n : _nodes) {
    if (n->port() == victim) {
      n->kill();
      _killed.insert(victim);
    }
  }
  const bool promoted = wait_for(
      [&] {
        return info_field(*replica, {"INFO", "replication"}, "role").value_or("") == "master";
      },
      timeout, 50ms);
  if (!promoted) return std::nullopt;
  const auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now());
  if (!wait_settled(std::max(left, Millis(0)))) return std::nullopt;
  return replica;
}

void RedisClusterSet::begin_slot_move(int slot, uint16_t to) {
  const auto from = owner_of_slot(slot);
  if (!from) throw std::runtime_error("slot " + std::to_string(slot) + " has no owner");
  const std::string s = std::to_string(slot);
  const auto importing = redis_command(to, {"CLUSTER", "SETSLOT", s, "IMPORTING", node_id(*from)});
  if (str(importing) != "+OK")
    throw std::runtime_error("CLUSTER SETSLOT " + s + " IMPORTING on " + std::to_string(to) + ": " +
                             str(importing));
  const auto migrating = redis_command(*from, {"CLUSTER", "SETSLOT", s, "MIGRATING", node_id(to)});
  if (str(migrating) != "+OK")
    throw std::runtime_error("CLUSTER SETSLOT " + s + " MIGRATING on " + std::to_string(*from) +
                             ": " + str(migrating));
}

size_t RedisClusterSet::migrate_slot_keys(int slot, uint16_t from, uint16_t to) {
  const std::string s = std::to_string(slot);
  size_t moved = 0;
  for (int batch = 0; batch < 10000; ++batch) {
    // CLUSTER GETKEYSINSLOT answers an array (redis_command reads one line): redis-cli prints
    // one key per line when its output is not a terminal.
    const ProcessResult keys = run_process(
        {"redis-cli", "-p", std::to_string(from), "CLUSTER", "GETKEYSINSLOT", s, "100"}, 5s);
    if (!keys.status.exited || keys.status.code != 0)
      throw std::runtime_error("CLUSTER GETKEYSINSLOT " + s + ": " + keys.status.describe());
    const std::vector<std::string> names = non_empty_lines(keys.out);
    if (names.empty()) return moved;
    std::vector<std::string> argv{"MIGRATE", "127.0.0.1", std::to_string(to), "",
                                  "0",       "5000",      "REPLACE",          "KEYS"};
    argv.insert(argv.end(), names.begin(), names.end());
    const auto r = redis_command(from, argv, 6s);
    if (str(r) != "+OK" && str(r) != "+NOKEY")
      throw std::runtime_error("MIGRATE of slot " + s + " to " + std::to_string(to) + ": " +
                               str(r) + " (keys: " + names.front() + " ...)");
    moved += names.size();
  }
  throw std::runtime_error("slot " + s + " never emptied");
}

void RedisClusterSet::finish_slot_move(int slot, uint16_t from, uint16_t to, Millis timeout) {
  const std::string s = std::to_string(slot), id = node_id(to);
  // The new owner first, then the old one (so no client bounces between them), then the rest.
  std::vector<uint16_t> order{to, from};
  for (uint16_t m : masters())
    if (m != to && m != from) order.push_back(m);
  for (uint16_t port : order) {
    const auto r = redis_command(port, {"CLUSTER", "SETSLOT", s, "NODE", id});
    if (str(r) != "+OK")
      throw std::runtime_error("CLUSTER SETSLOT " + s + " NODE on " + std::to_string(port) + ": " +
                               str(r));
  }
  // The replicas learn it by gossip: a replica promoted later must know its master owned it.
  const bool known = wait_for(
      [&] {
        for (const auto& n : _nodes) {
          if (killed(n->port())) continue;
          bool names_to = false;
          for (const auto& v : view(n->port()))
            for (const auto& [lo, hi] : v.slots)
              if (slot >= lo && slot <= hi) names_to = v.port == to && v.master;
          if (!names_to) return false;
        }
        return true;
      },
      timeout, 20ms);
  if (!known)
    throw std::runtime_error("not every node names " + std::to_string(to) + " as slot " + s +
                             "'s owner");
}

void RedisClusterSet::move_slot(int slot, uint16_t to) {
  const auto from = owner_of_slot(slot);
  if (!from) throw std::runtime_error("slot " + std::to_string(slot) + " has no owner");
  if (*from == to) return;
  begin_slot_move(slot, to);
  migrate_slot_keys(slot, *from, to);
  finish_slot_move(slot, *from, to);
}

std::string RedisClusterSet::logs() const {
  std::string out;
  for (const auto& n : _nodes) {
    out += "---- redis " + std::to_string(n->port()) + (killed(n->port()) ? " (killed)" : "") +
           " ----\n" + tail_lines(n->log(), 10);
  }
  return out;
}

}  // namespace flowrelay::ctest
