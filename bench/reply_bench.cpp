// flowrelay-reply-bench: reply streams (issue 15) on loopback, against running flowrelayd
// replicas (bench/reply_bench.sh starts Redis and two of them).
//   --mode fanout    N concurrent replies paced at R deltas/s each through the publish API, V
//                    envelope viewers per reply: delivered deltas/s, delta latency (producer's
//                    send to viewer's receive), loss and duplicates checked per viewer and reply
//   --mode resume    one reply of D deltas: what a client resuming in its middle (and a late
//                    joiner) is sent, against the delta frames a replay of every delta sends
//   --mode producer  deltas/s one replica's publish API accepts (single or batched requests),
//                    server and Redis CPU per delta
// One JSON line on stdout, a summary on stderr. Exit 0; 1 when the run was not clean (loss,
// duplicates, errors); 2 on bad arguments.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "reply_modes.h"

namespace flowrelay::bench {
namespace {

const char* const kUsage =
    "usage: flowrelay-reply-bench --mode fanout|resume|producer [options]\n"
    "  --api HOST:PORT       publish API (http.listen) of a replica (repeatable; fanout: round\n"
    "                        robin over producer connections; resume/producer: the first)\n"
    "  --ws HOST:PORT        WebSocket listener of a replica (repeatable; viewers round robin)\n"
    "  --path P              WebSocket path prefix (default /ws/)\n"
    "  --key KEY             X-API-Key (default bench-key)\n"
    "  --replies N           fanout: concurrent replies, one conversation each (1000)\n"
    "  --viewers V           fanout: envelope viewers per reply (5)\n"
    "  --rate R              fanout: deltas/s per reply (50)\n"
    "  --reply-deltas D      fanout: deltas per reply before its end and the next (250);\n"
    "                        resume: the reply's length (10000)\n"
    "  --producers P         fanout: API connections (20); producer: connections (8)\n"
    "  --batch B             steps per request, {\"messages\":[...]} (fanout 50, producer 1)\n"
    "  --warmup S --duration S  fanout: not measured / measured seconds (2, 20);\n"
    "                        producer: seconds (10)\n"
    "  --threads T           viewer epoll loops (2)\n"
    "  --pid PID             server process for CPU figures (repeatable)\n"
    "  --redis PORT          Redis for its CPU per delta (INFO CPU)\n";

Options parse(int argc, char** argv) {
  Options o;
  auto num = [&](int& i) {
    if (i + 1 >= argc) die(std::string(argv[i]) + " needs a value\n" + kUsage);
    char* end = nullptr;
    const double v = std::strtod(argv[++i], &end);
    if (*end != '\0' || v < 0) die(std::string(argv[i - 1]) + ": not a number: " + argv[i]);
    return v;
  };
  auto str = [&](int& i) -> std::string {
    if (i + 1 >= argc) die(std::string(argv[i]) + " needs a value\n" + kUsage);
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mode")
      o.mode = str(i);
    else if (a == "--api")
      o.apis.push_back(parse_endpoint(str(i)));
    else if (a == "--ws")
      o.ws.push_back(parse_endpoint(str(i)));
    else if (a == "--path")
      o.path = str(i);
    else if (a == "--key")
      o.key = str(i);
    else if (a == "--replies")
      o.replies = static_cast<uint32_t>(num(i));
    else if (a == "--viewers")
      o.viewers = static_cast<uint32_t>(num(i));
    else if (a == "--rate")
      o.rate = num(i);
    else if (a == "--reply-deltas")
      o.reply_deltas = static_cast<uint32_t>(num(i));
    else if (a == "--producers")
      o.producers = static_cast<uint32_t>(num(i));
    else if (a == "--batch")
      o.batch = static_cast<uint32_t>(num(i));
    else if (a == "--warmup")
      o.warmup = num(i);
    else if (a == "--duration")
      o.duration = num(i);
    else if (a == "--threads")
      o.threads = static_cast<uint32_t>(num(i));
    else if (a == "--pid")
      o.pids.push_back(static_cast<int>(num(i)));
    else if (a == "--redis")
      o.redis = static_cast<uint16_t>(num(i));
    else
      die("unknown option " + a + "\n" + kUsage);
  }
  if (o.mode != "fanout" && o.mode != "resume" && o.mode != "producer") die(kUsage);
  if (o.apis.empty()) die("--api is required\n" + std::string(kUsage));
  if (o.mode != "producer" && o.ws.empty()) die("--ws is required\n" + std::string(kUsage));
  if (o.rate <= 0) die("--rate must be positive");
  return o;
}

}  // namespace
}  // namespace flowrelay::bench

int main(int argc, char** argv) {
  using namespace flowrelay::bench;
  const Options o = parse(argc, argv);
  if (o.mode == "fanout") return fanout_mode(o);
  if (o.mode == "resume") return resume_mode(o);
  return producer_mode(o);
}
