#!/usr/bin/env bash
# Side-by-side benchmarks in one run on this machine, written to docs/BENCHMARKS.md:
#   - the neutral client (npm ws, ../shared/anchors/compare.sh) against the Python original,
#     nginx+nchan and flowrelay (local broker; Redis with 2 replicas);
#   - the kernel floor (anchors/limit/fanout_floor.c) measured in the same run;
#   - flowrelay-bench (our C++ client, which outruns the servers) for saturation, scale and
#     latency, against flowrelay and nchan;
#   - transport-sse: flowrelay-bench's fanout and scale scenarios over WebSocket and over
#     Server-Sent Events, against one flowrelayd serving both transports and one nginx + nchan
#     serving both (bench/nchan_eventsource.sh: the anchors' config plus an eventsource location),
#     each on a fresh process, --rounds times (default 2), the order rotated round by round.
# usage: bench/compare.sh [--out FILE] [--skip-seed] [--rounds N] [--sse-only]
#   --sse-only: only the transport-sse rows; rewrites just that section of FILE (between its
#   <!-- transport-sse:begin/end --> markers) and leaves the rest of the file alone.
# Needs a build (./start.sh build) and, as root, installs the peers' Debian packages itself.
# Loopback only; every server it starts is stopped on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
anchors=${FLOWRELAY_ANCHORS:-$root/../shared/anchors}
build=${FLOWRELAY_BUILD_DIR:-$root/build}
out=$root/docs/BENCHMARKS.md
peers=seed,nchan
rounds=2
sse_only=0
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2;;
    --skip-seed) peers=nchan; shift;;
    --rounds) rounds=$2; shift 2;;
    --sse-only) sse_only=1; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]?$ ]] || { echo "--rounds: 1 to 99, not '$rounds'" >&2; exit 2; }
