#include "redis_broker.h"

#include <Poco/DigestEngine.h>
#include <Poco/SHA1Engine.h>
#include <hiredis/hiredis.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "history_scripts.h"
#include "wire_format.h"

namespace flowrelay::redis {

namespace {

constexpr size_t kSubscribeBatch = 512;  // channels per SUBSCRIBE when resubscribing
char kWakeTag;

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string_view str_of(const redisReply* r) { return {r->str, static_cast<size_t>(r->len)}; }
flowrelay_str view(std::string_view s) { return {s.data(), s.size()}; }

// SCRIPT LOAD answers with this too; knowing it up front lets EVALSHA follow in the same write.
std::string sha1_hex(const std::string& text) {
  Poco::SHA1Engine sha1;
  sha1.update(text);
  return Poco::DigestEngine::digestToHex(sha1.digest());
}

bool is_noscript(const redisReply* r) {
  return r->type == REDIS_REPLY_ERROR && str_of(r).starts_with("NOSCRIPT");
}

bool host_takes_messages(const flowrelay_broker_host_api* api) {
  return FLOWRELAY_HAS_SLOT(api, flowrelay_broker_host_api, deliver_message) &&
         api->abi_minor >= 2 && api->deliver_message;
}

}  // namespace

RedisBroker::RedisBroker(const flowrelay_broker_host_api* api, flowrelay_host* host,
                         RedisOptions options)
    : _api(api),
      _host(host),
      _deliver_message(host_takes_messages(api)),
      _options(std::move(options)),
      _scripts{sha1_hex(append_script()), sha1_hex(history_script())},
      _gaps({[this](std::string_view channel, const WireMessage& w) { deliver(channel, w); },
             [this](flowrelay_log_level level, const std::string& text) { log(level, text); }}) {
  _live.apply(_options);
  _pub.broker = _sub.broker = this;
  _pub.role = "publisher";
  _sub.role = "subscriber";
  std::random_device rd;
  char id[17];
  std::snprintf(id, sizeof id, "%08x%08x", rd(), rd());
  _heartbeat_channel = std::string("flowrelay:heartbeat:") + id;
}

RedisBroker::~RedisBroker() {
  if (_thread.joinable()) {
    {
      std::lock_guard lock(_mutex);
      _stop = true;
    }
    wake();
    _thread.join();
  }
  abandon_requests();
  if (_epoll_fd >= 0) close(_epoll_fd);
  if (_wake_fd >= 0) close(_wake_fd);
}

void RedisBroker::log(flowrelay_log_level level, const std::string& text) const {
  _api->log(_host, level, {text.data(), text.size()});
}

void RedisBroker::report(flowrelay_status code, const std::string& text) const {
  if (!_closing) _api->report_error(_host, code, {text.data(), text.size()});
}

bool RedisBroker::start(std::string& err) {
  _epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  _wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (_epoll_fd < 0 || _wake_fd < 0) {
    err = std::string("broker-redis: ") + std::strerror(errno);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &kWakeTag;
  epoll_ctl(_epoll_fd, EPOLL_CTL_ADD, _wake_fd, &ev);
  log(FLOWRELAY_LOG_INFO, "connecting to " + _options.endpoint.describe());
  _thread = std::thread([this] { run(); });
  return true;
}

// ---------------------------------------------------------------------------- any thread

flowrelay_status RedisBroker::publish(std::string_view channel, std::string_view payload) {
  flowrelay_message m{};
  m.struct_size = sizeof m;
  m.lane = FLOWRELAY_LANE_MESSAGE;
  m.data = view(payload);
  return publish_message(channel, m, nullptr, nullptr);
}

flowrelay_status RedisBroker::publish_message(std::string_view channel,
                                              const flowrelay_message& message,
                                              flowrelay_published_fn done, void* ctx) {
  if (!wire_lane(message.lane)) return FLOWRELAY_EUNSUPPORTED;  // no name on the wire
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::Publish;
  r.lane = message.lane;
  r.channel.assign(channel);
  r.data.assign(message.data.ptr, message.data.len);
  r.published = done;
  r.ctx = ctx;
  return enqueue(std::move(r));
}

flowrelay_status RedisBroker::history(std::string_view channel, uint64_t since,
                                      flowrelay_history_fn done, void* ctx) {
  if (_live.history_size.load() == 0) return FLOWRELAY_EUNSUPPORTED;
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::History;
  r.channel.assign(channel);
  r.since = since;
  r.read = done;
  r.ctx = ctx;
  return enqueue(std::move(r));
}

flowrelay_status RedisBroker::enqueue(PublisherRequest&& request) {
  const uint64_t size = request.bytes();
  if (_buffered_messages.load(std::memory_order_relaxed) >= _live.buffer_max_messages.load() ||
      _buffered_bytes.load(std::memory_order_relaxed) + size > _live.buffer_max_bytes.load()) {
    _count.buffer_full.fetch_add(1, std::memory_order_relaxed);
    return FLOWRELAY_EAGAIN;  // the caller tells its client (close 1013): never silent loss
  }
  bool first = false;
  {
    std::lock_guard lock(_mutex);
    _outbox.push_back(std::move(request));
    if (!_wake_pending) first = _wake_pending = true;
  }
  _buffered_messages.fetch_add(1, std::memory_order_relaxed);
  _buffered_bytes.fetch_add(size, std::memory_order_relaxed);
  if (first) wake();
  return FLOWRELAY_OK;
}

void RedisBroker::wake() {
  const uint64_t one = 1;
  ssize_t r = write(_wake_fd, &one, sizeof one);
  (void)r;
}

flowrelay_status RedisBroker::subscribe(std::string_view channel) {
  queue_op({true, std::string(channel)});
  return FLOWRELAY_PENDING;
}

flowrelay_status RedisBroker::unsubscribe(std::string_view channel) {
  queue_op({false, std::string(channel)});
  return FLOWRELAY_OK;
}

void RedisBroker::queue_op(Op&& op) {
  bool first = false;
  {
    std::lock_guard lock(_mutex);
    _ops.push_back(std::move(op));
    if (!_wake_pending) first = _wake_pending = true;
  }
  if (first) wake();
}

// ---------------------------------------------------------------------------- broker thread

void RedisBroker::run() {
  connect(_pub);
  connect(_sub);
  epoll_event events[16];
  for (;;) {
    const int n = epoll_wait(_epoll_fd, events, 16, next_wait_ms(now_ms()));
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == &kWakeTag) {
        uint64_t v;
        ssize_t r = read(_wake_fd, &v, sizeof v);
        (void)r;
      } else {
        static_cast<HiredisEpoll*>(events[i].data.ptr)->handle(events[i].events);
      }
    }
    {
      std::lock_guard lock(_mutex);
      if (_stop) break;
    }
    take_requests();
    send_pending();
    check_timers(now_ms());
    free_dead_adapters();
  }
  _closing = true;
  for (Link* link : {&_pub, &_sub})
    if (link->ac) redisAsyncFree(link->ac);  // runs the callbacks with no reply
  free_dead_adapters();
}

