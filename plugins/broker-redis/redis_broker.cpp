#include "redis_broker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "wire_format.h"

namespace flowrelay::redis {

namespace {
char kWakeTag;  // epoll data of the wake eventfd (the adapters' is their own address)
// How long destroy() waits for Redis to confirm this node's presence is withdrawn.
constexpr int64_t kWithdrawWaitMs = 500;

// What the reply script can take: its fields travel space-separated (wire_format.h).
bool valid_reply_step(const flowrelay_reply& r) {
  const std::string_view id = sdk::view(r.id), reason = sdk::view(r.reason);
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (c < 0x21 || c > 0x7e) return false;
  switch (r.kind) {
    case FLOWRELAY_KIND_OPEN:
      return true;
    case FLOWRELAY_KIND_DELTA:
      return r.seq >= 1;
    case FLOWRELAY_KIND_END:
      return reason == "done" || reason == "error" || reason == "cancelled" ||
             reason == "producer_lost";
    default:
      return false;
  }
}
}  // namespace

RedisBroker::RedisBroker(sdk::BrokerHost host, const flowrelay_option* options, size_t n)
    // The original service read REDIS_URL; it still wins over the config file.
    : _ctx(host, parse_options(options, n, std::getenv("REDIS_URL"))),
      _cluster_map(_ctx.cluster_mode()
                       ? std::make_unique<ClusterMap>(_ctx, _ctx.options.cluster_seeds,
                                                      [this] { map_changed(); })
                       : nullptr),
      _publisher(_ctx, *this, wake, this, _cluster_map.get()),
      _subscriber(_ctx, *this, _publisher, wake, this, [this] { update_ready(); }),
      _presence(_ctx, _publisher, wake, this) {
  if (_ctx.sentinel_mode()) _sentinels = std::make_unique<SentinelWatch>(_ctx);
  if (_cluster_map) {
    ClusterSubscriber::PublisherHooks hooks{
        [this](PublisherRequest&& r) { _publisher.push_internal(std::move(r)); },
        [this](std::string_view channel, std::string_view epoch, uint64_t offset) {
          _publisher.note_delivered(channel, epoch, offset);
        }};
    _cluster_subscriber = std::make_unique<ClusterSubscriber>(
        _ctx, *_cluster_map, std::move(hooks), wake, this, [this] { update_ready(); });
  }
}

RedisBroker::~RedisBroker() {
  if (_thread.joinable()) {
    _stop = true;
    wake(this);
    _thread.join();
  }
  _publisher.abandon();
  _presence.abandon();
  if (_ctx.epoll_fd >= 0) close(_ctx.epoll_fd);
  if (_wake_fd >= 0) close(_wake_fd);
}

void RedisBroker::start() {
  _ctx.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  _wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (_ctx.epoll_fd < 0 || _wake_fd < 0)
    throw std::runtime_error(std::string("broker-redis: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &kWakeTag;
  epoll_ctl(_ctx.epoll_fd, EPOLL_CTL_ADD, _wake_fd, &ev);
  if (_cluster_map) {
    std::string list;
    for (const auto& s : _ctx.options.cluster_seeds)
      list += (list.empty() ? "" : ",") + s.describe();
    _ctx.log(FLOWRELAY_LOG_INFO, "asking Redis Cluster nodes " + list + " for the slot map");
  } else if (_sentinels) {
    std::string list;
    for (const auto& s : _ctx.options.sentinels) list += (list.empty() ? "" : ",") + s.describe();
    _ctx.log(FLOWRELAY_LOG_INFO,
             "asking sentinels " + list + " for master " + _ctx.options.master_name);
  } else {
    _ctx.log(FLOWRELAY_LOG_INFO, "connecting to " + _ctx.options.endpoint.describe());
  }
  _thread = std::thread([this] { run(); });
}

// ---------------------------------------------------------------------------- any thread

bool RedisBroker::fits_cluster(std::string_view channel) {
  if (!_cluster_map || channel.find_first_of("{}") == std::string_view::npos) return true;
  _ctx.report(FLOWRELAY_EINVAL, "broker-redis mode: cluster refuses channel '" +
                                    std::string(channel) +
                                    "': a brace would split its keys from its shard channel "
                                    "(channels.prefix and conversation ids must not have any)");
  return false;
}

flowrelay_status RedisBroker::publish(std::string_view channel, const flowrelay_message& message,
                                      flowrelay_published_fn done, void* ctx) {
  if (!wire_lane(message.lane)) return FLOWRELAY_EUNSUPPORTED;  // no name on the wire
  if (!fits_cluster(channel)) return FLOWRELAY_EINVAL;
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::Publish;
  r.lane = message.lane;
  r.origin.session = message.origin.session;  // node and seq are this broker's (publisher.cpp)
  r.channel.assign(channel);
  r.data.assign(message.data.ptr, message.data.len);
  r.published = done;
  r.ctx = ctx;
  return _publisher.enqueue(std::move(r));
}

flowrelay_status RedisBroker::publish_reply(std::string_view channel,
                                            const flowrelay_message& message,
                                            flowrelay_reply_published_fn done, void* ctx) {
  const flowrelay_reply* reply = sdk::reply_of(message);
  if (!reply || !valid_reply_step(*reply) || !fits_cluster(channel)) return FLOWRELAY_EINVAL;
  if (_ctx.live.history_size.load() == 0) return FLOWRELAY_EUNSUPPORTED;
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::Reply;
  r.step = reply->kind;
  r.origin.session = message.origin.session;
  r.channel.assign(channel);
  r.reply_id.assign(reply->id.ptr, reply->id.len);
  if (reply->kind == FLOWRELAY_KIND_DELTA) {
    r.reply_seq = reply->seq;
    r.data.assign(message.data.ptr, message.data.len);
  } else if (reply->kind == FLOWRELAY_KIND_END) {
    r.reason.assign(reply->reason.ptr, reply->reason.len);
    r.data.assign(reply->error.ptr, reply->error.len);
  }
  r.replied = done;
  r.ctx = ctx;
  return _publisher.enqueue(std::move(r));
}

flowrelay_status RedisBroker::history(std::string_view channel, uint64_t since,
                                      flowrelay_history_fn done, void* ctx) {
  if (_ctx.live.history_size.load() == 0) return FLOWRELAY_EUNSUPPORTED;
  if (!fits_cluster(channel)) return FLOWRELAY_EINVAL;
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::History;
  r.channel.assign(channel);
  r.since = since;
  r.read = done;
  r.ctx = ctx;
  return _publisher.enqueue(std::move(r));
}

flowrelay_status RedisBroker::subscribe(std::string_view channel) {
  if (!_cluster_subscriber) {
    _subscriber.subscribe(channel);
  } else {
    if (!fits_cluster(channel)) return FLOWRELAY_EINVAL;
    _cluster_subscriber->subscribe(channel);
  }
  return FLOWRELAY_PENDING;
}

void RedisBroker::unsubscribe(std::string_view channel) {
  if (_cluster_subscriber)
    _cluster_subscriber->unsubscribe(channel);
  else
    _subscriber.unsubscribe(channel);
}

void RedisBroker::presence_set(std::string_view channel, uint64_t clients) {
  _presence.set(channel, clients);
}

flowrelay_status RedisBroker::presence(std::string_view channel, flowrelay_presence_fn done,
                                       void* ctx) {
  return _presence.read(channel, done, ctx);
}

void RedisBroker::wake(void* self) {
  const uint64_t one = 1;
  ssize_t r = write(static_cast<RedisBroker*>(self)->_wake_fd, &one, sizeof one);
  (void)r;
}

void RedisBroker::metrics(sdk::PrometheusText& out) const {
  const auto& c = _ctx.count;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  const std::string b = sdk::PrometheusText::label("broker", "redis");
  out.family("flowrelay_redis_connected", "gauge", "1 while the link to Redis is up")
      .sample("flowrelay_redis_connected", "link=\"publisher\"", uint64_t(c.pub_up.load()))
      .sample("flowrelay_redis_connected", "link=\"subscriber\"", uint64_t(c.sub_up.load()));
  out.counter("flowrelay_redis_master_changes_total",
              "Times the sentinels named another master (the master links followed)",
              get(c.master_changes), b);
  out.family("flowrelay_redis_cluster_redirects_total", "counter",
             "mode: cluster: requests Redis Cluster sent elsewhere (MOVED: the slot's master "
             "changed; ASK: the slot is migrating), sent again there")
      .sample("flowrelay_redis_cluster_redirects_total", "kind=\"moved\"", get(c.cluster_moved))
      .sample("flowrelay_redis_cluster_redirects_total", "kind=\"ask\"", get(c.cluster_ask));
  out.counter("flowrelay_redis_cluster_retries_total",
              "mode: cluster: requests tried again after TRYAGAIN (a slot migrating) or "
              "CLUSTERDOWN (a failover under way)",
              get(c.cluster_retries), b);
  out.gauge("flowrelay_redis_sentinel_connected", "1 while a sentinel query link is up",
            uint64_t(c.sentinel_up.load()), b);
  out.counter("flowrelay_redis_reconnects_total", "Redis links re-established", get(c.reconnects),
              b);
  out.counter("flowrelay_broker_published_total", "Publishes acknowledged by Redis",
              get(c.published), b);
  out.counter("flowrelay_broker_publish_errors_total",
              "Publishes and history reads Redis refused (reported)", get(c.publish_errors), b);
  out.counter("flowrelay_broker_buffer_full_total",
              "Publishes refused because the buffer was full (client got 1013)", get(c.buffer_full),
              b);
  out.counter("flowrelay_broker_delivered_total", "Messages received from Redis", get(c.received),
              b);
  out.counter("flowrelay_broker_history_reads_total", "History reads answered by Redis",
              get(c.history_reads), b);
  out.counter("flowrelay_redis_script_reloads_total",
              "History scripts reloaded after Redis lost them (NOSCRIPT)", get(c.script_reloads),
              b);
  out.counter("flowrelay_redis_resends_stored_once_total",
              "Publishes resent after a lost reply that Redis had stored already: not stored or "
              "published again, completed with the first offset",
              get(c.resends_stored_once), b);
  out.counter("flowrelay_redis_resend_offsets_lost_total",
              "Of those, resends whose first entry was trimmed from history (completed with "
              "offset 0)",
              get(c.resend_offsets_lost), b);
  out.counter("flowrelay_redis_subscribe_refused_total",
              "Channels whose subscribe or re-subscribe Redis refused (reported)",
              get(c.subscribe_refused), b);
  const GapFill& gaps = _cluster_subscriber ? _cluster_subscriber->gaps() : _subscriber.gaps();
  out.counter("flowrelay_redis_gap_filled_total",
              "Messages Pub/Sub missed during a subscriber outage, delivered from history",
              gaps.filled(), b);
  out.counter("flowrelay_redis_gap_unrecovered_total",
              "Subscriber outage gaps not filled (per channel; the log says why)",
              gaps.unrecovered(), b);
  out.counter("flowrelay_redis_duplicates_skipped_total",
              "Messages received again (an offset, or outside history a node's seq, already "
              "delivered): not delivered twice",
              gaps.duplicates(), b);
  out.gauge("flowrelay_broker_buffered_messages",
            "Publishes (and history reads) accepted and not yet answered by Redis",
            _publisher.buffered_messages(), b);
  out.gauge("flowrelay_broker_buffered_bytes", "Bytes of those publishes",
            _publisher.buffered_bytes(), b);
  out.counter("flowrelay_redis_history_regressions_total",
              "Channel histories found behind what this node had acknowledged or delivered "
              "(Redis lost writes: a failover?): a new epoch was started",
              get(c.history_regressions), b);
  out.counter("flowrelay_redis_wait_short_total",
              "WAITs after a batch of writes answered by fewer than wait_replicas replicas",
              get(c.wait_short), b);
}

std::string RedisBroker::reconfigure(const flowrelay_option* options, size_t n) {
  const RedisOptions fresh = parse_options(options, n, std::getenv("REDIS_URL"));
  _ctx.live.apply(fresh);
  const bool same = fresh.endpoint == _ctx.options.endpoint &&
                    fresh.sentinels == _ctx.options.sentinels &&
                    fresh.master_name == _ctx.options.master_name &&
                    fresh.cluster_seeds == _ctx.options.cluster_seeds &&
                    fresh.sentinel_password == _ctx.options.sentinel_password;
  return same ? "" : "url";
}

// ---------------------------------------------------------------------------- broker thread

void RedisBroker::run() {
  if (_sentinels) _sentinels->connect();
  if (_cluster_map) {
    _cluster_map->connect();  // the pipes and shard links follow the map
  } else {
    _publisher.connect();
    _subscriber.link().connect();
  }
  int wait_ms = 0;
  int64_t stop_at = 0;
  epoll_event events[16];
  for (;;) {
    const int n = epoll_wait(_ctx.epoll_fd, events, 16, wait_ms);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == &kWakeTag) {
        uint64_t v;
        ssize_t r = read(_wake_fd, &v, sizeof v);
        (void)r;
      } else {
        static_cast<EpollHandler*>(events[i].data.ptr)->handle(events[i].events);
      }
    }
    if (_stop) {
      // A clean shutdown takes this node's presence out of Redis, waiting briefly for Redis
      // to confirm (best effort: otherwise the entries expire).
      if (stop_at == 0) {
        stop_at = monotonic_ms() + kWithdrawWaitMs;
        if (!_presence.withdraw()) break;
      }
      if (!_presence.awaiting_replies() || monotonic_ms() >= stop_at) break;
      wait_ms = 10;
      continue;
    }
    relink_if_master_moved();
    if (_cluster_subscriber)
      _cluster_subscriber->take_ops();
    else
      _subscriber.take_ops();
    _publisher.take_outbox();
    _publisher.send_pending();
    const int64_t now = monotonic_ms();
    int64_t next = std::min(_publisher.check(now), _presence.check(now));
    if (_cluster_map) {
      // The subscriber first: what it finds may ask the map again (refresh()).
      next = std::min({next, _cluster_subscriber->check(now), _cluster_map->check(now)});
      _cluster_map->free_dead_adapters();
    } else {
      next = std::min({next, _subscriber.link().check(now), _subscriber.check(now)});
    }
    if (_sentinels) {
      next = std::min(next, _sentinels->check(now));
      relink_if_master_moved();  // an answer can only come from epoll; this is cheap
      _sentinels->free_dead_adapters();
    }
    _publisher.free_dead_adapters();
    _subscriber.link().free_dead_adapters();
    wait_ms = static_cast<int>(std::clamp<int64_t>(next - now, 0, 1000));
  }
  _ctx.closing = true;
  _publisher.close();
  _subscriber.link().close();
  if (_cluster_map) {
    _cluster_subscriber->close();
    _cluster_map->close();
    _cluster_map->free_dead_adapters();
  }
  if (_sentinels) _sentinels->close();
  _publisher.free_dead_adapters();
  _subscriber.link().free_dead_adapters();
  if (_sentinels) _sentinels->free_dead_adapters();
}

// Outside hiredis callbacks (the answer came on a sentinel link): both master links leave the
// old master at once, without backoff; the publisher requeues what it did not answer.
void RedisBroker::relink_if_master_moved() {
  if (!_sentinels || !_sentinels->take_master_change()) return;
  const std::string reason = "the master moved to " + _ctx.master.describe();
  _publisher.link().reconnect_now(reason);
  _subscriber.link().reconnect_now(reason);
}

// mode: cluster: the map changed (from a hiredis callback or a MOVED): the publisher's pipes
// and the shard links follow it.
void RedisBroker::map_changed() {
  _publisher.map_changed();
  _cluster_subscriber->map_changed();
  update_ready();
}

void RedisBroker::update_ready() {
  const bool ready =
      _publisher.up() &&
      (_cluster_subscriber ? _cluster_subscriber->links_up() && _cluster_subscriber->resubscribed()
                           : _subscriber.link().up() && _subscriber.resubscribed());
  if (ready == _ready || _ctx.closing) return;
  _ready = ready;
  _ctx.host.set_ready(ready);
  _publisher.set_ready(ready);  // flushes what was buffered once both links are back
}

void RedisBroker::link_connected(RedisLink& link) {
  if (_publisher.owns(link)) _presence.on_connected(link);  // after the publisher's scripts
}

void RedisBroker::link_up(RedisLink& link) {
  if (_publisher.owns(link)) {
    _ctx.count.pub_up = _publisher.up();
    _presence.on_up();
  } else {
    _ctx.count.sub_up = 1;
    _subscriber.on_up();
  }
  update_ready();
}

void RedisBroker::link_down(RedisLink& link, bool refused, const std::string& reason) {
  if (_sentinels) _sentinels->ask_now();  // the master may have moved
  if (_publisher.owns(link)) {
    _ctx.count.pub_up = 0;  // the publisher requeued what the link did not answer
    _subscriber.publisher_down();
  } else {
    _ctx.count.sub_up = 0;
    _subscriber.on_down(refused, reason);
  }
  update_ready();
}

}  // namespace flowrelay::redis
