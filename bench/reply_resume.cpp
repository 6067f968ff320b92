// --mode resume and --mode producer of flowrelay-reply-bench (see reply_bench.cpp).
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "reply_modes.h"
#include "reply_producers.h"
#include "reply_viewers.h"

namespace flowrelay::bench {

namespace {

struct Sent {
  uint64_t frames = 0, bytes = 0, data_bytes = 0;
  double ms = -1;     // from the connect to the resumed frame's arrival
  std::string types;  // e.g. "snapshot,resumed"
};

// What a client connecting with `query` is sent up to and including its resumed frame.
Sent measure_resume(const Options& o, const std::string& conv, const std::string& query) {
  const int64_t t0 = mono_ns();
  ViewerPool pool(o.ws, {{0, o.path + conv + query}}, 1, true);
  pool.connect(10);
  const int64_t deadline = mono_ns() + 20'000'000'000;
  while (pool.resumed() == 0 && mono_ns() < deadline) usleep(200);
  pool.stop();
  Sent s;
  for (const FrameRecord& f : pool.records(0)) {
    ++s.frames;
    s.bytes += f.wire_bytes;
    s.data_bytes += f.data_bytes;
    if (s.types.empty() || s.types.substr(s.types.rfind(',') + 1) != f.type)
      s.types += (s.types.empty() ? "" : ",") + f.type;
    if (f.type == "resumed") {
      s.ms = static_cast<double>(f.at_ns - t0) / 1e6;
      break;
    }
  }
  return s;
}

std::string json(const char* name, const Sent& s) {
  return std::string("\"") + name + "\":{\"frames\":" + std::to_string(s.frames) +
         ",\"bytes\":" + std::to_string(s.bytes) +
         ",\"dataBytes\":" + std::to_string(s.data_bytes) + ",\"ms\":" + ms(s.ms) +
         ",\"types\":\"" + s.types + "\"}";
}

void row(const char* what, const Sent& s) {
  const std::string took = s.ms < 0 ? "-" : ms(s.ms) + " ms";
  std::fprintf(stderr, "  %-44s %8lu frames %10lu bytes  %12s  %s\n", what,
               static_cast<unsigned long>(s.frames), static_cast<unsigned long>(s.bytes),
               took.c_str(), s.types.c_str());
}

}  // namespace

int resume_mode(const Options& o) {
  const uint64_t n = o.reply_deltas ? o.reply_deltas : 10000;
  const std::string conv = run_prefix("rs") + "0", reply = "r1";
  ViewerPool live(o.ws, {{0, o.path + conv}}, 1, true);
  live.connect(10);
  const ProducerTotals p = produce_reply(o.apis[0], o.key, conv, reply, n, o.batch ? o.batch : 50);
  if (p.errors != 0) die("producing the reply failed: " + p.first_error);
  const int64_t deadline = mono_ns() + 20'000'000'000;
  while (live.deltas() < n && mono_ns() < deadline) usleep(1000);
  live.stop();
  // The live viewer's frames are the deltas a replay of every delta would send again.
  std::vector<const FrameRecord*> deltas;
  for (const FrameRecord& f : live.records(0))
    if (f.type == "delta") deltas.push_back(&f);
  if (deltas.size() != n) die("the live viewer got " + std::to_string(deltas.size()) + " deltas");
  const uint64_t mid = n / 2;
  const std::string since =
      "?since=" + std::to_string(deltas[mid - 1]->offset) + "&epoch=" + deltas[mid - 1]->epoch;
  Sent replay_half, replay_all;
  auto add = [](Sent& s, const FrameRecord& f) {
    ++s.frames;
    s.bytes += f.wire_bytes;
    s.data_bytes += f.data_bytes;
  };
  for (size_t i = 0; i < deltas.size(); ++i) {
    add(replay_all, *deltas[i]);
    if (i >= mid) add(replay_half, *deltas[i]);
  }
  replay_half.types = replay_all.types = "delta...";
  const Sent open_mid = measure_resume(o, conv, since);
  const Sent open_join = measure_resume(o, conv, "?since=0");
  if (end_reply(o.apis[0], o.key, conv, reply) != 200) die("the end was refused");
  usleep(200000);
  const Sent ended_mid = measure_resume(o, conv, since);
  const Sent ended_join = measure_resume(o, conv, "?since=0");

  std::printf("{\"mode\":\"resume\",\"deltas\":%lu,\"since\":%lu,%s,%s,%s,%s,%s,%s}\n",
              static_cast<unsigned long>(n), static_cast<unsigned long>(deltas[mid - 1]->offset),
              json("replayHalf", replay_half).c_str(), json("replayAll", replay_all).c_str(),
              json("openResumeMid", open_mid).c_str(), json("openJoin", open_join).c_str(),
              json("endedResumeMid", ended_mid).c_str(), json("endedJoin", ended_join).c_str());
  std::fprintf(stderr, "resume: a reply of %lu deltas; resume at seq %lu\n",
               static_cast<unsigned long>(n), static_cast<unsigned long>(mid));
  row("replaying the missed deltas (seq > mid)", replay_half);
  row("replaying every delta (late joiner)", replay_all);
  row("open reply, resume at mid: snapshot", open_mid);
  row("open reply, since=0: snapshot", open_join);
  row("ended reply, resume at mid: reply entry", ended_mid);
  row("ended reply, since=0: reply entry", ended_join);
  const bool ok = open_mid.types == "snapshot,resumed" && open_join.types == "snapshot,resumed" &&
                  ended_mid.types == "reply,resumed" && ended_join.types == "reply,resumed";
  return ok ? 0 : 1;
}

int producer_mode(const Options& o) {
  FloodPlan plan;
  plan.api = o.apis[0];
  plan.key = o.key;
  plan.conv_prefix = run_prefix("pp");
  plan.conns = o.producers ? o.producers : 8;
  plan.batch = o.batch ? o.batch : 1;
  plan.seconds = o.duration > 0 ? o.duration : 10;
  const CpuWindow c0 = cpu_now(o);
  const int64_t t0 = mono_ns();
  const ProducerTotals t = run_flood(plan);
  const double secs = static_cast<double>(mono_ns() - t0) / 1e9;
  const CpuWindow c1 = cpu_now(o);
  const double per_delta = std::max<double>(1, static_cast<double>(t.deltas));
  const double server_us = (c1.server_ms - c0.server_ms) * 1000 / per_delta;
  const double redis_us = o.redis ? (c1.redis_s - c0.redis_s) * 1e6 / per_delta : -1;
  std::printf(
      "{\"mode\":\"producer\",\"conns\":%u,\"batch\":%u,\"seconds\":%s,\"deltas\":%lu,"
      "\"requests\":%lu,\"deltasPerSec\":%s,\"requestsPerSec\":%s,\"errors\":%lu,"
      "\"duplicates\":%lu,\"serverCpuUsPerDelta\":%s,\"redisCpuUsPerDelta\":%s,"
      "\"firstError\":\"%s\"}\n",
      plan.conns, plan.batch, ms(secs).c_str(), static_cast<unsigned long>(t.deltas),
      static_cast<unsigned long>(t.requests), ms(static_cast<double>(t.deltas) / secs).c_str(),
      ms(static_cast<double>(t.requests) / secs).c_str(), static_cast<unsigned long>(t.errors),
      static_cast<unsigned long>(t.duplicates), ms(server_us).c_str(), ms(redis_us).c_str(),
      json_safe(t.first_error).c_str());
  std::fprintf(stderr,
               "producer: %u conns, batch %u: %.0f deltas/s (%.0f requests/s); server %.2f us, "
               "Redis %.2f us per delta; errors %lu\n",
               plan.conns, plan.batch, static_cast<double>(t.deltas) / secs,
               static_cast<double>(t.requests) / secs, server_us, redis_us,
               static_cast<unsigned long>(t.errors));
  return t.errors == 0 && t.duplicates == 0 ? 0 : 1;
}

}  // namespace flowrelay::bench
