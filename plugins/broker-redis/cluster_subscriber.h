// mode: cluster's subscriber (issue #13), Subscriber's twin (subscriber.h) on sharded Pub/Sub:
// one ShardPubSubLink per master of the slot map (cluster_map.h), each channel SSUBSCRIBEd on
// the link of its slot's owner. The host sees the same contract (plugin.h): every subscribe()
// is PENDING and answered exactly once by host subscribed() unless unsubscribed first; a
// re-subscribe after a lost link, a slot move or a failover that works is not reported; one
// Redis refuses (NOPERM...) is reported once and the channel dropped until subscribed again.
//
// Where a channel goes is the map's word, corrected by Redis': a MOVED answer patches the map
// (ClusterMap::moved) and the channel follows it at once; an unasked sunsubscribe (the slot
// moved away, or the master was demoted) re-sends the SSUBSCRIBE where the map says, which
// answers MOVED if the map is stale, and refreshes the map; a lost link re-subscribes its
// channels once it, or after a map change the new owner's link, is up. Each re-subscribe is
// confirmed like after Subscriber's reconnect: the gap is filled from history (gap_fill.h,
// gap_read.h) and live duplicates dropped. The links PING by themselves: no heartbeat here.
//
// Threads as Subscriber's: subscribe()/unsubscribe() from any thread queue ops under a mutex
// and wake the broker loop; everything else on the broker thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cluster_map.h"
#include "gap_fill.h"
#include "publisher_request.h"
#include "redis_context.h"
#include "shard_pubsub_link.h"

namespace flowrelay::redis {

class ClusterSubscriber final : private ShardPubSubEvents {
 public:
  using WakeFn = void (*)(void* owner);
  // What it needs of the publisher side (the broker wires them to its Publisher; tests may
  // leave them empty while history_size is 0).
  struct PublisherHooks {
    // Publisher::push_internal: a gap fill's history read (gap_read.h), to the slot's master.
    std::function<void(PublisherRequest&&)> read;
    // Publisher::note_delivered: what this node delivered is a floor of the channel's history.
    std::function<void(std::string_view channel, std::string_view epoch, uint64_t offset)>
        delivered;
  };
  // `state_changed` runs on the broker thread when resubscribed() became true or links_up()
  // changed: the broker re-evaluates its readiness.
  ClusterSubscriber(RedisContext& ctx, ClusterMap& map, PublisherHooks publisher, WakeFn wake,
                    void* owner, std::function<void()> state_changed);
  ~ClusterSubscriber();
  ClusterSubscriber(const ClusterSubscriber&) = delete;
  ClusterSubscriber& operator=(const ClusterSubscriber&) = delete;

  // [any thread, non-blocking] Queued for the broker thread.
  void subscribe(std::string_view channel) { queue_op(true, channel); }
  void unsubscribe(std::string_view channel) { queue_op(false, channel); }

  // [broker thread]
  void take_ops();
  // ClusterMap's changed(): the channels follow the map at the next check().
  void map_changed() { _map_dirty = true; }
  // Links (created and closed as the map changes), retries, gap fill deadlines; returns the
  // next time it needs a call. Call it before ClusterMap::check() (it may refresh()).
  int64_t check(int64_t now);
  void close();  // [destroy] closes every link, no events

  bool resubscribed() const { return _resubscribing.empty(); }
  // Every master of the map has its link up (false while the map is unknown).
  bool links_up() const;
  const GapFill& gaps() const { return _gaps; }
  size_t link_count() const { return _shards.size(); }

 private:
  struct Op {
    bool subscribe;
    std::string channel;
  };
  // One master's link and what is routed to it.
  struct Shard {
    std::unique_ptr<ShardPubSubLink> link;
    std::unordered_set<std::string> channels;        // routed here
    std::unordered_map<std::string, int> in_flight;  // SSUBSCRIBEs not yet answered
    // SSUBSCRIBEs a SUNSUBSCRIBE followed (unsubscribe()): their answers confirm nothing.
    std::unordered_map<std::string, int> overtaken;
  };
  struct Channel {
    Shard* shard = nullptr;  // its slot's owner's link; nullptr while no master is known
    bool live = false;       // SSUBSCRIBE confirmed on `shard`
  };

  void queue_op(bool subscribe, std::string_view channel);
  void add(const std::string& channel);
  void remove(const std::string& channel);
  // Moves `channel` to the link its slot's owner serves (a move ends its subscription there:
  // a re-subscribe), and SSUBSCRIBEs it if that link is up and it is not live or on its way.
  void route(const std::string& channel);
  void follow_map();  // every channel routed; links of masters no longer in the map closed
  Shard* shard_for(const RedisEndpoint& master);  // created (and connected) when new
  Shard* shard_of(const ShardPubSubLink& link);
  void send(Shard& shard, const std::string& channel);
  void unsubscribe(Shard& shard, const std::string& channel);
  void lose(const std::string& channel, Channel& c);  // no longer live: a re-subscribe owed
  void confirmed(const std::string& channel);
  void refuse(const std::string& channel, const std::string& reason);
  void deliver(std::string_view channel, const WireMessage& wire);
  void notify();  // counters; state_changed() if links_up() changed or resubscribed() became true

  void shard_up(ShardPubSubLink& link) override;
  void shard_down(ShardPubSubLink& link, const std::string& reason, bool was_up) override;
  void shard_subscribed(ShardPubSubLink& link, std::string_view channel,
                        std::string_view error) override;
  void shard_lost(ShardPubSubLink& link, std::string_view channel) override;
  void shard_message(ShardPubSubLink& link, std::string_view channel,
                     std::string_view data) override;

  RedisContext& _ctx;
  ClusterMap& _map;
  PublisherHooks _publisher;
  WakeFn _wake;
  void* _owner;
  std::function<void()> _state_changed;

  // Shared with the calling threads.
  std::mutex _mutex;
  std::vector<Op> _ops;
  bool _wake_pending = false;

  // The broker thread's own.
  std::map<std::string, std::unique_ptr<Shard>> _shards;  // by "host:port"
  std::unordered_map<std::string, Channel> _channels;     // subscriptions this node wants
  std::unordered_set<std::string> _awaiting;              // subscribe() calls not yet answered
  std::unordered_set<std::string> _resubscribing;         // not yet confirmed after a loss
  std::vector<std::pair<int64_t, std::string>> _retries;  // TRYAGAIN, ASK: send again then
  bool _map_dirty = true;
  bool _links_up = false;          // as last told
  bool _told_resubscribed = true;  // as last told
  GapFill _gaps;
  int64_t _gap_deadline_ms = INT64_MAX;
};

}  // namespace flowrelay::redis
