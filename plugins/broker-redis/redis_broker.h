// broker-redis: Redis Pub/Sub through hiredis, on one thread of its own with two links: the
// subscriber (subscriber.h: one SUBSCRIBE per channel per node, deliveries, gap fill) and the
// publisher (publisher.h: pipelined publishes and history reads through the Lua scripts of
// history_scripts.h, idempotent across resends), which also carries presence (presence.h).
// This class is the thread, its loop, and the plugin's face (plugin.h's broker slots):
// readiness is both links up and every channel back. In mode: cluster the publisher has a pipe
// per master and the subscriber side is cluster_subscriber.h's (sharded Pub/Sub), both routed
// by the slot map (cluster_map.h); readiness is every master's links up and every channel back.
#pragma once

#include <flowrelay/plugin.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "cluster_map.h"
#include "cluster_subscriber.h"
#include "presence.h"
#include "publisher.h"
#include "redis_context.h"
#include "redis_link.h"
#include "sentinel_watch.h"
#include "subscriber.h"

namespace flowrelay::redis {

class RedisBroker final : public sdk::Broker, private LinkEvents {
 public:
  RedisBroker(sdk::BrokerHost host, const flowrelay_option* options, size_t n);
  ~RedisBroker() override;

  void start() override;
  // Queued for the publisher link; EAGAIN past the buffer. Appended to history while
  // history_size > 0; `done` (may be NULL) gets the offset once Redis answered (a resend's
  // first offset), or FLOWRELAY_EUNAVAIL if destroyed first. EUNSUPPORTED: unknown lane.
  flowrelay_status publish(std::string_view channel, const flowrelay_message& message,
                           flowrelay_published_fn done, void* ctx) override;
  // Sent on the publisher link, so it is answered after everything this node published
  // before it. While Redis is unreachable it is queued like a publish (same bound: EAGAIN past
  // it) and sent once the node is back and resubscribed; destroy() completes it with
  // EUNAVAIL. EUNSUPPORTED while history_size is 0.
  flowrelay_status history(std::string_view channel, uint64_t since, flowrelay_history_fn done,
                           void* ctx) override;
  // A reply step (plugin_reply.h), queued like a publish (same buffer bound, same resends: the
  // reply script stores a resent step once, reply_scripts.h). EINVAL: a step other than OPEN,
  // DELTA (seq >= 1) or END (reason done|error|cancelled|producer_lost), or a bad reply id;
  // EUNSUPPORTED while history_size is 0 (reply state lives with the history).
  flowrelay_status publish_reply(std::string_view channel, const flowrelay_message& message,
                                 flowrelay_reply_published_fn done, void* ctx) override;
  // PENDING; answered by host subscribed() once Redis confirmed (or refused) it.
  flowrelay_status subscribe(std::string_view channel) override;
  void unsubscribe(std::string_view channel) override;
  void metrics(sdk::PrometheusText& out) const override;
  // Noted now, written to Redis by the broker thread within Presence::kFlushDelayMs.
  void presence_set(std::string_view channel, uint64_t clients) override;
  // The sum over every node whose entry has not expired; EUNAVAIL (through `done`) while Redis
  // is unreachable.
  flowrelay_status presence(std::string_view channel, flowrelay_presence_fn done,
                            void* ctx) override;
  // Applies timeouts, buffer and history bounds live; returns what needs a restart (the URL).
  std::string reconfigure(const flowrelay_option* options, size_t n) override;

 private:
  void run();
  static void wake(void* self);
  void update_ready();
  void relink_if_master_moved();
  void map_changed();
  // mode: cluster: a channel whose keys and shard channel could land in different slots (a
  // brace in it would become their hash tag) is refused; always true otherwise.
  bool fits_cluster(std::string_view channel);

  void link_connected(RedisLink& link) override;
  void link_up(RedisLink& link) override;
  void link_down(RedisLink& link, bool refused, const std::string& reason) override;

  RedisContext _ctx;
  std::unique_ptr<ClusterMap> _cluster_map;  // mode: cluster only
  Publisher _publisher;
  Subscriber _subscriber;                                  // standalone and sentinel mode
  std::unique_ptr<ClusterSubscriber> _cluster_subscriber;  // mode: cluster
  Presence _presence;
  std::unique_ptr<SentinelWatch> _sentinels;  // sentinel mode only
  std::thread _thread;
  int _wake_fd = -1;
  std::atomic<bool> _stop{false};
  bool _ready = false;
};

}  // namespace flowrelay::redis
