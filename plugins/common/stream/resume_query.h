// The resume a client asks for in its request's query (?since=N&epoch=E, docs/PROTOCOL.md), read
// the same way by every transport: the WebSocket upgrade and the SSE stream refuse a malformed
// one with the same words.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace flowrelay::stream {

struct ResumeParams {
  bool resume = false;  // ?since=N given: replay history after N first
  uint64_t since = 0;
  std::string epoch;  // ?epoch=E (may be empty)
};

// A decimal offset, all of `text` (no sign, no spaces): false if it is not one.
bool parse_offset(std::string_view text, uint64_t& out);

// A query parameter other than since and epoch: "" if fine, else why the request is refused.
using QueryParameterCheck =
    std::function<std::string(const std::string& name, const std::string& value)>;

// Reads since and epoch from the query of `uri` (a request target) into `out`: "" if fine, else
// why the request is refused (400). `other`, when given, judges every other parameter in the
// order they come, so the first mistake in the query is the one reported whoever checks it.
std::string parse_resume_params(const std::string& uri, ResumeParams& out,
                                const QueryParameterCheck& other = {});

}  // namespace flowrelay::stream
