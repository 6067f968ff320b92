#include "publisher.h"

#include <Poco/DigestEngine.h>
#include <Poco/SHA1Engine.h>

#include <algorithm>
#include <utility>

#include "history_scripts.h"
#include "reply_scripts.h"

namespace flowrelay::redis {

namespace {

// SCRIPT LOAD answers with this too; knowing it up front lets EVALSHA follow in the same write.
std::string sha1_hex(const std::string& text) {
  Poco::SHA1Engine sha1;
  sha1.update(text);
  return Poco::DigestEngine::digestToHex(sha1.digest());
}

}  // namespace

PublisherPipe::PublisherPipe(RedisContext& ctx, LinkEvents& events)
    : endpoint(ctx.master), link(ctx, events, "publisher", "flowrelay-pub", true) {}

PublisherPipe::PublisherPipe(RedisContext& ctx, LinkEvents& events, RedisEndpoint master)
    : endpoint(std::move(master)), link(ctx, events, "publisher", "flowrelay-pub", endpoint) {}

Publisher::Publisher(RedisContext& ctx, LinkEvents& events, WakeFn wake, void* owner,
                     SlotRoutes* cluster)
    : _ctx(ctx),
      _events(events),
      _cluster(cluster),
      _append_lua(cluster ? sharded_pubsub(append_script()) : append_script()),
      _history_lua(history_script()),
      _reply_lua(cluster ? sharded_pubsub(reply_script()) : reply_script()),
      _scripts{sha1_hex(_append_lua), sha1_hex(_history_lua), sha1_hex(_reply_lua),
               cluster != nullptr},
      _wake(wake),
      _owner(owner) {
  if (cluster) return;  // a pipe per master, once the map is known (map_changed())
  _pipes.push_back(std::make_unique<PublisherPipe>(ctx, static_cast<LinkEvents&>(*this)));
  _pipes.back()->owner = this;
}

Publisher::~Publisher() = default;

// ---------------------------------------------------------------------------- any thread

flowrelay_status Publisher::enqueue(PublisherRequest&& r) {
  const uint64_t size = r.bytes();
  if (r.kind != PublisherRequest::Kind::History) r.origin.node = _ctx.host.node_id();
  bool first = false;
  {
    std::lock_guard lock(_mutex);
    // Checked and counted under the lock: concurrent publishers cannot pass the bound together,
    // and the count is up before the broker thread can take the request and complete it.
    if (buffered_messages() >= _ctx.live.buffer_max_messages.load() ||
        buffered_bytes() + size > _ctx.live.buffer_max_bytes.load()) {
      _ctx.count.add(_ctx.count.buffer_full);
      return FLOWRELAY_EAGAIN;  // the caller tells its client (close 1013): never silent loss
    }
    _buffered_messages.fetch_add(1, std::memory_order_relaxed);
    _buffered_bytes.fetch_add(size, std::memory_order_relaxed);
    // Numbered in outbox order, which is the order of the writes to Redis and of any resend:
    // what makes "seq <= last seen from this node" mean a resend (history_scripts.h).
    if (r.kind == PublisherRequest::Kind::Publish) r.origin.seq = ++_next_seq;
    _outbox.push_back(std::move(r));
    if (!_wake_pending) first = _wake_pending = true;
  }
  if (first) _wake(_owner);
  return FLOWRELAY_OK;
}

// ---------------------------------------------------------------------------- broker thread

void Publisher::push_internal(PublisherRequest&& r) {
  r.order = ++_next_order;
  if (_cluster) r.slot = key_slot(r.channel);
  _pending.push_back(std::move(r));
}

void Publisher::take_outbox() {
  std::vector<PublisherRequest> outbox;
  {
    std::lock_guard lock(_mutex);
    outbox.swap(_outbox);
    _wake_pending = false;
  }
  for (auto& r : outbox) push_internal(std::move(r));
}

void Publisher::set_ready(bool ready) {
  _ready = ready;
  send_pending();
}

void Publisher::send_pending() {
  // Held until this node has resubscribed too: a message published before its own SUBSCRIBE
  // is back would never reach this node's sessions (the sender's echo included). Held while
  // the scripts are reloaded, so that what is resent keeps its place in the order.
  if (!_ready || _pending.empty()) return;
  const bool wait = _ctx.live.wait_replicas.load() > 0;
  if (!_cluster) {
    // Everything queued is appended to hiredis' output buffer and leaves in one write.
    PublisherPipe& pipe = *_pipes.front();
    if (!pipe.writable()) return;
    bool stored = false;
    while (!_pending.empty()) {
      if (!write(pipe, _pending.front(), wait)) return;  // going down: it stays pending
      stored = stored || pipe.inflight.back().awaits_wait;
      _pending.pop_front();
    }
    if (stored) write_wait(pipe);
    return;
  }
  // Cluster: each request to its slot's master; one that cannot go holds the rest of its
  // slot behind it (its order), not the others. Not reentered: a new master's link failing at
  // once (route() connects it) reports link_down, which may ask for readiness again.
  if (_sending) return;
  _sending = true;
  const int64_t now = monotonic_ms();
  _next_retry_ms = INT64_MAX;
  std::deque<PublisherRequest> held;
  std::vector<uint16_t> held_slots;
  std::vector<PublisherPipe*> stored;
  while (!_pending.empty()) {
    PublisherRequest& r = _pending.front();
    const bool behind = std::find(held_slots.begin(), held_slots.end(), r.slot) != held_slots.end();
    PublisherPipe* pipe = behind ? nullptr : route(r, now);
    if (pipe && write(*pipe, r, wait)) {
      if (pipe->inflight.back().awaits_wait &&
          std::find(stored.begin(), stored.end(), pipe) == stored.end())
        stored.push_back(pipe);
    } else {
      if (!behind) held_slots.push_back(r.slot);
      held.push_back(std::move(r));
    }
    _pending.pop_front();
  }
  _pending.swap(held);
  for (PublisherPipe* pipe : stored) write_wait(*pipe);
  _sending = false;
}

bool Publisher::write(PublisherPipe& pipe, PublisherRequest& r, bool wait) {
  if (r.kind != PublisherRequest::Kind::History) {
    // Looked up when written, not when queued: the newest acknowledgement counts.
    const ChannelFloors::Floor* floor = _floors.find(r.channel);
    r.floor_epoch = floor ? floor->epoch : std::string();
    r.floor_offset = floor ? floor->offset : 0;
  }
  const HistoryBounds bounds{_ctx.live.history_size.load(), _ctx.live.history_max_age_ms.load(),
                             _ctx.live.history_max_bytes.load()};
  redisAsyncContext* ac = pipe.link.context();
  // ASK: this one command goes to the slot's importing master, after ASKING (its +OK is
  // discarded: no callback).
  if (r.ask && redisAsyncCommand(ac, nullptr, nullptr, "ASKING") != REDIS_OK) return false;
  if (r.write(ac, reply_cb, &pipe, _scripts, bounds) != REDIS_OK) return false;
  r.awaits_wait = wait && r.stores();
  if (pipe.inflight.empty()) pipe.progress_ms = monotonic_ms();
  if (_cluster) {
    SlotFlight& flight = _slot_flight[r.slot];
    flight.pipe = &pipe;
    ++flight.count;
  }
  pipe.inflight.push_back(std::move(r));
  return true;
}

// One WAIT per batch, not per write: it blocks this connection's pipeline until the replicas
// answer, and it covers every earlier write of the connection anyway.
void Publisher::write_wait(PublisherPipe& pipe) {
  if (redisAsyncCommand(pipe.link.context(), reply_cb, &pipe, "WAIT %u %u",
                        _ctx.live.wait_replicas.load(),
                        _ctx.live.wait_timeout_ms.load()) != REDIS_OK)
    return;  // going down: the batch is requeued unanswered
  PublisherRequest marker;
  marker.kind = PublisherRequest::Kind::Wait;
  marker.internal = true;
  pipe.inflight.push_back(std::move(marker));
}

void Publisher::connect() {
  for (auto& pipe : _pipes) pipe->link.connect();
}

int64_t Publisher::check(int64_t now) {
  if (now >= _next_sweep_ms) {
    const uint64_t max_age = _ctx.live.history_max_age_ms.load();
    _floors.sweep(now - static_cast<int64_t>(max_age));
    _next_sweep_ms = now + static_cast<int64_t>(std::clamp<uint64_t>(max_age / 4, 1000, 60000));
  }
  drop_idle_retired();
  // A WAIT may hold the pipeline for wait_timeout_ms on top of Redis' own answer.
  const uint32_t timeout =
      _ctx.live.command_timeout_ms.load() +
      (_ctx.live.wait_replicas.load() > 0 ? _ctx.live.wait_timeout_ms.load() : 0);
  int64_t next = _next_retry_ms;
  // By index: a link's events can create a pipe (cluster mode: the map names a new master).
  for (size_t i = 0; i < _pipes.size(); ++i) {
    PublisherPipe& pipe = *_pipes[i];
    next = std::min(next, pipe.link.check(now));
    if (!pipe.link.up() || pipe.inflight.empty()) continue;
    if (now - pipe.progress_ms <= timeout) {
      next = std::min(next, pipe.progress_ms + timeout + 1);
      continue;
    }
    pipe.link.drop("no reply from Redis within command_timeout_ms", false);
  }
  return next;
}

void Publisher::free_dead_adapters() {
  for (auto& pipe : _pipes) pipe->link.free_dead_adapters();
}

void Publisher::close() {
  for (auto& pipe : _pipes) pipe->link.close();
}

bool Publisher::owns(const RedisLink& link) const {
  return std::any_of(_pipes.begin(), _pipes.end(),
                     [&](const auto& pipe) { return &pipe->link == &link; });
}

PublisherPipe* Publisher::pipe_of(const RedisLink& link) {
  for (auto& pipe : _pipes)
    if (&pipe->link == &link) return pipe.get();
  return nullptr;
}

bool Publisher::up() const {
  if (!_cluster) return _pipes.front()->link.up();
  if (!_cluster->map() || _pipes.empty()) return false;
  return std::all_of(_pipes.begin(), _pipes.end(),
                     [](const auto& pipe) { return pipe->retired || pipe->link.up(); });
}

// The pipes' links: scripts first on connect (before any EVALSHA, hiredis keeps the order:
// Redis may have restarted without them); a lost link requeues what Redis did not answer.
void Publisher::link_connected(RedisLink& link) {
  if (PublisherPipe* pipe = pipe_of(link)) load_scripts(*pipe);
  _events.link_connected(link);
}

void Publisher::link_up(RedisLink& link) { _events.link_up(link); }

void Publisher::link_down(RedisLink& link, bool refused, const std::string& reason) {
  PublisherPipe* pipe = pipe_of(link);
  if (pipe) requeue_unanswered(*pipe);
  if (_cluster) _cluster->refresh();  // the master may be gone: who serves its slots now?
  if (!pipe || !pipe->retired) _events.link_down(link, refused, reason);
}

void Publisher::load_scripts(PublisherPipe& pipe) {
  for (const std::string* script : {&_append_lua, &_history_lua, &_reply_lua})
    redisAsyncCommand(pipe.link.context(), script_load_cb, &pipe, "SCRIPT LOAD %b", script->data(),
                      script->size());
}

void Publisher::script_load_cb(redisAsyncContext*, void* r, void* priv) {
  auto& pipe = *static_cast<PublisherPipe*>(priv);
  Publisher& self = *pipe.owner;
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || self._ctx.closing) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    // History cannot work, plain publishes still can: keep the link, fail what needs scripts.
    pipe.scripts_refused = true;
    self._ctx.report(FLOWRELAY_EINTERNAL,
                     "redis refused to load the history scripts: " + std::string(str_of(reply)));
    return;
  }
  pipe.scripts_refused = false;
  const std::string_view sha = str_of(reply);
  if (sha != self._scripts.append_sha && sha != self._scripts.history_sha &&
      sha != self._scripts.reply_sha)
    self._ctx.log(FLOWRELAY_LOG_ERROR,
                  "redis returned an unexpected SHA for a history script: " + std::string(sha));
}

void Publisher::abandon() {
  std::vector<PublisherRequest> outbox;
  {
    std::lock_guard lock(_mutex);
    outbox.swap(_outbox);
  }
  for (auto& pipe : _pipes) {
    // Answered by Redis, only their WAIT is missing: completed as answered.
    for (const auto& [request, copied] : pipe->awaiting_wait) request.complete(copied.get());
    for (auto* queue : {&pipe->retry, &pipe->inflight})
      for (const auto& request : *queue)
        if (request.kind != PublisherRequest::Kind::Wait) request.fail(FLOWRELAY_EUNAVAIL);
  }
  for (const auto& request : _pending) request.fail(FLOWRELAY_EUNAVAIL);
  for (const auto& request : outbox) request.fail(FLOWRELAY_EUNAVAIL);
}

}  // namespace flowrelay::redis