void RedisBroker::take_requests() {
  std::vector<PublisherRequest> outbox;
  std::vector<Op> ops;
  {
    std::lock_guard lock(_mutex);
    outbox.swap(_outbox);
    ops.swap(_ops);
    _wake_pending = false;
  }
  for (auto& m : outbox) _pending.push_back(std::move(m));
  // (Un)subscribes keep their order per channel; consecutive ones are sent in batches.
  std::vector<std::string> batch;
  bool batch_subscribe = true;
  auto flush = [&] {
    if (!batch.empty() && _sub.state == State::Up) send_subscription(batch_subscribe, batch);
    batch.clear();
  };
  for (auto& op : ops) {
    if (op.subscribe ? !_channels.insert(op.channel).second : !_channels.erase(op.channel)) {
      // Already (un)subscribed: only a subscribe needs an answer, and it is live already
      // unless a resubscription is still in flight.
      if (op.subscribe && _sub.state == State::Up && !_resubscribing.count(op.channel))
        _api->subscribed(_host, {op.channel.data(), op.channel.size()}, FLOWRELAY_OK);
      continue;
    }
    if (!op.subscribe) _resubscribing.erase(op.channel);
    op.subscribe ? _gaps.add(op.channel) : _gaps.remove(op.channel);
    if (op.subscribe != batch_subscribe) flush();
    batch_subscribe = op.subscribe;
    batch.push_back(std::move(op.channel));
  }
  flush();
}

