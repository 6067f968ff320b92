// The WebSocket DELTA frames of reply streams, and merging them under backpressure: a slow
// envelope client's queued, unsent deltas of one reply become one frame (docs/PROTOCOL.md).
#pragma once

#include "envelope_reply.h"
#include "ws_frame.h"

namespace flowrelay::ws {

// A shared-frame DELTA of channel `channel`, tagged for merging (set_delta, set_position).
SharedFrame* delta_frame(std::string_view channel, const flowrelay_reply& r, uint64_t offset,
                         std::string_view epoch, std::string_view data);

// True if `next` continues `tail` (both DELTA frames of the same reply and epoch, next's seq
// right after tail's last) and the merged data would stay within kMaxMergedData.
bool can_merge(const SharedFrame& tail, const SharedFrame& next);
// One DELTA frame for both: data concatenated, "from" tail's first seq, seq and offset next's.
// Not shared (its session's own), no channel; keeps tail's creation time (its oldest data).
SharedFrame* merge_deltas(const SharedFrame& tail, const SharedFrame& next);
// A merged frame stops growing past this much data (JSON-escaped bytes): each merge copies
// the frame, so the bound keeps the copying per delta small while the overhead of one frame
// (~100 bytes) per 8 KiB of text stays negligible.
inline constexpr uint32_t kMaxMergedData = 8192;

}  // namespace flowrelay::ws
