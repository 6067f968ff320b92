// The subscriber's side of the gap fill (gap_fill.h): the history reads it asks for, sent on
// the publisher link like any read, and their answers handed back to it.
#include <memory>

#include "subscriber.h"

namespace flowrelay::redis {

struct Subscriber::GapRead {
  Subscriber* subscriber;
  std::string channel;
  uint64_t id;
};

// [broker thread] Redis confirmed the SUBSCRIBE of `channel`. The read is queued now, so that
// Redis runs it after that SUBSCRIBE: history then holds everything live delivery missed.
void Subscriber::read_gap(const std::string& channel, bool resubscribed, int64_t now) {
  if (_ctx.live.history_size.load() == 0) return;  // without history: Pub/Sub as it always was
  // Long enough for the publisher link to reconnect once (the read waits for it).
  const auto& live = _ctx.live;
  const int64_t deadline = now + live.command_timeout_ms.load() + live.connect_timeout_ms.load() +
                           live.reconnect_max_ms.load();
  auto read = _gaps.confirmed(channel, resubscribed, deadline);
  if (!read) return;
  _gap_deadline_ms = std::min(_gap_deadline_ms, deadline);
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::History;
  r.internal = true;
  r.since = read->since;
  if (read->since != GapFill::kFloorSince) {
    r.floor_epoch = std::move(read->floor_epoch);
    r.floor_offset = read->since;
  }
  r.read = gap_read_cb;
  r.ctx = new GapRead{this, read->channel, read->id};
  r.channel = std::move(read->channel);
  _publisher.push_internal(std::move(r));  // sent once both links are up and ready
}

// Called exactly once per read: answered, or failed by destroy() (then nothing is delivered).
void Subscriber::gap_read_cb(void* ctx, flowrelay_status status, const flowrelay_history* h) {
  std::unique_ptr<GapRead> read(static_cast<GapRead*>(ctx));
  Subscriber& self = *read->subscriber;
  if (!self._ctx.closing) self._gaps.answered(read->channel, read->id, status, h);
}

}  // namespace flowrelay::redis