void RedisBroker::send_subscription(bool subscribe, const std::vector<std::string>& channels) {
  for (size_t i = 0; i < channels.size(); i += kSubscribeBatch) {
    const size_t n = std::min(kSubscribeBatch, channels.size() - i);
    std::vector<const char*> argv{subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE"};
    std::vector<size_t> lens{std::strlen(argv[0])};
    for (size_t j = i; j < i + n; ++j) {
      argv.push_back(channels[j].data());
      lens.push_back(channels[j].size());
    }
    redisAsyncCommandArgv(_sub.ac, subscriber_cb, this, static_cast<int>(argv.size()), argv.data(),
                          lens.data());
  }
}

void RedisBroker::send_pending() {
  // Held until this node has resubscribed too: a message published before its own SUBSCRIBE
  // is back would never reach this node's sessions (the sender's echo included). Held while
  // the scripts are reloaded, so that what is resent keeps its place in the order.
  if (_pub.state != State::Up || !_ready || _reloading) return;
  const HistoryBounds bounds{_live.history_size.load(), _live.history_max_age_ms.load()};
  // Everything queued is appended to hiredis' output buffer and leaves in one write.
  while (!_pending.empty()) {
    if (_pending.front().write(_pub.ac, publisher_cb, this, _scripts, bounds) != REDIS_OK)
      return;  // the context is going down; the request stays pending
    if (_inflight.empty()) _pub.since_ms = now_ms();  // oldest unanswered command
    _inflight.push_back(std::move(_pending.front()));
    _pending.pop_front();
  }
}

void RedisBroker::load_scripts(Link& link) {
  for (const auto& [script, sha] : {std::pair{append_script(), &_scripts.append_sha},
                                    std::pair{history_script(), &_scripts.history_sha}})
    redisAsyncCommand(link.ac, script_load_cb, const_cast<std::string*>(sha), "SCRIPT LOAD %b",
                      script.data(), script.size());
}

void RedisBroker::script_load_cb(redisAsyncContext* ac, void* r, void* expected_sha) {
  auto& link = *static_cast<Link*>(ac->data);
  auto* reply = static_cast<redisReply*>(r);
  RedisBroker& self = *link.broker;
  if (!reply || self._closing) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    // History cannot work, plain publishes still can: keep the link, fail what needs scripts.
    self._scripts_refused = true;
    self.report(FLOWRELAY_EINTERNAL,
                "redis refused to load the history scripts: " + std::string(str_of(reply)));
    return;
  }
  self._scripts_refused = false;
  if (str_of(reply) != *static_cast<const std::string*>(expected_sha))
    self.log(FLOWRELAY_LOG_ERROR, "redis returned an unexpected SHA for a history script: " +
                                      std::string(str_of(reply)));
}

void RedisBroker::connect(Link& link) {
  const auto& ep = _options.endpoint;
  redisAsyncContext* ac = ep.unix_path.empty() ? redisAsyncConnect(ep.host.c_str(), ep.port)
                                               : redisAsyncConnectUnix(ep.unix_path.c_str());
  if (!ac || ac->err) {
    const std::string why = ac ? ac->errstr : "out of memory";
    if (ac) redisAsyncFree(ac);
    link.state = State::Connecting;  // so mark_down() counts and logs it
    mark_down(link, why);
    return;
  }
  ac->data = &link;
  link.ac = ac;
  link.adapter = HiredisEpoll::attach(_epoll_fd, ac);
  _adapters.push_back(link.adapter);
  redisAsyncSetConnectCallback(ac, connect_cb);
  redisAsyncSetDisconnectCallback(ac, disconnect_cb);
  link.state = State::Connecting;
  link.since_ms = now_ms();
}

void RedisBroker::connect_cb(const redisAsyncContext* ac, int status) {
  auto& link = *static_cast<Link*>(ac->data);
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback, without a disconnect callback.
    const std::string why = ac->errstr ? ac->errstr : "connect failed";
    link.ac = nullptr;
    link.broker->mark_down(link, why);
    return;
  }
  link.broker->on_connected(link);
}

