// The history reads of the gap fill (gap_fill.h), shared by both subscribers: the plain one
// (subscriber.h) and mode: cluster's (cluster_subscriber.h). Each confirmed (re)subscribe may
// need one; it goes to the publisher as an internal History request (push_internal), and its
// answer comes back to the subscriber's GapFill. Only building the request lives here: where
// it is sent is the caller's (one publisher link, or the slot's master in cluster mode).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "gap_fill.h"
#include "publisher_request.h"
#include "redis_context.h"

namespace flowrelay::redis {

// [broker thread] Redis confirmed the (S)SUBSCRIBE of `channel` (`resubscribed`: after a
// reconnect or a move). Returns the read to hand to the publisher now, so that Redis runs it
// after that subscribe and history holds everything live delivery missed; nullopt when none
// is needed (no history, or GapFill needs no read). `deadline_ms` is lowered to the read's
// deadline. The request's completion hands the answer to `gaps` exactly once, unless
// ctx.closing: both must outlive the publisher's abandon() at destroy.
std::optional<PublisherRequest> gap_read_request(const RedisContext& ctx, GapFill& gaps,
                                                 const std::string& channel, bool resubscribed,
                                                 int64_t now, int64_t& deadline_ms);

}  // namespace flowrelay::redis
