// flowrelay-micro-bench: Google Benchmark microbenchmarks of the hot pure functions: the RFC 6455
// frame codec and the socket-free Session of transport-ws (plugins/transport-ws/frame_codec.h,
// session.h) and the daemon's channel router (daemon/router.h) with a no-op broker and no-op
// transports behind their real C tables.
//   flowrelay-micro-bench                       full run
//   flowrelay-micro-bench --benchmark_filter=Utf8 --benchmark_min_time=0.5
#include <benchmark/benchmark.h>
#include <flowrelay/plugin.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "frame_codec.h"
#include "http_api.h"
#include "plugin_host.h"
#include "router.h"
#include "session.h"
#include "ws_options.h"

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

// ---------------------------------------------------------------------------- session

// A host that does nothing: what a Session costs by itself (transport-ws/session.h).
class NullSessionHost final : public flowrelay::ws::SessionHost {
 public:
  flowrelay_status join(flowrelay::stream::Connection&, std::string_view) override {
    return FLOWRELAY_OK;
  }
  void leave(flowrelay::stream::Connection&) override {}
  flowrelay_status publish(flowrelay::stream::Connection&, flowrelay_lane, std::string_view,
                           std::string_view) override {
    return FLOWRELAY_OK;
  }
  flowrelay_status authorize(flowrelay::stream::Connection&, std::string_view, std::string_view,
                             std::string_view) override {
    return FLOWRELAY_EUNSUPPORTED;
  }
  void opened(flowrelay::stream::Connection&) override {}
  void read_history(flowrelay::stream::Connection&, uint64_t) override {}
  void wants_write(flowrelay::stream::Connection&) override {}
  void set_timer(flowrelay::stream::Connection&, flowrelay::ws::SessionTimer) override {}
  void slow_consumer(flowrelay::stream::Connection&, uint64_t) override {}
  std::shared_ptr<const flowrelay::ws::AccessPolicy> access_policy() override { return nullptr; }
  int64_t now_ms() override { return 0; }
};

struct OpenSessions {
  flowrelay::ws::WsOptions options = flowrelay::ws::parse_ws_options(nullptr, 0, "");
  flowrelay::ws::LiveLimits limits{options};
  flowrelay::ws::LoopStats stats;
  flowrelay::ws::SessionConfig config{limits, "/ws/", stats};
  NullSessionHost host;
  std::vector<std::unique_ptr<flowrelay::ws::Session>> sessions;

  explicit OpenSessions(size_t n) {
    limits.publish_rate = 0;
    std::string upgrade =
        "GET /ws/42 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for (size_t i = 0; i < n; ++i) {
      sessions.push_back(std::make_unique<flowrelay::ws::Session>(host, config, i + 1));
      std::string bytes = upgrade;
      sessions.back()->feed(bytes.data(), bytes.size());
      written(*sessions.back());
    }
  }
  static void written(flowrelay::stream::Connection& s) {
    s.out().consume(s.out().bytes(), [](const flowrelay::ws::SharedFrame*) {});
  }
};