void RedisBroker::on_connected(Link& link) {
  const auto& ep = _options.endpoint;
  link.state = State::Authenticating;
  link.since_ms = now_ms();
  // AUTH and SELECT go first; the link is Up once Redis accepted them (or a PING when there
  // is nothing to say), so a wrong password shows as an error, not as a silent hang.
  if (!ep.password.empty()) {
    if (ep.user.empty())
      redisAsyncCommand(link.ac, auth_cb, nullptr, "AUTH %b", ep.password.data(),
                        ep.password.size());
    else
      redisAsyncCommand(link.ac, auth_cb, nullptr, "AUTH %b %b", ep.user.data(), ep.user.size(),
                        ep.password.data(), ep.password.size());
  }
  if (ep.db != 0 && &link == &_pub)
    redisAsyncCommand(link.ac, auth_cb, nullptr, "SELECT %d", ep.db);
  // Named for CLIENT LIST (and for tests that cut one link). Refused when CLIENT is not
  // allowed (ACL, managed Redis): harmless, hence no callback.
  redisAsyncCommand(link.ac, nullptr, nullptr, "CLIENT SETNAME %s",
                    &link == &_pub ? "flowrelay-pub" : "flowrelay-sub");
  // Before any EVALSHA (hiredis keeps the order): Redis may have restarted without them.
  if (&link == &_pub) load_scripts(link);
  redisAsyncCommand(link.ac, auth_cb, reinterpret_cast<void*>(1), "PING");
}

void RedisBroker::auth_cb(redisAsyncContext* ac, void* r, void* last) {
  auto& link = *static_cast<Link*>(ac->data);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply) return;  // disconnected meanwhile; the disconnect callback handles it
  if (reply->type == REDIS_REPLY_ERROR) {
    const std::string why(str_of(reply));
    link.broker->report(FLOWRELAY_EUNAVAIL,
                        std::string("redis refused the ") + link.role + " connection: " + why);
    link.broker->drop(link, "redis said: " + why, true);
    return;
  }
  if (last && link.state == State::Authenticating) link.broker->on_up(link);
}

void RedisBroker::on_up(Link& link) {
  (&link == &_pub ? _count.pub_up : _count.sub_up) = 1;
  if (link.failures > 0) _count.reconnects.fetch_add(1, std::memory_order_relaxed);
  if (link.failures > 0)
    log(FLOWRELAY_LOG_NOTICE, std::string("redis ") + link.role + " connection restored (" +
                                  _options.endpoint.describe() + ")");
  else
    log(FLOWRELAY_LOG_INFO, std::string("redis ") + link.role + " connected");
  link.state = State::Up;
  link.failures = 0;
  link.backoff_ms = 0;
  link.since_ms = now_ms();
  link.ping_sent_ms = 0;
  link.next_ping_ms = now_ms() + _live.ping_interval_ms.load();
  if (&link == &_sub) resubscribe();
  update_ready();  // flushes what was buffered once both links are back
}

void RedisBroker::resubscribe() {
  send_subscription(true, {_heartbeat_channel});
  _resubscribing = _channels;
  if (_channels.empty()) return;
  std::vector<std::string> all(_channels.begin(), _channels.end());
  send_subscription(true, all);
}

void RedisBroker::disconnect_cb(const redisAsyncContext* ac, int status) {
  auto& link = *static_cast<Link*>(ac->data);
  link.ac = nullptr;  // hiredis frees it after this callback
  std::string why = !link.drop_reason.empty() ? link.drop_reason
                    : status == REDIS_OK      ? "connection closed"
                                              : (ac->errstr ? ac->errstr : "connection lost");
  link.broker->mark_down(link, why);
}

void RedisBroker::mark_down(Link& link, const std::string& reason) {
  const bool was_up = link.state == State::Up;
  (&link == &_pub ? _count.pub_up : _count.sub_up) = 0;
  link.ac = nullptr;
  link.state = State::Down;
  link.ping_sent_ms = 0;
  link.drop_reason.clear();
  if (&link == &_pub) {
    _sub.ping_sent_ms = 0;  // a heartbeat in flight on it is lost with it
    requeue_unanswered();
  }
  if (_closing) return;
  link.backoff_ms = link.backoff_ms == 0
                        ? _live.reconnect_min_ms.load()
                        : std::min(link.backoff_ms * 2, _live.reconnect_max_ms.load());
  link.retry_at_ms = now_ms() + link.backoff_ms;
  if (was_up || link.failures == 0) {
    // Logged once per outage, not per attempt.
    log(FLOWRELAY_LOG_WARNING,
        std::string("redis ") + link.role + " connection " + (was_up ? "lost" : "failed") + " (" +
            _options.endpoint.describe() + "): " + reason + "; reconnecting");
  }
  ++link.failures;
  update_ready();
}

