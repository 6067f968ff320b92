// One channel's history for broker-local: messages and reply streams, bounded by count, bytes
// and age, with the offsets they were given and the origin they were published with. Not
// thread-safe: the broker holds the channel's lock around every call.
//
// Layout: `_entries` holds messages and ended replies (REPLY entries), oldest first, each at
// its own offset (increasing, with holes where a reply's deltas were). Open replies are not in
// it: a reply's place moves with each delta (to its newest delta's offset), so they live in
// `_open` and a read merges them in. An ended reply's state stays in `_replies` for as long as
// its REPLY entry is in `_entries` (a later delta for it is then refused as "ended").
#pragma once

#include <flowrelay/plugin.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flowrelay::local {

// What history costs in memory beyond its bytes of data, for the node-wide bound
// (history_memory_limit). Estimates from the types' sizes on a 64-bit glibc build, not measured
// per allocation: an entry is its slot in the deque (~64 bytes) plus the heap block header and
// rounding of its text (~32); a reply adds its state in the reply table (map node, id, reason,
// error: ~200); an open reply's delta adds its offset (kept to answer a resent delta).
constexpr uint64_t kEntryOverhead = 96;
constexpr uint64_t kReplyOverhead = 200;
constexpr uint64_t kDeltaOverhead = sizeof(uint64_t);

struct HistoryBounds {
  size_t max_entries = 0;  // history_size: messages and replies (an open reply is one)
  uint64_t max_bytes = 0;  // history_max_bytes: their data (an open reply's text so far)
};

// A reply step's outcome (flowrelay_reply_published) and, when `deliver`, the message to deliver
// (`message.reply` points at `reply`). Views are valid until the history changes again.
struct ReplyStep {
  flowrelay_status status = FLOWRELAY_OK;
  bool duplicate = false;
  uint64_t offset = 0;
  uint64_t expected_seq = 0;
  std::string_view ended;
  bool deliver = false;
  flowrelay_message message{};
  flowrelay_reply reply{};
};

// A history read's answer: views valid until the history changes again.
struct HistoryView {
  std::vector<flowrelay_message> messages;
  std::deque<flowrelay_reply> replies;  // a deque: the messages point into it as it grows
};

// Whether a producer's step is well formed: an id of 1 to 64 characters 0x21-0x7E; kind OPEN,
// DELTA (seq from 1) or END (reason done, error, cancelled or producer_lost).
bool valid_reply_step(const flowrelay_reply& r);

class ChannelHistory {
 public:
  explicit ChannelHistory(std::string epoch) : _epoch(std::move(epoch)) {}
  ChannelHistory(const ChannelHistory&) = delete;
  ChannelHistory& operator=(const ChannelHistory&) = delete;

  const std::string& epoch() const { return _epoch; }
  uint64_t top() const { return _top; }
  int64_t last_at_ms() const { return _last_at_ms; }
  // The newest offset of anything dropped (by count, bytes or age); 0: nothing was.
  uint64_t trimmed() const { return _trimmed; }
  size_t entries() const { return _entries.size() + _open.size(); }
  uint64_t data_bytes() const { return _data_bytes; }
  // Data plus the overhead estimate above: what the node-wide bound counts.
  uint64_t memory_bytes() const { return _data_bytes + _overhead_bytes; }

  // Appends a copy of a plain message; returns the offset it was given.
  uint64_t append(const flowrelay_message& m, int64_t now_ms, const HistoryBounds& bounds);

  // A producer's step of a reply (m.reply: OPEN, DELTA or END), by the rules of plugin.h's
  // publish_reply (reply_steps.cpp).
  void apply_reply(const flowrelay_message& m, int64_t now_ms, const HistoryBounds& bounds,
                   ReplyStep& out);

  // Drops entries older than `oldest_ms` (never an open reply).
  void trim_older_than(int64_t oldest_ms);
  // Drops the oldest entries until the bounds hold (never an open reply).
  void enforce(const HistoryBounds& bounds);

  // Entries whose place is after `since`, in offset order: messages, REPLY entries and open
  // replies as SNAPSHOTs.
  void read_after(uint64_t since, HistoryView& out) const;

 private:
  struct Reply;
  struct Entry {
    uint64_t offset;
    flowrelay_lane lane;
    flowrelay_origin origin;
    int64_t at_ms;
    std::string data;
    const Reply* reply;  // REPLY entries: the ended reply's state in _replies
  };
  struct Reply {
    const std::string* id = nullptr;  // its key in _replies
    bool open = true;
    bool opened_by_open = false;  // ttft counts from the OPEN (else from the first delta: 0)
    uint64_t seq = 0;
    std::string text;                     // open: the text so far
    std::vector<uint64_t> delta_offsets;  // open: offset of seq i at [i - 1]
    uint64_t open_offset = 0;             // the OPEN's offset (0 when it had none)
    uint64_t place = 0;                   // open: its newest step's offset; ended: the END's
    flowrelay_origin origin{};
    int64_t opened_ms = 0;
    int64_t first_delta_ms = -1;
    int64_t last_at_ms = 0;
    std::string reason, error;
    int64_t ttft_ms = -1, duration_ms = -1;
    uint64_t bytes = 0;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  void open_step(Reply* known, std::string_view id, const flowrelay_message& m, int64_t now,
                 ReplyStep& out);
  void delta_step(Reply* known, std::string_view id, const flowrelay_message& m, int64_t now,
                  const HistoryBounds& bounds, ReplyStep& out);
  void end_step(Reply* known, std::string_view id, const flowrelay_message& m, int64_t now,
                ReplyStep& out);
  Reply& open_reply(std::string_view id, const flowrelay_message& m, int64_t now);
  uint64_t next_offset(int64_t now) { return _last_at_ms = now, ++_top; }
  void pop_oldest();
  void fill(const Reply& r, flowrelay_kind kind, flowrelay_reply& out) const;

  std::string _epoch;
  uint64_t _top = 0;
  int64_t _last_at_ms = 0;
  uint64_t _trimmed = 0;
  uint64_t _data_bytes = 0;
  uint64_t _overhead_bytes = 0;
  std::deque<Entry> _entries;
  std::vector<Reply*> _open;  // the open replies (few: usually one per conversation)
  std::unordered_map<std::string, Reply, Hash, std::equal_to<>> _replies;
};

}  // namespace flowrelay::local
