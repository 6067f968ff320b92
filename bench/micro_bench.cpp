// flowrelay-micro-bench: Google Benchmark microbenchmarks of the hot pure functions: the RFC 6455
// frame codec of transport-ws (plugins/transport-ws/frame_codec.h) and the daemon's channel
// router (daemon/router.h) with a no-op broker and no-op transports.
//   flowrelay-micro-bench                       full run
//   flowrelay-micro-bench --benchmark_filter=Utf8 --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "frame_codec.h"
#include "router.h"

namespace {

using flowrelay::ws::FrameHeader;
using flowrelay::ws::Opcode;

// A masked client frame as a browser would send it: header + mask + payload.
std::vector<uint8_t> client_frame(size_t payload_len) {
  std::vector<uint8_t> f(14 + payload_len);
  size_t h = 0;
  f[h++] = 0x81;
  if (payload_len < 126) {
    f[h++] = static_cast<uint8_t>(0x80 | payload_len);
  } else if (payload_len <= 0xFFFF) {
    f[h++] = 0x80 | 126;
    f[h++] = static_cast<uint8_t>(payload_len >> 8);
    f[h++] = static_cast<uint8_t>(payload_len);
  } else {
    f[h++] = 0x80 | 127;
    for (int s = 56; s >= 0; s -= 8) f[h++] = static_cast<uint8_t>(uint64_t{payload_len} >> s);
  }
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  std::memcpy(&f[h], mask, 4);
  h += 4;
  f.resize(h + payload_len, 'x');
  return f;
}

void BM_ParseHeader(benchmark::State& state) {
  const auto frame = client_frame(static_cast<size_t>(state.range(0)));
  FrameHeader h;
  for (auto _ : state) {
    auto r = flowrelay::ws::parse_header(frame.data(), frame.size(), h);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(h);
  }
  state.SetLabel(state.range(0) < 126       ? "7-bit length"
                 : state.range(0) <= 0xFFFF ? "16-bit length"
                                            : "64-bit length");
}
BENCHMARK(BM_ParseHeader)->Arg(64)->Arg(4096)->Arg(1 << 20);

void BM_Unmask(benchmark::State& state) {
  std::vector<uint8_t> buf(static_cast<size_t>(state.range(0)), 'a');
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  for (auto _ : state) {
    flowrelay::ws::unmask(buf.data(), buf.size(), mask, 0);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Unmask)->Arg(64)->Arg(4096);

// Unaligned start and a payload offset that is not a multiple of 4 (a message unmasked in pieces).
void BM_UnmaskOffset(benchmark::State& state) {
  std::vector<uint8_t> buf(static_cast<size_t>(state.range(0)) + 1, 'a');
  const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
  for (auto _ : state) {
    flowrelay::ws::unmask(buf.data() + 1, buf.size() - 1, mask, 3);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_UnmaskOffset)->Arg(64)->Arg(4096);

void BM_EncodeHeader(benchmark::State& state) {
  uint8_t out[16];
  const auto len = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(len);
    size_t n = flowrelay::ws::encode_header(out, Opcode::Text, len);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EncodeHeader)->Arg(64)->Arg(4096)->Arg(1 << 20);

std::string ascii_text(size_t n) {
  std::string s;
  const char* words = "the quick brown fox jumps over the lazy dog 0123456789 ";
  while (s.size() < n) s += words;
  s.resize(n);
  return s;
}

// Chat-like text mixing ASCII with 2-, 3- and 4-byte sequences (é, €, 日本, 😀).
std::string mixed_text(size_t n) {
  const std::string pieces[] = {"hello ",
                                "caf\xC3\xA9 ",
                                "\xE2\x82\xAC"
                                "5 ",
                                "\xE6\x97\xA5\xE6\x9C\xAC ",
                                "\xF0\x9F\x98\x80 ",
                                "ok, "};
  std::string s;
  for (size_t i = 0; s.size() < n; ++i) s += pieces[i % 6];
  while (s.size() > n) s.pop_back();
  // Do not end inside a multi-byte sequence: trim back to the last complete code point.
  while (!s.empty() && (static_cast<uint8_t>(s.back()) & 0x80)) s.pop_back();
  return s;
}

void utf8_bench(benchmark::State& state, const std::string& text) {
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  for (auto _ : state) {
    flowrelay::ws::Utf8Validator v;
    bool ok = v.feed(p, text.size()) && v.complete();
    benchmark::DoNotOptimize(ok);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(text.size()));
}

void BM_Utf8Ascii(benchmark::State& state) {
  utf8_bench(state, ascii_text(static_cast<size_t>(state.range(0))));
}
BENCHMARK(BM_Utf8Ascii)->Arg(64)->Arg(4096);

void BM_Utf8Mixed(benchmark::State& state) {
  const std::string text = mixed_text(static_cast<size_t>(state.range(0)));
  flowrelay::ws::Utf8Validator check;
  if (!check.feed(reinterpret_cast<const uint8_t*>(text.data()), text.size()) ||
      !check.complete()) {
    state.SkipWithError("mixed test text is not valid UTF-8");
    return;
  }
  utf8_bench(state, text);
}
BENCHMARK(BM_Utf8Mixed)->Arg(64)->Arg(4096);

// ---------------------------------------------------------------------------- router

flowrelay::BrokerPort noop_broker() {
  flowrelay::BrokerPort b;
  b.subscribe = [](std::string_view) { return flowrelay_status{FLOWRELAY_OK}; };
  b.unsubscribe = [](std::string_view) { return flowrelay_status{FLOWRELAY_OK}; };
  b.publish = [](std::string_view, const flowrelay_message&, flowrelay_published_fn, void*) {
    return flowrelay_status{FLOWRELAY_OK};
  };
  return b;
}

flowrelay::TransportPort noop_transport(uint64_t* deliveries) {
  flowrelay::TransportPort t;
  t.deliver = [deliveries](std::string_view, const flowrelay_message& m) {
    *deliveries += m.data.len != 0;
  };
  t.subscribed = [](std::string_view, flowrelay_status) {};
  return t;
}

// One broker message handed to every transport (the router's fan-out: one call per transport;
// each transport then fans out to its own sessions).
void BM_RouterDeliver(benchmark::State& state) {
  flowrelay::Router router(noop_broker());
  uint64_t deliveries = 0;
  for (int64_t i = 0; i < state.range(0); ++i) router.add_transport(noop_transport(&deliveries));
  router.subscribe("chat:room0");
  const std::string payload(64, 'x');
  const flowrelay_message m{sizeof(flowrelay_message), FLOWRELAY_LANE_MESSAGE, 1, {"e", 1},
                            {payload.data(), payload.size()}};
  for (auto _ : state) router.deliver("chat:room0", m);
  benchmark::DoNotOptimize(deliveries);
  state.SetItemsProcessed(static_cast<int64_t>(deliveries));
}
BENCHMARK(BM_RouterDeliver)->Arg(1)->Arg(4);

// A session joining and leaving a channel that other sessions keep live (no broker call).
void BM_RouterSubscribeExisting(benchmark::State& state) {
  flowrelay::Router router(noop_broker());
  uint64_t deliveries = 0;
  router.add_transport(noop_transport(&deliveries));
  const auto channels = static_cast<int>(state.range(0));
  for (int c = 0; c < channels; ++c) router.subscribe("chat:room" + std::to_string(c));
  const std::string channel = "chat:room" + std::to_string(channels / 2);
  for (auto _ : state) {
    benchmark::DoNotOptimize(router.subscribe(channel));
    router.unsubscribe(channel);
  }
}
BENCHMARK(BM_RouterSubscribeExisting)->Arg(10)->Arg(10000);

// The first session of a channel and its departure: broker subscribe/unsubscribe, map insert and
// erase (a conversation opening and closing).
void BM_RouterSubscribeFirst(benchmark::State& state) {
  flowrelay::Router router(noop_broker());
  uint64_t deliveries = 0;
  router.add_transport(noop_transport(&deliveries));
  for (int c = 0; c < state.range(0); ++c) router.subscribe("chat:other" + std::to_string(c));
  const std::string channel = "chat:fresh";
  for (auto _ : state) {
    benchmark::DoNotOptimize(router.subscribe(channel));
    router.unsubscribe(channel);
  }
}
BENCHMARK(BM_RouterSubscribeFirst)->Arg(10)->Arg(10000);

// Sessions of different channels joining and leaving from several transport threads at once
// (the router's mutex under contention).
flowrelay::Router* g_shared_router = nullptr;
uint64_t g_shared_deliveries = 0;

void BM_RouterSubscribeContended(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_shared_router = new flowrelay::Router(noop_broker());
    g_shared_router->add_transport(noop_transport(&g_shared_deliveries));
    for (int c = 0; c < 100; ++c) g_shared_router->subscribe("chat:room" + std::to_string(c));
  }
  const std::string channel = "chat:room" + std::to_string(state.thread_index() % 100);
  for (auto _ : state) {
    benchmark::DoNotOptimize(g_shared_router->subscribe(channel));
    g_shared_router->unsubscribe(channel);
  }
  if (state.thread_index() == 0) {
    delete g_shared_router;
    g_shared_router = nullptr;
  }
}
BENCHMARK(BM_RouterSubscribeContended)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
