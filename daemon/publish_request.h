// The publish API's items as parsed from a request body, and what the broker made of each:
// shared by the message path (publish_api.cpp) and the reply steps (replies/reply_api.cpp).
#pragma once

#include <flowrelay/plugin.h>

#include <Poco/JSON/Object.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "publish_api.h"

namespace flowrelay::publish {

// A body the API answers 400.
class BadRequest : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One step of a reply stream (the item has "reply").
struct ReplyStep {
  std::string id;  // empty: the item is a plain message
  flowrelay_kind kind = FLOWRELAY_KIND_MESSAGE;
  uint64_t seq = 0;    // DELTA
  std::string reason;  // END: done or error
  std::string error;   // END with reason error: the producer's words
};

struct Request {
  std::string conversation;
  std::string channel;
  flowrelay_lane lane = FLOWRELAY_LANE_MESSAGE;
  std::string data;  // a message's text, a delta's text
  ReplyStep reply;
  bool is_reply() const { return !reply.id.empty(); }
};

struct Result {
  bool done = false;
  flowrelay_status status = FLOWRELAY_OK;
  uint64_t offset = 0;
  std::string epoch;
  // Reply steps only.
  bool duplicate = false;
  uint64_t expected_seq = 0;  // ECONFLICT: the seq the reply expects (0: it ended)
  std::string ended;          // ECONFLICT on an ended reply: how it ended
};

// A string field of `o` ("where: missing ..." / "... must be a string" when wrong).
std::string string_field(const Poco::JSON::Object& o, const std::string& name,
                         const std::string& where, bool required, const std::string& fallback = {});

// The body as requests: one object, or {"messages":[...]} (`batch` says which). Throws
// BadRequest.
std::vector<Request> parse_body(const std::string& body, const PublishApiOptions& options,
                                bool& batch);

}  // namespace flowrelay::publish