void RedisBroker::drop(Link& link, const std::string& reason, bool in_callback) {
  if (!link.ac) return;
  link.drop_reason = reason;
  if (in_callback) {
    // hiredis disconnects once out of its callback (after the replies already asked for).
    redisAsyncDisconnect(link.ac);
    return;
  }
  // A hung Redis would never answer what a graceful disconnect waits for: free outright.
  // That runs the disconnect callback if the link was connected...
  redisAsyncContext* ac = link.ac;
  redisAsyncFree(ac);
  if (link.ac == ac) mark_down(link, reason);  // ...and nothing if it was still connecting
}

void RedisBroker::requeue_unanswered() {
  // Unanswered requests go back in front, in order (those refused with NOSCRIPT are the
  // oldest): Redis may have taken some before the link broke (at-least-once), none is dropped.
  // The scripts are loaded again on connect.
  for (auto* queue : {&_inflight, &_retry}) {
    while (!queue->empty()) {
      _pending.push_front(std::move(queue->back()));
      queue->pop_back();
    }
  }
  _reloading = false;
}

void RedisBroker::publisher_cb(redisAsyncContext*, void* r, void* priv) {
  auto* self = static_cast<RedisBroker*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || self->_inflight.empty()) return;  // link lost: requeued by mark_down()
  PublisherRequest request = std::move(self->_inflight.front());
  self->_inflight.pop_front();
  self->_pub.since_ms = now_ms();
  if (is_noscript(reply) && !self->_scripts_refused)
    self->retry_after_reload(std::move(request));
  else
    self->finish(request, reply);
  if (self->_reloading && self->_inflight.empty()) self->finish_reload();
}

void RedisBroker::finish(const PublisherRequest& request, const redisReply* reply) {
  if (request.internal) {
    request.complete(reply);  // a failure is the gap fill's to log
    return;
  }
  // Released first: a completion may publish again.
  _buffered_messages.fetch_sub(1, std::memory_order_relaxed);
  _buffered_bytes.fetch_sub(request.bytes(), std::memory_order_relaxed);
  const bool read = request.kind == PublisherRequest::Kind::History;
  if (request.complete(reply)) {
    (read ? _count.history_reads : _count.published).fetch_add(1, std::memory_order_relaxed);
    return;
  }
  _count.publish_errors.fetch_add(1, std::memory_order_relaxed);
  const std::string why =
      reply->type == REDIS_REPLY_ERROR ? std::string(str_of(reply)) : "unexpected reply";
  report(FLOWRELAY_EINTERNAL, std::string("redis rejected ") +
                                  (read ? "a history read of " : "a publish on ") +
                                  request.channel + ": " + why);
}

// Redis lost the scripts (SCRIPT FLUSH, or a failover to a replica that never had them).
// Everything sent before the reload is refused alike: collect it, then reload and resend it
// in its original order, ahead of what was never sent.
void RedisBroker::retry_after_reload(PublisherRequest&& request) {
  if (!_reloading) {
    _reloading = true;
    _count.script_reloads.fetch_add(1, std::memory_order_relaxed);
    report(FLOWRELAY_EINTERNAL,
           "redis lost the history scripts (NOSCRIPT): reloading them and "
           "resending what it refused");
  }
  _retry.push_back(std::move(request));
}

void RedisBroker::finish_reload() {
  while (!_retry.empty()) {
    _pending.push_front(std::move(_retry.back()));
    _retry.pop_back();
  }
  _reloading = false;
  load_scripts(_pub);
  send_pending();
}

// [destroy] Completes, in order, what Redis never answered: the broker thread is gone.
void RedisBroker::abandon_requests() {
  std::vector<PublisherRequest> outbox;
  {
    std::lock_guard lock(_mutex);
    outbox.swap(_outbox);
  }
  for (auto* queue : {&_retry, &_inflight, &_pending})
    for (const auto& request : *queue) request.fail(FLOWRELAY_EUNAVAIL);
  for (const auto& request : outbox) request.fail(FLOWRELAY_EUNAVAIL);
}

