#include "replies/reply_rules.h"

#include <flowrelay/plugin.hpp>

namespace flowrelay {

bool valid_reply_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char c : id)
    if (c < 0x21 || c > 0x7E) return false;
  return true;
}

std::string reply_step_problem(const flowrelay_reply& r, bool from_client) {
  if (r.struct_size < sizeof(flowrelay_reply)) return "reply info from an older ABI";
  if (!valid_reply_id(sdk::view(r.id)))
    return "reply id must be 1 to 64 printable ASCII characters without spaces";
  switch (r.kind) {
    case FLOWRELAY_KIND_OPEN:
      return {};
    case FLOWRELAY_KIND_DELTA:
      return r.seq >= 1 ? std::string() : "a delta's seq must be a positive integer";
    case FLOWRELAY_KIND_END: {
      const std::string_view reason = sdk::view(r.reason);
      if (reason == "done" || reason == "error" || (from_client && reason == "cancelled"))
        return {};
      return "an end's reason must be done or error" +
             std::string(from_client ? " (or cancelled)" : "") + ", got '" + std::string(reason) +
             "'";
    }
    default:
      return "a producer sends open, delta or end steps only (kind " + std::to_string(r.kind) + ")";
  }
}

}  // namespace flowrelay
