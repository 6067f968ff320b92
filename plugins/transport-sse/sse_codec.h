// transport-sse's protocol pieces, socket-free (unit tests and the fuzzer drive them): the
// request line and headers of a stream, a publish or a CORS preflight (docs/PROTOCOL.md "SSE
// and NDJSON"), and the bytes of the event stream (HTML Living Standard, "Server-sent events":
// events, comments, retry).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "access_policy.h"
#include "close_code.h"
#include "connection.h"
#include "resume_query.h"

namespace flowrelay::sse {

using namespace flowrelay::stream;

enum class RequestKind : uint8_t { Stream, Publish, Preflight };
enum class BodyType : uint8_t { Text, Json };

// The resume fields (resume, since, epoch: ?since= or Last-Event-ID) are the stream library's.
struct SseRequest : ResumeParams {
  int status = 0;        // 0: serve it; else the HTTP error to answer (`response` holds it)
  std::string response;  // the complete error response
  RequestKind kind = RequestKind::Stream;
  std::string conversation;
  bool ndjson = false;      // Stream: NDJSON lines instead of SSE events
  bool can_publish = true;  // what the access policy granted
  // For the backend (connect proxy, publish proxy): the verified token's claims (a JSON object,
  // "" without a token) and the request's Cookie and Authorization headers.
  std::string user, cookie, authorization;
  std::string cors;  // CORS response header lines (each ending CRLF) for an allowed Origin
  uint64_t content_length = 0;  // Publish: the body that follows the head
  BodyType body_type = BodyType::Text;
  bool keep_alive = true;  // Publish/Preflight: the connection serves another request after
};

// `head` holds the request line and headers through the blank line; `path_prefix` is e.g.
// "/sse/", the id after it 1..max_id_length chars of [A-Za-z0-9_.:-]; a body longer than
// `max_body` is 413. `policy` (may be null) checks Origin and the token: 401/403.
SseRequest parse_request(std::string_view head, std::string_view path_prefix, size_t max_id_length,
                         uint64_t max_body, const AccessPolicy* policy);

// A complete response with a body (Content-Length), `extra_headers` (lines ending CRLF) added.
std::string response(int status, std::string_view content_type, std::string_view body,
                     bool keep_alive, std::string_view extra_headers);

// A Last-Event-ID we gave ("{epoch}:{offset}"): false if `id` is not one.
bool parse_event_id(std::string_view id, std::string& epoch, uint64_t& offset);
// "{epoch}:{offset}", or "" for offset 0 (not in history: the event carries no id).
std::string event_id(std::string_view epoch, uint64_t offset);

// Appends one event: `id:` when given, `event:` when `type` is not empty, one `data:` line per
// line of `data` (split on CRLF, CR or LF, so the reader's data is `data` with LF line ends),
// and the blank line that dispatches it.
void append_event(std::string& out, std::string_view id, std::string_view type,
                  std::string_view data);

// The event of a live message or reply step (`reply` null or MESSAGE: a plain message): the
// text as `data` (event `log` on the log lane), a reply step's envelope JSON as `data` of an
// event named after its kind (open, delta, end, stalled, ...).
std::string live_event(flowrelay_lane lane, const flowrelay_reply* reply, uint64_t offset,
                       std::string_view epoch, std::string_view data);
// A resume's history entry as an SSE event (as live_event) or an NDJSON line.
std::string history_event(const HistoryResult::Entry& e, std::string_view epoch, bool ndjson);

// The 200 head of a stream (then `retry:` for SSE).
std::string stream_head(bool ndjson, std::string_view cors, uint32_t retry_ms);
// The last thing a stream says before the server closes it (close_code.h codes).
std::string close_event(bool ndjson, uint16_t code, std::string_view reason);
// After a resume's replay: where the client stands now (with its id, so that a reconnect
// resumes from there).
std::string resumed_event(bool ndjson, bool recovered, uint64_t offset, std::string_view epoch);
// Said on a silent stream, so proxies and clients see it alive.
std::string_view heartbeat(bool ndjson);

}  // namespace flowrelay::sse
