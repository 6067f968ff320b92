#!/usr/bin/env bash
# Side-by-side benchmarks in one run on this machine, written to docs/BENCHMARKS.md:
#   - the neutral client (npm ws, ../shared/anchors/compare.sh) against the Python original,
#     nginx+nchan and flowrelay (local broker; Redis with 2 replicas);
#   - the kernel floor (anchors/limit/fanout_floor.c) measured in the same run;
#   - flowrelay-bench (our C++ client, which outruns the servers) for saturation, scale and
#     latency, against flowrelay and nchan.
# usage: bench/compare.sh [--out FILE] [--skip-seed]
# Needs a build (./start.sh build) and, as root, installs the peers' Debian packages itself.
# Loopback only; every server it starts is stopped on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
anchors=${FLOWRELAY_ANCHORS:-$root/../shared/anchors}
build=${FLOWRELAY_BUILD_DIR:-$root/build}
out=$root/docs/BENCHMARKS.md
peers=seed,nchan
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2;;
    --skip-seed) peers=nchan; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -x "$anchors/compare.sh" ] || { echo "compare.sh: no anchors at $anchors (set FLOWRELAY_ANCHORS)" >&2; exit 2; }
cmake --build "$build" -j"$(nproc)" --target flowrelayd flowrelay-transport-ws \
  flowrelay-broker-local flowrelay-broker-redis flowrelay-bench >/dev/null
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/frbench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_http() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

rport=26379
redis-server --port $rport --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port $rport

# flowrelayd: $1 name, $2 ws port, $3 http port, $4 broker YAML. Limits meant for untrusted
# clients (publish rate) are lifted: the load generator publishes as fast as it can.
start_flowrelay() {
  cat >"$work/$1.yaml" <<YAML
plugin_dir: $build/plugins
log: { level: warning }
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:$2
    publish_rate: 0
    max_outbound_bytes: 67108864
broker: $4
http: { listen: 127.0.0.1:$3 }
YAML
  "$build/daemon/flowrelayd" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$3/ready"
  # /ready could be another process's: make sure ours is the one serving.
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "compare.sh: flowrelayd $1 exited:" >&2; cat "$work/$1.log" >&2; exit 1; }
}
start_flowrelay local 18400 18401 "{ plugin: broker-local }"
local_pid=${pids[-1]}
start_flowrelay redis-a 18402 18403 "{ plugin: broker-redis, url: 'redis://127.0.0.1:$rport' }"
ra_pid=${pids[-1]}
start_flowrelay redis-b 18404 18405 "{ plugin: broker-redis, url: 'redis://127.0.0.1:$rport' }"
rb_pid=${pids[-1]}
"$anchors/nchan/run.sh" 18410 >"$work/nchan.log" 2>&1 &
pids+=($!)
nchan_master=${pids[-1]}
wait_port 18410
nchan_pid=
for _ in $(seq 50); do
  nchan_pid=$(pgrep -f "nginx: worker" -P "$nchan_master" | head -1 || true)
  [ -n "$nchan_pid" ] && break
  sleep 0.1
done
[ -n "$nchan_pid" ] || { echo "compare.sh: nchan did not start (see $work/nchan.log)" >&2; exit 1; }

results=$work/results.jsonl
: >"$results"
record() { # kind name json
  printf '{"kind":"%s","name":"%s","result":%s}\n' "$1" "$2" "$3" >>"$results"
}

echo "== kernel floor" >&2
gcc -O2 -o "$work/floor" "$anchors/limit/fanout_floor.c"
for batch in 1 10; do
  line=$("$work/floor" 1000 200 66 $batch)
  us=$(sed -n 's/.*sender_cpu_us_per_delivery=\([0-9.]*\).*/\1/p' <<<"$line")
  record floor "batch$batch" "{\"cpuUsPerDelivery\":$us}"
done

echo "== neutral client (npm ws): peers and flowrelay in one run" >&2
"$anchors/compare.sh" --peers "$peers" --scenario all \
  --target flowrelay ws://127.0.0.1:18400/ws "$local_pid" \
  --target flowrelay-redis-2x "ws://127.0.0.1:18402/ws,ws://127.0.0.1:18404/ws" "$ra_pid,$rb_pid" \
  | while read -r l; do
      [ -n "$l" ] || continue
      echo "$l" >&2
      python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(json.dumps({"kind":"neutral","name":d["server"]+"/"+d["scenario"],"result":d["result"]}))' "$l" >>"$results"
    done

fb() { # name args...: one flowrelay-bench run, recorded
  local name=$1; shift
  echo "== flowrelay-bench $name" >&2
  local r
  r=$("$build/bench/flowrelay-bench" --json "$@" 2>/dev/null | tail -1)
  echo "$r" >&2
  record fbench "$name" "$r"
}
fb flowrelay/fanout --url ws://127.0.0.1:18400/ws --conns 1000 --rooms 10 --rate 100 --duration 5 --pid "$local_pid"
fb nchan/fanout --url ws://127.0.0.1:18410/ws --conns 1000 --rooms 10 --rate 100 --duration 5 --pid "$nchan_pid"
fb flowrelay/saturation --url ws://127.0.0.1:18400/ws --conns 1000 --rooms 10 --rate 0 --window 128 --warmup 1 --duration 5 --pid "$local_pid"
fb nchan/saturation --url ws://127.0.0.1:18410/ws --conns 1000 --rooms 10 --rate 0 --window 128 --warmup 1 --duration 5 --pid "$nchan_pid"
fb flowrelay-redis-2x/saturation --url ws://127.0.0.1:18402/ws --url ws://127.0.0.1:18404/ws --conns 1000 --rooms 10 --rate 0 --window 128 --warmup 1 --duration 5 --pid "$ra_pid,$rb_pid"
fb flowrelay-redis-2x/cluster --url ws://127.0.0.1:18402/ws --url ws://127.0.0.1:18404/ws --conns 1000 --rooms 10 --rate 100 --duration 5 --publish-url-index 0 --pid "$ra_pid,$rb_pid"
# Memory per connection on a fresh daemon (the one above kept the heap of the saturation runs).
start_flowrelay scale 18406 18407 "{ plugin: broker-local }"
scale_pid=${pids[-1]}
rss0=$(awk '/VmRSS/{print $2}' "/proc/$scale_pid/status")
record rss flowrelay/idle-before "{\"rssKb\":$rss0}"
fb flowrelay/scale --url ws://127.0.0.1:18406/ws --conns 10000 --rooms 100 --rate 100 --duration 5 --pid "$scale_pid"
fb flowrelay/hold19k --url ws://127.0.0.1:18406/ws --conns 19000 --rooms 100 --rate 100 --duration 5 --pid "$scale_pid"

python3 "$root/bench/render_benchmarks.py" "$results" "$out" "bench/compare.sh"
echo "wrote $out" >&2
