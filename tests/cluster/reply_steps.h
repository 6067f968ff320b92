// Reply streams for the cluster tests (docs/PROTOCOL.md "Reply streams"): the server's reply
// frames parsed, reply steps sent through the publish API, and a per-reply text assembler that
// names every gap and duplicate it sees.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "support/envelope_client.h"
#include "support/http.h"

namespace flowrelay::ctest {

struct ReplyStats {
  int64_t tokens = -1;
  std::optional<int64_t> ttft_ms;  // absent without deltas
  int64_t duration_ms = -1;
  int64_t bytes = -1;
};

// One envelope frame with the reply fields (open, delta, end, snapshot, reply, stalled, and the
// rest: resumed, message, ack, error). Absent fields stay empty / nullopt.
struct ReplyFrame {
  std::string raw;
  std::string type;
  std::string reply;
  std::optional<uint64_t> seq;
  std::optional<uint64_t> from;  // a merged delta's first seq
  std::optional<uint64_t> offset;
  std::optional<std::string> epoch;
  std::optional<std::string> data;
  std::string reason;
  std::optional<std::string> error;  // the error text of an end / reply; an error frame's reason
  std::optional<ReplyStats> stats;
  std::optional<bool> recovered;
  std::optional<std::string> id;  // ack / error frames
  std::optional<int> code;
  std::optional<uint64_t> expected_seq;
  std::optional<std::string> ended;
  bool duplicate = false;
  std::string describe() const { return raw.size() > 240 ? raw.substr(0, 240) + "..." : raw; }
};

ReplyFrame parse_reply_frame(const std::string& text);

// The next frame of `c` (nullopt on timeout or close).
std::optional<ReplyFrame> next_frame(test::EnvelopeClient& c,
                                     test::Millis timeout = test::Millis(5000));

// ---------------------------------------------------------------------------------------------
// Publish API bodies

std::string open_body(const std::string& conversation, const std::string& reply);
std::string delta_body(const std::string& conversation, const std::string& reply, uint64_t seq,
                       const std::string& data);
// `error`: "end":true,"error":<error> (reason error).
std::string end_body(const std::string& conversation, const std::string& reply,
                     const std::optional<std::string>& error = std::nullopt);
// {"messages":[<item>,...]} from already encoded items.
std::string batch_of(const std::vector<std::string>& items);

// The answer to one reply step (or one item of a batch's "results").
struct StepAnswer {
  int status = 0;
  std::string body;
  std::optional<uint64_t> offset;
  std::optional<std::string> epoch;
  bool duplicate = false;
  std::optional<uint64_t> expected_seq;
  std::optional<std::string> ended;
  std::string describe() const { return std::to_string(status) + " " + body; }
};

StepAnswer post_step(test::HttpSession& api, const std::string& key, const std::string& body);
// The items of a batch answer's "results" (each accepted: status 200); nullopt when the answer
// has no results array.
std::optional<std::vector<StepAnswer>> batch_answers(const std::string& body);

// ---------------------------------------------------------------------------------------------
// What one viewer made of the replies it was sent.

class ReplyAssembler {
 public:
  // Applies one frame: delta (seq = last + 1, else a problem is recorded), snapshot / reply
  // (replace the text), end (must follow the last delta's seq). Other frames are ignored.
  void apply(const ReplyFrame& f);
  std::string text(const std::string& reply) const;
  uint64_t last_seq(const std::string& reply) const;
  bool ended(const std::string& reply) const { return _ends.count(reply) != 0; }
  const ReplyFrame* end_of(const std::string& reply) const;
  const std::vector<std::string>& problems() const { return _problems; }

 private:
  struct State {
    std::string text;
    uint64_t seq = 0;
  };
  std::map<std::string, State> _replies;
  std::map<std::string, ReplyFrame> _ends;
  std::vector<std::string> _problems;
};

}  // namespace flowrelay::ctest
