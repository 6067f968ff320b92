// What every event loop of one transport instance shares: the host, the options fixed at
// start, the limits that SIGHUP may change while loops read them, the connection caps.
#pragma once

#include <flowrelay/plugin.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include "access_policy.h"
#include "connection.h"
#include "fan_out.h"
#include "session_limits.h"
#include "stream_options.h"

namespace flowrelay::stream {

using Address = std::array<uint8_t, 16>;  // a client's, IPv6 or IPv4-mapped
// For the maps keyed by client address (the caps, the publish buckets).
struct AddressHash {
  std::size_t operator()(const Address& a) const {
    return std::hash<std::string_view>{}({reinterpret_cast<const char*>(a.data()), a.size()});
  }
};

// Connection caps shared by all loops: the total and the count per client address.
class ConnectionCaps {
 public:
  // 0 if admitted (and counted), else the HTTP status to refuse with (503 total, 429 per IP).
  int admit(const Address& ip, uint64_t max_total, uint64_t max_per_ip) {
    std::lock_guard lock(_mutex);
    if (max_total && _total >= max_total) return 503;
    if (max_per_ip) {
      uint32_t& n = _per_ip[ip];
      if (n >= max_per_ip) return 429;
      ++n;
    }
    ++_total;
    return 0;
  }
  void release(const Address& ip) {
    std::lock_guard lock(_mutex);
    --_total;
    auto it = _per_ip.find(ip);
    if (it != _per_ip.end() && --it->second == 0) _per_ip.erase(it);
  }

 private:
  std::mutex _mutex;
  uint64_t _total = 0;
  std::unordered_map<Address, uint32_t, AddressHash> _per_ip;
};

// publish_rate buckets per client address, for publishers that are not one long connection
// (transport-sse's POSTs: a bucket per connection would let a client reset it by reconnecting).
class AddressBuckets {
 public:
  bool take(const Address& ip, const LiveLimits& limits, int64_t now_ms) {
    // Unlimited (publish_rate 0, as PublishBucket reads it): no lock, no bucket. Read on every
    // call, so a reload that sets a rate applies from the next POST on.
    if (limits.publish_rate.load(std::memory_order_relaxed) <= 0) return true;
    std::lock_guard lock(_mutex);
    auto [it, fresh] = _buckets.try_emplace(ip);
    if (fresh) it->second.fill(limits, now_ms);
    const bool ok = it->second.take(limits, now_ms);
    // Bounded memory: past kSweepAt addresses, forget those whose bucket has refilled (they
    // would get a full one anyway).
    if (_buckets.size() > kSweepAt) {
      const double burst = limits.publish_burst.load(std::memory_order_relaxed);
      std::erase_if(_buckets, [&](auto& entry) {
        PublishBucket probe = entry.second;
        probe.take(limits, now_ms);
        return probe.tokens + 1.0f >= burst;
      });
    }
    return ok;
  }

 private:
  static constexpr size_t kSweepAt = 4096;
  std::mutex _mutex;
  std::unordered_map<Address, PublishBucket, AddressHash> _buckets;
};

// Loads the key files of `settings`; a missing or bad one is an option error naming the file.
inline std::shared_ptr<const AccessPolicy> load_access_policy(const AccessSettings& settings,
                                                              std::string_view plugin) {
  try {
    return std::make_shared<const AccessPolicy>(settings);
  } catch (const std::runtime_error& e) {
    throw sdk::OptionError(std::string(plugin) + ": " + e.what());
  }
}

// Who a transport is, for its loops: its plugin name (errors), its name for the backend
// (flowrelay_client_info.transport: "ws", "sse"), its URL scheme, its metric names' prefix
// ("flowrelay_", "flowrelay_sse_": two transports never export one family twice), and its sessions'
// maker.
struct TransportIdentity {
  std::string_view plugin;
  std::string_view name;
  std::string_view scheme;  // of its URLs, for the log: "ws", "http"
  std::string_view metric_prefix;
  ConnectionFactory make_connection;
  FanOutFn fan_out;  // fan_out_to<its session type>
};

struct TransportContext {
  sdk::TransportHost host;  // node id, channel prefix, echo, and the daemon's calls
  StreamOptions options;    // as at start; the live limits below may differ after a reload
  LiveLimits limits;
  mutable ConnectionCaps caps;             // shared, internally locked
  mutable AddressBuckets publish_buckets;  // publish_rate per client address (POSTs)
  // Sessions in a channel (joined, not closed) by the frame they take: the plain one (raw
  // WebSocket, SSE events) or the envelope one (flowrelay.v1, NDJSON). A delivery encodes only
  // the frames somebody on this node takes, so a transport nobody uses costs no encoding. Two
  // counters, not a total and a part: each answer then rests on one load.
  mutable std::atomic<uint64_t> plain_clients{0};
  mutable std::atomic<uint64_t> envelope_clients{0};
  bool wants_plain() const { return plain_clients.load(std::memory_order_acquire) > 0; }
  bool wants_envelope() const { return envelope_clients.load(std::memory_order_acquire) > 0; }
  const std::string_view plugin;
  const std::string_view transport_name;
  const std::string_view scheme;
  const std::string_view metric_prefix;
  const ConnectionFactory make_connection;
  const FanOutFn fan_out;

  TransportContext(sdk::TransportHost h, StreamOptions o, const TransportIdentity& who)
      : host(h),
        options(std::move(o)),
        limits(options),
        plugin(who.plugin),
        transport_name(who.name),
        scheme(who.scheme),
        metric_prefix(who.metric_prefix),
        make_connection(who.make_connection),
        fan_out(who.fan_out),
        _policy(load_access_policy(options.access, who.plugin)) {}

  // The access policy in force (replaced on reload: a handshake keeps the one it started with).
  std::shared_ptr<const AccessPolicy> policy() const {
    std::lock_guard lock(_policy_mutex);
    return _policy;
  }
  void set_policy(std::shared_ptr<const AccessPolicy> p) {
    std::lock_guard lock(_policy_mutex);
    _policy = std::move(p);
  }
  void log(flowrelay_log_level level, std::string_view text) const { host.log(level, text); }

 private:
  mutable std::mutex _policy_mutex;
  std::shared_ptr<const AccessPolicy> _policy;
};

}  // namespace flowrelay::stream
