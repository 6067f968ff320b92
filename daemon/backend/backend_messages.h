// The backend proxy's wire contract (docs/PROTOCOL.md, "Backend proxy"): the JSON bodies the
// daemon POSTs and what it makes of the answers.
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "backend_metrics.h"
#include "backend_pool.h"

namespace flowrelay {

// `client`: "<node hex>-<session>".
std::string publish_request_body(std::string_view conversation, flowrelay_lane lane,
                                 std::string_view data, std::string_view user_json,
                                 std::string_view client, std::string_view remote_addr);
// A client stopped a reply (publish_url gets it as {"type":"cancel",...}).
std::string cancel_event_body(std::string_view conversation, std::string_view reply,
                              std::string_view user_json, std::string_view client,
                              std::string_view remote_addr);
std::string connect_request_body(const flowrelay_connect_request& request);
// One element of the events body's "events" array.
std::string event_json(bool joined, std::string_view conversation, std::string_view client,
                       std::string_view user_json, int64_t time_ms);

// How a one-way request (events, cancel) fared: Ok for a 2xx, whatever the body.
BackendOutcome delivery_outcome(const BackendAnswer& answer);

// The publish proxy's reading of an answer.
struct PublishVerdict {
  BackendOutcome outcome = BackendOutcome::Ok;  // Ok / Rewritten: publish; Private: do not
  uint32_t code = 0;                            // when refused or failed: 4xx or 503
  std::string reason;
  std::string data;  // Rewritten: what to publish
  bool publish() const {
    return outcome == BackendOutcome::Ok || outcome == BackendOutcome::Rewritten;
  }
};
PublishVerdict judge_publish_answer(const BackendAnswer& answer);

// The connect proxy's reading of an answer.
struct ConnectVerdict {
  BackendOutcome outcome = BackendOutcome::Ok;
  uint32_t code = 200;  // 200 admit, 401/403 refused, 503 failed
  bool can_publish = true;
  std::string user;  // JSON object, "" for null
  std::string reason;
};
ConnectVerdict judge_connect_answer(const BackendAnswer& answer);

}  // namespace flowrelay
