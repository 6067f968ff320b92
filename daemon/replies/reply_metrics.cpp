#include "replies/reply_metrics.h"

#include <string>

namespace flowrelay {

void ReplyMetrics::ended(std::string_view reason, int64_t ttft_ms, uint64_t tokens,
                         uint64_t bytes) {
  size_t i = 0;
  while (i < kReasons.size() && kReasons[i] != reason) ++i;
  _replies[i].fetch_add(1, std::memory_order_relaxed);
  if (ttft_ms >= 0) _ttft.observe(static_cast<double>(ttft_ms) / 1000.0);
  _deltas.observe(static_cast<double>(tokens));
  _bytes.observe(static_cast<double>(bytes));
}

void ReplyMetrics::write(sdk::PrometheusText& out, uint64_t open) const {
  using sdk::PrometheusText;
  _ttft.write(out, "flowrelay_reply_ttft_seconds",
              "Replies' time from opened to the first delta (the broker's END stats)");
  _inter_token.write(out, "flowrelay_reply_inter_token_seconds",
                     "Gap between consecutive deltas of a reply, as delivered");
  _deltas.write(out, "flowrelay_reply_deltas", "Deltas (tokens) per ended reply");
  _bytes.write(out, "flowrelay_reply_bytes", "Bytes of text per ended reply");
  out.family("flowrelay_replies_total", "counter", "Replies ended, by reason");
  for (size_t i = 0; i <= kReasons.size(); ++i)
    out.sample("flowrelay_replies_total",
               PrometheusText::label("reason", i < kReasons.size() ? kReasons[i] : "other"),
               _replies[i].load(std::memory_order_relaxed));
  out.gauge("flowrelay_replies_open", "Open replies this node watches for liveness", open);
  out.counter("flowrelay_reply_stalls_total",
              "Stalled notices sent (an open reply without a delta for channels.reply_stall_ms)",
              _stalls.load(std::memory_order_relaxed));
}

}  // namespace flowrelay
