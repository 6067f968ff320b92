#include "gap_read.h"

#include <algorithm>
#include <memory>

namespace flowrelay::redis {

namespace {

// The context of one read, owned by the request until its completion runs.
struct GapRead {
  const RedisContext* ctx;
  GapFill* gaps;
  std::string channel;
  uint64_t id;
};

// Called exactly once per read: answered, or failed by the publisher's abandon() at destroy
// (then nothing is delivered).
void gap_read_cb(void* ctx, flowrelay_status status, const flowrelay_history* h) {
  std::unique_ptr<GapRead> read(static_cast<GapRead*>(ctx));
  if (!read->ctx->closing) read->gaps->answered(read->channel, read->id, status, h);
}

}  // namespace

std::optional<PublisherRequest> gap_read_request(const RedisContext& ctx, GapFill& gaps,
                                                 const std::string& channel, bool resubscribed,
                                                 int64_t now, int64_t& deadline_ms) {
  if (ctx.live.history_size.load() == 0) return std::nullopt;  // Pub/Sub as it always was
  // Long enough for the publisher link to reconnect once (the read waits for it).
  const auto& live = ctx.live;
  const int64_t deadline = now + live.command_timeout_ms.load() + live.connect_timeout_ms.load() +
                           live.reconnect_max_ms.load();
  auto read = gaps.confirmed(channel, resubscribed, deadline);
  if (!read) return std::nullopt;
  deadline_ms = std::min(deadline_ms, deadline);
  PublisherRequest r;
  r.kind = PublisherRequest::Kind::History;
  r.internal = true;
  r.since = read->since;
  if (read->since != GapFill::kFloorSince) {
    r.floor_epoch = std::move(read->floor_epoch);
    r.floor_offset = read->since;
  }
  r.read = gap_read_cb;
  r.ctx = new GapRead{&ctx, &gaps, read->channel, read->id};
  r.channel = std::move(read->channel);
  return r;
}

}  // namespace flowrelay::redis
