// The publish API's reply steps (docs/PROTOCOL.md, "Reply streams"): what a body item with
// "reply" must hold, how it goes to the broker, and how its outcome is answered.
//   {"conversation":"42","reply":"r17","open":true}
//   {"conversation":"42","reply":"r17","seq":1,"delta":"The "}
//   {"conversation":"42","reply":"r17","end":true}   (+ "error":"text": reason error)
// 200 {"offset":N,"epoch":"E"} (+ "duplicate":true); 409 with expected_seq or ended; 413; 501.
#pragma once

#include <flowrelay/plugin.h>

#include <Poco/JSON/Object.h>

#include <string>

#include "publish_request.h"

namespace flowrelay {

class Router;

namespace publish {

// Fills r.reply (and r.data: a delta's text) from an item that has "reply". Throws BadRequest:
// a bad reply id, not exactly one of open/delta/end, seq missing or not a positive integer,
// delta or error not a string, lane or data given with a reply.
void parse_reply_step(const Poco::JSON::Object& item, const std::string& where, Request& r);

// Hands the step to the broker; `done(ctx, result)` exactly once when it returns OK or PENDING
// (maybe before it returns). Other returns: nothing was queued.
using StepDone = void (*)(void* ctx, const Result& result);
flowrelay_status publish_reply_step(Router& router, const Request& r, StepDone done, void* ctx);

// A stored (or duplicate) step's entry in the answer.
Poco::JSON::Object reply_result_json(const Result& result);

// An answer for a failed step: its HTTP status, and the error body's fields.
int reply_error_status(flowrelay_status status);
void reply_error_fields(const Request& r, const Result& result, Poco::JSON::Object& body);

}  // namespace publish
}  // namespace flowrelay
