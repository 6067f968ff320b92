// --mode fanout of flowrelay-reply-bench (see reply_bench.cpp).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include "reply_modes.h"
#include "reply_producers.h"
#include "reply_viewers.h"

namespace flowrelay::bench {

int fanout_mode(const Options& o) {
  const std::string conv = run_prefix("rb");
  std::vector<ViewerSpec> specs;
  for (uint32_t r = 0; r < o.replies; ++r)
    for (uint32_t v = 0; v < o.viewers; ++v)
      specs.push_back(
          {(r + v) % static_cast<uint32_t>(o.ws.size()), o.path + conv + std::to_string(r)});
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  ViewerPool pool(o.ws, specs, o.threads, false);
  const int64_t t_connect = mono_ns();
  pool.connect(60);
  const double connect_ms = static_cast<double>(mono_ns() - t_connect) / 1e6;
  usleep(500000);

  PacedPlan plan;
  plan.apis = o.apis;
  plan.key = o.key;
  plan.conv_prefix = conv;
  plan.streams = o.replies;
  plan.producers = o.producers ? o.producers : 20;
  plan.batch = o.batch ? o.batch : 50;
  plan.reply_deltas = o.reply_deltas ? o.reply_deltas : 250;
  plan.rate = o.rate;
  const double duration = o.duration > 0 ? o.duration : 20;
  plan.start_ns = mono_ns() + 100'000'000;
  plan.window_from = plan.start_ns + static_cast<int64_t>(o.warmup * 1e9);
  plan.window_to = plan.window_from + static_cast<int64_t>(duration * 1e9);
  plan.stop_ns = plan.window_to;
  pool.set_window(plan.window_from, plan.window_to);
  ProducerTotals produced;
  std::thread producers([&] { produced = run_paced(plan); });
  auto sleep_to = [](int64_t t) {
    while (mono_ns() < t)
      usleep(static_cast<useconds_t>(std::min<int64_t>(t - mono_ns(), 50'000'000) / 1000 + 1));
  };
  sleep_to(plan.window_from);
  const CpuWindow c0 = cpu_now(o);
  sleep_to(plan.window_to);
  const CpuWindow c1 = cpu_now(o);
  producers.join();
  // Drain: every accepted delta and every end at every open viewer, or 10 s.
  uint64_t expected = 0;
  for (uint64_t n : produced.per_stream) expected += n * o.viewers;
  const uint64_t expected_ends = produced.ends * o.viewers;
  const int64_t drain_until = mono_ns() + 10'000'000'000;
  while ((pool.deltas() < expected || pool.ends() < expected_ends) && mono_ns() < drain_until)
    usleep(20000);
  pool.stop();
  const ViewerTotals t = pool.totals();
  uint64_t lost = 0;
  const auto got = pool.received_per_viewer();
  for (size_t v = 0; v < specs.size(); ++v) {
    const uint64_t want = produced.per_stream[v / o.viewers];
    if (got[v] < want) lost += want - got[v];
  }
  const double delivered_per_s = static_cast<double>(t.in_window) / duration;
  const double server_us = (c1.server_ms - c0.server_ms) * 1000 / std::max<double>(1, t.in_window);
  const double redis_us =
      o.redis ? (c1.redis_s - c0.redis_s) * 1e6 / std::max<double>(1, produced.deltas_in_window)
              : -1;
  std::ostringstream j;
  j << "{\"mode\":\"fanout\",\"replies\":" << o.replies << ",\"viewersPerReply\":" << o.viewers
    << ",\"rate\":" << o.rate << ",\"replyDeltas\":" << plan.reply_deltas
    << ",\"batch\":" << plan.batch << ",\"producers\":" << plan.producers
    << ",\"durationS\":" << duration << ",\"conns\":" << specs.size() << ",\"open\":" << t.open
    << ",\"failed\":" << t.failed << ",\"closedEarly\":" << t.closed_early
    << ",\"connectMs\":" << ms(connect_ms)
    << ",\"producedPerSec\":" << ms(static_cast<double>(produced.deltas_in_window) / duration)
    << ",\"deliveredPerSec\":" << ms(delivered_per_s)
    << ",\"p50\":" << ms(t.latency.quantile_ms(0.5))
    << ",\"p90\":" << ms(t.latency.quantile_ms(0.9))
    << ",\"p99\":" << ms(t.latency.quantile_ms(0.99)) << ",\"max\":" << ms(t.latency.max_ms())
    << ",\"accepted\":" << produced.deltas << ",\"expected\":" << expected
    << ",\"received\":" << t.deltas << ",\"lost\":" << lost << ",\"duplicates\":" << t.duplicates
    << ",\"gaps\":" << t.gaps << ",\"ends\":" << t.ends << ",\"expectedEnds\":" << expected_ends
    << ",\"badEnds\":" << t.bad_ends << ",\"mergedFrames\":" << t.merged_frames
    << ",\"foreign\":" << t.foreign << ",\"producerErrors\":" << produced.errors
    << ",\"producerDuplicates\":" << produced.duplicates
    << ",\"producerMaxBehindMs\":" << ms(produced.max_behind_ms)
    << ",\"serverCpuUsPerDelivery\":" << ms(server_us) << ",\"clientCpuUsPerDelivery\":"
    << ms((c1.self_ms - c0.self_ms) * 1000 / std::max<double>(1, t.in_window))
    << ",\"redisCpuUsPerDelta\":" << ms(redis_us) << ",\"firstError\":\""
    << json_safe(t.first_error.empty() ? produced.first_error : t.first_error) << "\"}";
  std::printf("%s\n", j.str().c_str());
  std::fprintf(stderr,
               "fanout: %u viewers open of %zu; %.0f deltas/s produced, %.0f delivered/s; p50 %.3f "
               "p99 %.3f ms; lost %lu dup %lu gaps %lu bad ends %lu; producer errors %lu\n",
               t.open, specs.size(), static_cast<double>(produced.deltas_in_window) / duration,
               delivered_per_s, t.latency.quantile_ms(0.5), t.latency.quantile_ms(0.99),
               static_cast<unsigned long>(lost), static_cast<unsigned long>(t.duplicates),
               static_cast<unsigned long>(t.gaps), static_cast<unsigned long>(t.bad_ends),
               static_cast<unsigned long>(produced.errors));
  const bool clean = lost == 0 && t.duplicates == 0 && t.gaps == 0 && t.bad_ends == 0 &&
                     produced.errors == 0 && t.failed == 0 && t.closed_early == 0;
  return clean ? 0 : 1;
}

}  // namespace flowrelay::bench