void RedisBroker::heartbeat_cb(redisAsyncContext*, void* r, void* priv) {
  auto* self = static_cast<RedisBroker*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (reply && reply->type == REDIS_REPLY_ERROR && !self->_closing)
    self->report(FLOWRELAY_EINTERNAL,
                 "redis refused the heartbeat PUBLISH: " + std::string(str_of(reply)));
}

void RedisBroker::subscriber_cb(redisAsyncContext*, void* r, void* priv) {
  auto* self = static_cast<RedisBroker*>(priv);
  auto* reply = static_cast<redisReply*>(r);
  if (!reply || self->_closing) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    self->report(FLOWRELAY_EINTERNAL, "redis subscriber error: " + std::string(str_of(reply)));
    return;
  }
  if (reply->type == REDIS_REPLY_STATUS) {  // PONG outside subscribed mode
    self->_sub.ping_sent_ms = 0;
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) return;
  const std::string_view kind = str_of(reply->element[0]);
  if (kind == "message" && reply->elements == 3) {
    const redisReply* ch = reply->element[1];
    if (str_of(ch) == self->_heartbeat_channel) {
      self->_sub.ping_sent_ms = 0;
      return;
    }
    self->_count.received.fetch_add(1, std::memory_order_relaxed);
    self->_gaps.live(str_of(ch), str_of(reply->element[2]), self->_live.buffer_max_bytes.load());
  } else if (kind == "subscribe") {
    const std::string channel(str_of(reply->element[1]));
    const bool was_resubscribing = self->_resubscribing.erase(channel) > 0;
    if (self->_channels.count(channel)) {
      self->_api->subscribed(self->_host, {channel.data(), channel.size()}, FLOWRELAY_OK);
      self->read_gap(channel, was_resubscribing, now_ms());
    }
    if (was_resubscribing && self->_resubscribing.empty()) self->update_ready();
  } else if (kind == "pong") {
    self->_sub.ping_sent_ms = 0;
  }
}

void RedisBroker::deliver(std::string_view channel, const WireMessage& wire) {
  if (_deliver_message) {
    flowrelay_message m{};
    m.struct_size = sizeof m;
    m.lane = wire.lane;
    m.offset = wire.offset;
    m.epoch = view(wire.epoch);
    m.data = view(wire.data);
    _api->deliver_message(_host, view(channel), &m);
  } else if (wire.lane == FLOWRELAY_LANE_MESSAGE) {
    // A host older than 1.2 knows no lanes: it would show a log line as a chat message.
    _api->deliver(_host, view(channel), view(wire.data));
  }
}

std::string RedisBroker::metrics() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, uint64_t value,
                    const std::string& labels = "{broker=\"redis\"}") {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + labels + " " + std::to_string(value) + "\n";
  };
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  out +=
      "# HELP flowrelay_redis_connected 1 while the link to Redis is up\n"
      "# TYPE flowrelay_redis_connected gauge\n";
  out += "flowrelay_redis_connected{link=\"publisher\"} " + std::to_string(_count.pub_up.load()) +
         "\nflowrelay_redis_connected{link=\"subscriber\"} " +
         std::to_string(_count.sub_up.load()) + "\n";
  metric("flowrelay_redis_reconnects_total", "counter", "Redis links re-established",
         get(_count.reconnects));
  metric("flowrelay_broker_published_total", "counter", "Publishes acknowledged by Redis",
         get(_count.published));
  metric("flowrelay_broker_publish_errors_total", "counter",
         "Publishes and history reads Redis refused (reported)", get(_count.publish_errors));
  metric("flowrelay_broker_buffer_full_total", "counter",
         "Publishes refused because the buffer was full (client got 1013)",
         get(_count.buffer_full));
  metric("flowrelay_broker_delivered_total", "counter", "Messages received from Redis",
         get(_count.received));
  metric("flowrelay_broker_history_reads_total", "counter", "History reads answered by Redis",
         get(_count.history_reads));
  metric("flowrelay_redis_script_reloads_total", "counter",
         "History scripts reloaded after Redis lost them (NOSCRIPT)", get(_count.script_reloads));
  metric("flowrelay_redis_gap_filled_total", "counter",
         "Messages Pub/Sub missed during a subscriber outage, delivered from history",
         _gaps.filled());
  metric("flowrelay_redis_gap_unrecovered_total", "counter",
         "Subscriber outage gaps not filled (per channel; the log says why)", _gaps.unrecovered());
  metric("flowrelay_redis_duplicates_skipped_total", "counter",
         "Messages received again with an offset already delivered", _gaps.duplicates());
  metric("flowrelay_broker_buffered_messages", "gauge",
         "Publishes (and history reads) accepted and not yet answered by Redis",
         get(_buffered_messages));
  metric("flowrelay_broker_buffered_bytes", "gauge", "Bytes of those publishes",
         get(_buffered_bytes));
  return out;
}

