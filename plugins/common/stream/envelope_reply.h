// Reply streams in envelope mode (docs/PROTOCOL.md "Reply streams"): the server frames of a
// reply's steps (open, delta, end, snapshot, reply, stalled), the merged delta that replaces
// queued deltas of a client that falls behind, and the producer's client frames (open, delta,
// end, cancel).
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "shared_frame.h"  // DeltaLayout

namespace Poco::JSON {
class Object;
}

namespace flowrelay::stream {

// The envelope frame of a reply step `r` (any kind but MESSAGE) at `offset` of `epoch`
// (offset left out when 0, epoch when empty), `data` valid UTF-8 (DELTA, SNAPSHOT, REPLY).
// The id, reason and error are repaired to valid UTF-8 if a broker handed anything else. For a
// DELTA, `layout` (when not null) receives where its parts lie in the returned text.
std::string envelope_reply(const flowrelay_reply& r, uint64_t offset, std::string_view epoch,
                           std::string_view data, DeltaLayout* layout = nullptr);

// The frame type of a reply step's kind: "open", "delta", "end", "snapshot", "reply",
// "stalled" ("message" for anything else).
const char* reply_type_name(flowrelay_kind kind);

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

}  // namespace flowrelay::stream
