// A history entry (a resume's replay) as the envelope JSON every transport sends for it: a
// message frame, or a reply's SNAPSHOT / REPLY (or any other step) frame.
#pragma once

#include <string>
#include <string_view>

#include "connection.h"
#include "envelope.h"
#include "envelope_reply.h"

namespace flowrelay::stream {

inline std::string history_envelope(const HistoryResult::Entry& e, std::string_view epoch) {
  if (e.reply.kind == FLOWRELAY_KIND_MESSAGE)
    return envelope_message(e.lane, e.offset, epoch, e.data);
  const HistoryResult::Reply& r = e.reply;
  auto str = [](const std::string& s) { return flowrelay_str{s.data(), s.size()}; };
  const flowrelay_reply reply{sizeof reply, r.kind,    str(r.id),     r.seq,  str(r.reason),
                              str(r.error), r.ttft_ms, r.duration_ms, r.bytes};
  return envelope_reply(reply, e.offset, epoch, e.data);
}

}  // namespace flowrelay::stream
