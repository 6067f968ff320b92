// RedisBroker's side of the gap fill (gap_fill.h): the history reads it asks for, sent on the
// publisher link like any read, and their answers handed back to it.
#include <memory>

#include "redis_broker.h"

namespace flowrelay::redis {

struct RedisBroker::GapRead {
  RedisBroker* broker;
  std::string channel;
  uint64_t id;
};

// [broker thread] Redis confirmed the SUBSCRIBE of `channel`. The read is queued now, so that
// Redis runs it after that SUBSCRIBE: history then holds everything live delivery missed.
void RedisBroker::read_gap(const std::string& channel, bool resubscribed, int64_t now) {
  if (_live.history_size.load() == 0) return;  // without history: Pub/Sub as it always was
  // Long enough for the publisher link to reconnect once (the read waits for it).
  const int64_t deadline = now + _live.command_timeout_ms.load() + _live.connect_timeout_ms.load() +
                           _live.reconnect_max_ms.load();
  auto read = _gaps.confirmed(channel, resubscribed, deadline);
  if (!read) return;
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::History;
  r.internal = true;
  r.since = read->since;
  r.read = gap_read_cb;
  r.ctx = new GapRead{this, read->channel, read->id};
  r.channel = std::move(read->channel);
  _pending.push_back(std::move(r));  // sent by the loop once both links are up and ready
}

// Called exactly once per read: answered, or failed by destroy() (then nothing is delivered).
void RedisBroker::gap_read_cb(void* ctx, flowrelay_status status, const flowrelay_history* h) {
  std::unique_ptr<GapRead> read(static_cast<GapRead*>(ctx));
  RedisBroker& self = *read->broker;
  if (!self._closing) self._gaps.answered(read->channel, read->id, status, h);
}

}  // namespace flowrelay::redis
