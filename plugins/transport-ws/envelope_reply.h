// Reply streams in envelope mode (docs/PROTOCOL.md "Reply streams"): the server frames of a
// reply's steps (open, delta, end, snapshot, reply, stalled), the merged delta that replaces
// queued deltas of a client that falls behind, and the producer's client frames (open, delta,
// end, cancel).
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "shared_frame.h"

namespace Poco::JSON {
class Object;
}

namespace flowrelay::ws {

// The envelope frame of a reply step `r` (any kind but MESSAGE) at `offset` of `epoch`
// (offset left out when 0, epoch when empty), `data` valid UTF-8 (DELTA, SNAPSHOT, REPLY).
// The id, reason and error are repaired to valid UTF-8 if a broker handed anything else. For a
// DELTA, `layout` (when not null) receives where its parts lie in the returned text.
std::string envelope_reply(const flowrelay_reply& r, uint64_t offset, std::string_view epoch,
                           std::string_view data, DeltaLayout* layout = nullptr);

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

// A producer's step, from {"type":"open"|"delta"|"end"|"cancel","reply":"r17",...}.
struct ClientReplyStep {
  flowrelay_kind kind = FLOWRELAY_KIND_DELTA;  // OPEN, DELTA or END (cancel: END)
  bool cancel = false;                         // END with reason "cancelled"
  std::string reply;                           // the reply id
  uint64_t seq = 0;                            // DELTA: 1, 2, ...
  bool has_error = false;                      // END with "error": reason "error"
  std::string error;
};
// Parses the fields of a reply frame whose type is `type` (data goes to `data`); false with
// the reason of the 400 otherwise.
bool parse_reply_step(const Poco::JSON::Object& obj, const std::string& type, ClientReplyStep& out,
                      std::string& data, std::string& error);
// True for the types parse_reply_step takes.
bool is_reply_type(std::string_view type);

}  // namespace flowrelay::ws
