// A client that stops reading must not grow the daemon's memory: past max_outbound_bytes its
// backlog is dropped, it gets close 1008, and it is counted; the other members are unaffected.
#include <gtest/gtest.h>

#include <string>

#include "support/itest.h"

namespace flowrelay::itest {
namespace {

long metric(uint16_t http_port, const std::string& name) {
  const HttpResult r = http_get(http_port, "/metrics");
  const auto at = r.body.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stol(r.body.substr(at + name.size() + 2));
}

TEST(SlowConsumer, IsClosedWith1008AndMemoryStaysBounded) {
  DaemonOptions options;
  options.transport_extra = "    max_outbound_bytes: 1048576\n    publish_rate: 0\n";
  // History would keep up to 2,000 of these 256 KiB messages by design; this test pins the
  // transport's own bound.
  options.broker_extra = "  history_size: 0\n";
  Daemon daemon(options);
  RawClient slow(daemon.ws_port());
  ASSERT_TRUE(slow.upgrade("/ws/slow"));  // and then never reads
  WsClient reader(daemon.ws_port(), "slow");
  WsClient writer(daemon.ws_port(), "slow");
  const long rss_before = daemon.vm_rss_kb();

  // 200 messages of 256 KiB = 50 MiB for the slow client: far past the kernel's socket
  // buffers and the 1 MiB cap. The other members read everything.
  const std::string payload(256 * 1024, 'x');
  const int total = 200;
  int got_reader = 0, got_writer = 0;
  for (int i = 0; i < total; ++i) {
    writer.send_text(payload);
    // Keep the well-behaved clients drained so only the slow one falls behind.
    auto m = reader.receive(5s);
    ASSERT_TRUE(m.has_value()) << "reader missed message " << i;
    got_reader += m->payload.size() == payload.size();
    auto e = writer.receive(5s);
    ASSERT_TRUE(e.has_value()) << "writer missed its echo " << i;
    got_writer += e->payload.size() == payload.size();
  }
  EXPECT_EQ(got_reader, total);
  EXPECT_EQ(got_writer, total);

  EXPECT_TRUE(wait_for(
      [&] { return metric(daemon.http_port(), "flowrelay_slow_consumer_closes_total") == 1; }, 5s))
      << "slow consumer not counted";
  // The daemon did not buffer the 50 MiB it could not deliver.
  const long rss_after = daemon.vm_rss_kb();
  EXPECT_LT(rss_after - rss_before, 16 * 1024)
      << "RSS grew from " << rss_before << " to " << rss_after << " KB";

  // Reading now, the slow client finds some messages, then close 1008 (or, if the close
  // timer already fired, the end of the stream) — never the whole backlog.
  std::vector<Frame> before_close;
  auto close = slow.read_until_close(10s, &before_close);
  EXPECT_LT(before_close.size(), static_cast<size_t>(total));
  if (close) {
    EXPECT_EQ(close->close_code(), 1008);
  } else {
    EXPECT_TRUE(slow.closed()) << "neither a close frame nor the end of the stream";
  }
  // The conversation goes on for the others.
  writer.send_text("still here");
  auto m = reader.receive(5s);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->payload, "still here");
}

}  // namespace
}  // namespace flowrelay::itest
