#include "event_batcher.h"

#include <chrono>

#include "backend_messages.h"

namespace flowrelay {

namespace {

std::string_view view(flowrelay_str s) { return {s.ptr ? s.ptr : "", s.len}; }

}  // namespace

EventBatcher::EventBatcher(BackendPool& pool, BackendMetrics& metrics,
                           std::shared_ptr<const BackendUrl> url, std::string node_hex,
                           uint32_t batch_ms)
    : _pool(pool),
      _metrics(metrics),
      _url(std::move(url)),
      _node_hex(std::move(node_hex)),
      _batch_ms(batch_ms),
      _thread([this] { run(); }) {}

void EventBatcher::add(bool joined, const flowrelay_client_info& client) {
  using namespace std::chrono;
  const int64_t now_ms =
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  std::string event =
      event_json(joined, view(client.conversation),
                 _node_hex + "-" + std::to_string(client.session), view(client.user), now_ms);
  std::lock_guard lock(_mutex);
  if (_events.size() >= kMaxBuffered) {
    _metrics.events_dropped(1);
    return;
  }
  _events.push_back(std::move(event));
}

void EventBatcher::stop() {
  {
    std::lock_guard lock(_mutex);
    if (_stopping) return;
    _stopping = true;
  }
  _wake.notify_all();
  if (_thread.joinable()) _thread.join();
}

void EventBatcher::run() {
  std::unique_lock lock(_mutex);
  while (!_stopping) {
    _wake.wait_for(lock, std::chrono::milliseconds(_batch_ms), [&] { return _stopping; });
    if (_stopping) break;
    lock.unlock();
    flush();
    lock.lock();
  }
}

void EventBatcher::flush() {
  std::string body;
  size_t count = 0;
  {
    std::lock_guard lock(_mutex);
    if (_in_flight || _events.empty()) return;
    count = std::min(_events.size(), kMaxPerBatch);
    body = "{\"events\":[";
    for (size_t i = 0; i < count; ++i) {
      if (i) body += ',';
      body += _events[i];
    }
    body += "]}";
    _events.erase(_events.begin(), _events.begin() + static_cast<std::ptrdiff_t>(count));
    _in_flight = true;
  }
  _pool.post(_url, std::move(body),
             [this, count](BackendAnswer&& a) { sent(count, std::move(a)); });
}

void EventBatcher::sent(size_t count, BackendAnswer&& a) {
  using F = BackendAnswer::Failure;
  if (a.seconds > 0) _metrics.observe(BackendEndpoint::Events, a.seconds);
  const BackendOutcome outcome = delivery_outcome(a);
  _metrics.count(BackendEndpoint::Events, outcome);
  const bool ok = outcome == BackendOutcome::Ok;
  if (!ok) _metrics.events_dropped(count);
  bool more = false;
  bool changed = false;
  {
    std::lock_guard lock(_mutex);
    _in_flight = false;
    changed = _failing == ok;
    _failing = !ok;
    more = ok && _events.size() >= kMaxPerBatch && !_stopping;
  }
  if (changed && !ok)
    _log.warning("backend.events_url " + _url->text + ": " + std::to_string(count) +
                 " join/leave events dropped (" +
                 (a.failure != F::None ? a.error : "HTTP " + std::to_string(a.status)) +
                 "); further failures are only counted until it answers again");
  else if (changed)
    _log.notice("backend.events_url " + _url->text + " answers again");
  if (more) flush();  // a backlog goes out batch after batch, not one per tick
}

}  // namespace flowrelay