std::string RedisBroker::reconfigure(const RedisOptions& fresh) {
  _live.apply(fresh);
  const bool url_changed = fresh.endpoint.describe() != _options.endpoint.describe() ||
                           fresh.endpoint.password != _options.endpoint.password ||
                           fresh.endpoint.user != _options.endpoint.user;
  return url_changed ? "url" : "";
}

void RedisBroker::update_ready() {
  const bool ready = _pub.state == State::Up && _sub.state == State::Up && _resubscribing.empty();
  if (ready == _ready || _closing) return;
  _ready = ready;
  _api->set_ready(_host, ready ? 1 : 0);
  if (ready) send_pending();
}

void RedisBroker::check_timers(int64_t now) {
  _gap_deadline_ms = _gaps.expire(now, _live.history_size.load() == 0);
  for (Link* link : {&_pub, &_sub}) {
    switch (link->state) {
      case State::Down:
        if (now >= link->retry_at_ms) connect(*link);
        break;
      case State::Connecting:
      case State::Authenticating:
        if (now - link->since_ms > _live.connect_timeout_ms.load())
          drop(*link,
               "no answer within connect_timeout_ms (" +
                   std::to_string(_live.connect_timeout_ms.load()) + " ms)",
               false);
        break;
      case State::Up:
        if (link == &_pub && !_inflight.empty() &&
            now - _pub.since_ms > _live.command_timeout_ms.load()) {
          drop(*link, "no reply from Redis within command_timeout_ms", false);
        } else if (link == &_sub && link->ping_sent_ms &&
                   now - link->ping_sent_ms > _live.command_timeout_ms.load()) {
          drop(*link, "heartbeat not received within command_timeout_ms", false);
        } else if (link == &_sub && !link->ping_sent_ms && now >= link->next_ping_ms &&
                   _pub.state == State::Up) {
          // Liveness of the subscriber link: a heartbeat published on the publisher link
          // must come back on it. (A PING would do in plain mode, but hiredis 0.14 drops the
          // reply to a PING sent in subscribed mode, so its callback never runs.)
          link->ping_sent_ms = now;
          link->next_ping_ms = now + _live.ping_interval_ms.load();
          redisAsyncCommand(_pub.ac, heartbeat_cb, this, "PUBLISH %b %s", _heartbeat_channel.data(),
                            _heartbeat_channel.size(), "hb");
        }
        break;
    }
  }
}

int RedisBroker::next_wait_ms(int64_t now) const {
  int64_t next = now + 1000;
  for (const Link* link : {&_pub, &_sub}) {
    if (link->state == State::Down) next = std::min(next, link->retry_at_ms);
    if (link->state == State::Up && link == &_sub)
      next =
          std::min(next, link->ping_sent_ms ? link->ping_sent_ms + _live.command_timeout_ms.load()
                                            : link->next_ping_ms);
    if (link->state == State::Connecting || link->state == State::Authenticating)
      next = std::min<int64_t>(next, link->since_ms + _live.connect_timeout_ms.load() + 1);
  }
  if (!_inflight.empty())
    next = std::min<int64_t>(next, _pub.since_ms + _live.command_timeout_ms.load() + 1);
  next = std::min(next, _gap_deadline_ms);
  return static_cast<int>(std::clamp<int64_t>(next - now, 0, 1000));
}

void RedisBroker::free_dead_adapters() {
  auto dead = std::stable_partition(_adapters.begin(), _adapters.end(),
                                    [](HiredisEpoll* a) { return !a->dead(); });
  for (auto it = dead; it != _adapters.end(); ++it) delete *it;
  _adapters.erase(dead, _adapters.end());
}

}  // namespace flowrelay::redis