[ -x "$anchors/compare.sh" ] || { echo "compare.sh: no anchors at $anchors (set FLOWRELAY_ANCHORS)" >&2; exit 2; }
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || { echo "compare.sh: needs nginx + libnginx-mod-nchan" >&2; exit 2; }
targets=(flowrelayd flowrelay-transport-ws flowrelay-transport-sse flowrelay-broker-local flowrelay-bench)
[ $sse_only = 1 ] || targets+=(flowrelay-broker-redis)
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
export FLOWRELAY_ANCHORS=$anchors
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/frbench.XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_http() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# The nginx worker under PID (nginx's master itself, or a script whose child is the master).
nchan_worker() {
  local w kids
  for _ in $(seq 50); do
    kids=$(pgrep -d, -P "$1" || true)
    w=$(pgrep -f "nginx: worker" -P "$1${kids:+,$kids}" | head -1 || true)
    [ -n "$w" ] && { echo "$w"; return 0; }
    sleep 0.1
  done
  return 1
}
stop() { # stop one server this script started, and forget it
  kill "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]}")
}
results=$work/results.jsonl
: >"$results"
record() { # kind name json
  printf '{"kind":"%s","name":"%s","result":%s}\n' "$1" "$2" "$3" >>"$results"
}
fb() { # name args...: one flowrelay-bench run, recorded
  local name=$1; shift
  echo "== flowrelay-bench $name" >&2
  local r
  r=$("$build/bench/flowrelay-bench" --json "$@" 2>/dev/null | tail -1)
  echo "$r" >&2
  record fbench "$name" "$r"
}
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# transport-sse beside transport-ws: fanout (1,000 conns, 10 conversations, 100 msg/s -> 10k
# deliveries/s) and scale (10,000 conns, 100 conversations, 100 msg/s), 5 s each. Every server
# row gets a fresh process: its RSS is read, the scale run opens its 10,000 connections (RSS per
# connection = the difference / 10,000; that run's CPU per delivery is recorded too), then the
# fanout run. Over SSE each conversation's publisher POSTs on a connection of its own (not
# counted as a member). Records kind "sse", name "<row>/<scenario>/<round>".
sse_rows() {
  local sse_cfg=$work/sse.yaml round row order k srv pid url args
  cat >"$sse_cfg" <<YAML
plugin_dir: $build/plugins
log: { level: warning }
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:18420
    publish_rate: 0
    max_outbound_bytes: 67108864
  - plugin: transport-sse
    listen: 127.0.0.1:18421
    publish_rate: 0
    max_outbound_bytes: 67108864
broker: { plugin: broker-local }
http: { listen: 127.0.0.1:18422 }
YAML
  local rows=(transport-ws transport-sse nchan-ws nchan-eventsource)
  for round in $(seq "$rounds"); do
    order=()
    for k in 0 1 2 3; do order+=("${rows[$(( (k + round - 1) % 4 ))]}"); done
    for row in "${order[@]}"; do
      case $row in
        transport-ws|transport-sse)
          "$build/daemon/flowrelayd" --config "$sse_cfg" >"$work/sse-daemon.log" 2>&1 &
          srv=$!; pids+=("$srv")
          wait_http "http://127.0.0.1:18422/ready"
          kill -0 "$srv" 2>/dev/null || { echo "compare.sh: flowrelayd (sse) exited:" >&2; cat "$work/sse-daemon.log" >&2; exit 1; }
          pid=$srv;;
        nchan-ws|nchan-eventsource)
          "$root/bench/nchan_eventsource.sh" 18430 >"$work/nchan-sse.log" 2>&1 &
          srv=$!; pids+=("$srv")
          wait_port 18430 || { echo "compare.sh: nchan did not start:" >&2; cat "$work/nchan-sse.log" >&2; exit 1; }
          pid=$(nchan_worker "$srv") || { echo "compare.sh: no nginx worker" >&2; exit 1; };;
      esac
      case $row in
        transport-ws) args=(--url ws://127.0.0.1:18420/ws);;
        transport-sse) args=(--transport sse --url http://127.0.0.1:18421/sse);;
        nchan-ws) args=(--url ws://127.0.0.1:18430/ws);;
        nchan-eventsource) args=(--transport sse --url http://127.0.0.1:18430/sse);;
      esac
      sleep 0.3
      record sse "$row/idle/$round" "{\"rssKb\":$(rss_kb "$pid")}"
      fb_as sse "$row/scale/$round" "${args[@]}" --conns 10000 --rooms 100 --rate 100 --duration 5 --pid "$pid"
      fb_as sse "$row/fanout/$round" "${args[@]}" --conns 1000 --rooms 10 --rate 100 --duration 5 --pid "$pid"
      stop "$srv"
    done
  done
}
fb_as() { # kind name args...: one flowrelay-bench run, recorded under kind
  local kind=$1 name=$2; shift 2
  echo "== flowrelay-bench $name" >&2
  local r
  r=$(timeout 120 "$build/bench/flowrelay-bench" --json "$@" 2>/dev/null | tail -1) || true
  [ -n "$r" ] || r=null
  echo "$r" >&2
  record "$kind" "$name" "$r"
}
sse_command="bench/compare.sh --sse-only --rounds $rounds"
if [ $sse_only = 1 ]; then
  sse_rows
  python3 "$root/bench/render_benchmarks.py" --sse-section "$results" "$out" "$sse_command" ||
    { cp "$results" "/tmp/compare-results.$$.jsonl"; echo "compare.sh: rendering failed; results in /tmp/compare-results.$$.jsonl" >&2; exit 1; }
  echo "wrote the transport-sse section of $out" >&2
  exit 0
fi

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
nchan_pid=$(nchan_worker "$nchan_master") || { echo "compare.sh: nchan did not start (see $work/nchan.log)" >&2; exit 1; }

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
sse_rows

python3 "$root/bench/render_benchmarks.py" "$results" "$out" "bench/compare.sh" ||
  { cp "$results" "/tmp/compare-results.$$.jsonl"; echo "compare.sh: rendering failed; results in /tmp/compare-results.$$.jsonl" >&2; exit 1; }
echo "wrote $out" >&2