// A client's text frame through an open Session: parse, unmask, UTF-8, publish.
void BM_SessionTextFrame(benchmark::State& state) {
  OpenSessions open(1);
  const auto frame = client_frame(static_cast<size_t>(state.range(0)));
  std::vector<char> buf(frame.size());
  for (auto _ : state) {
    std::memcpy(buf.data(), frame.data(), frame.size());  // the read buffer, unmasked in place
    open.sessions[0]->feed(buf.data(), buf.size());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_SessionTextFrame)->Arg(64)->Arg(4096);

// One shared frame queued on N open sessions and written out (the fan-out's per-member work).
void BM_SessionDeliver(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  OpenSessions open(n);
  const std::string payload(64, 'x');
  for (auto _ : state) {
    auto* f = flowrelay::ws::ws_frame("chat:42", Opcode::Text, payload);
    f->ref(n);
    for (auto& s : open.sessions) s->deliver(f);
    f->unref();
    for (auto& s : open.sessions) OpenSessions::written(*s);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * n);
}
BENCHMARK(BM_SessionDeliver)->Arg(1)->Arg(100);

// ---------------------------------------------------------------------------- router
// The daemon's message path through the real C tables: Node's host API, Router,
// BrokerInstance / TransportInstance, and no-op plugins built with flowrelay/plugin.hpp.

uint64_t g_deliveries = 0;  // deliveries counted by CountingTransport (single-threaded benches)

// Accepts everything; with `loopback` a publish comes back as a delivery from inside publish(),
// as broker-local does.
struct NoopBroker : flowrelay::sdk::Broker {
  static inline bool loopback = false;
  NoopBroker(flowrelay::sdk::BrokerHost h, const flowrelay_option*, size_t) : host(h) {}
  flowrelay_status publish(std::string_view channel, const flowrelay_message& m,
                           flowrelay_published_fn, void*) override {
    if (loopback) host.deliver(channel, m);
    return FLOWRELAY_OK;
  }
  flowrelay_status subscribe(std::string_view) override { return FLOWRELAY_OK; }
  void unsubscribe(std::string_view) override {}
  flowrelay::sdk::BrokerHost host;
};

struct CountingTransport : flowrelay::sdk::Transport {
  CountingTransport(flowrelay::sdk::TransportHost, const flowrelay_option*, size_t) {}
  void stop(uint32_t) override {}
  void deliver(std::string_view, const flowrelay_message& m) override {
    g_deliveries += m.data.len != 0;
  }
  void subscribed(std::string_view, flowrelay_status) override {}
};

// One daemon's plugins and router, with `transports` transports.
struct RouterRig {
  explicit RouterRig(int64_t transports)
      : node(1, "/", "chat:", true, state),
        broker(flowrelay::sdk::broker_vtable<NoopBroker>(), "noop", {}, node.broker_api(), host()),
        router(node.id(), broker) {
    node.router = &router;
    for (int64_t i = 0; i < transports; ++i) {
      instances.push_back(std::make_unique<flowrelay::TransportInstance>(
          flowrelay::sdk::transport_vtable<CountingTransport>(), "counting",
          flowrelay::PluginOptions{}, node.transport_api(), host()));
      router.add_transport(*instances.back());
    }
  }
  flowrelay_host host() { return {&node, &Poco::Logger::get("bench")}; }

  flowrelay::ServiceState state;
  flowrelay::Node node;
  flowrelay::BrokerInstance broker;
  flowrelay::Router router;
  std::vector<std::unique_ptr<flowrelay::TransportInstance>> instances;
};

// One broker message handed to every transport (the router's fan-out: one call per transport;
// each transport then fans out to its own sessions).
void BM_RouterDeliver(benchmark::State& state) {
  RouterRig rig(state.range(0));
  rig.router.subscribe("chat:room0");
  const std::string payload(64, 'x');
  flowrelay_message m = flowrelay::sdk::make_message(FLOWRELAY_LANE_MESSAGE, payload);
  m.offset = 1;
  m.epoch = {"e", 1};
  g_deliveries = 0;
  for (auto _ : state) rig.router.deliver("chat:room0", m);
  benchmark::DoNotOptimize(g_deliveries);
  state.SetItemsProcessed(static_cast<int64_t>(g_deliveries));
}
BENCHMARK(BM_RouterDeliver)->Arg(1)->Arg(4);

// The whole path of one message on one node: a transport's host publish, the router, the
// broker's publish delivering from inside it, the host deliver, the router's fan-out.
void BM_HostPublishToDeliver(benchmark::State& state) {
  RouterRig rig(state.range(0));
  NoopBroker::loopback = true;
  rig.router.subscribe("chat:room0");
  flowrelay_host host = rig.host();
  const flowrelay_transport_host_api* api = rig.node.transport_api();
  const std::string payload(64, 'x');
  const flowrelay_message m = flowrelay::sdk::make_message(FLOWRELAY_LANE_MESSAGE, payload, 1);
  g_deliveries = 0;
  for (auto _ : state) api->publish(&host, {"chat:room0", 10}, &m, nullptr, nullptr);
  NoopBroker::loopback = false;
  benchmark::DoNotOptimize(g_deliveries);
  state.SetItemsProcessed(static_cast<int64_t>(g_deliveries));
}
BENCHMARK(BM_HostPublishToDeliver)->Arg(1)->Arg(4);

// A session joining and leaving a channel that other sessions keep live (no broker call).
void BM_RouterSubscribeExisting(benchmark::State& state) {
  RouterRig rig(1);
  const auto channels = static_cast<int>(state.range(0));
  for (int c = 0; c < channels; ++c) rig.router.subscribe("chat:room" + std::to_string(c));
  const std::string channel = "chat:room" + std::to_string(channels / 2);
  for (auto _ : state) {
    benchmark::DoNotOptimize(rig.router.subscribe(channel));
    rig.router.unsubscribe(channel);
  }
}
BENCHMARK(BM_RouterSubscribeExisting)->Arg(10)->Arg(10000);

// The first session of a channel and its departure: broker subscribe/unsubscribe, map insert and
// erase (a conversation opening and closing).
void BM_RouterSubscribeFirst(benchmark::State& state) {
  RouterRig rig(1);
  for (int c = 0; c < state.range(0); ++c) rig.router.subscribe("chat:other" + std::to_string(c));
  const std::string channel = "chat:fresh";
  for (auto _ : state) {
    benchmark::DoNotOptimize(rig.router.subscribe(channel));
    rig.router.unsubscribe(channel);
  }
}
BENCHMARK(BM_RouterSubscribeFirst)->Arg(10)->Arg(10000);

// Sessions of different channels joining and leaving from several transport threads at once
// (the router's mutex under contention).
RouterRig* g_shared_rig = nullptr;

void BM_RouterSubscribeContended(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_shared_rig = new RouterRig(1);
    for (int c = 0; c < 100; ++c) g_shared_rig->router.subscribe("chat:room" + std::to_string(c));
  }
  const std::string channel = "chat:room" + std::to_string(state.thread_index() % 100);
  for (auto _ : state) {
    benchmark::DoNotOptimize(g_shared_rig->router.subscribe(channel));
    g_shared_rig->router.unsubscribe(channel);
  }
  if (state.thread_index() == 0) {
    delete g_shared_rig;
    g_shared_rig = nullptr;
  }
}
BENCHMARK(BM_RouterSubscribeContended)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
