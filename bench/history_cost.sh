#!/usr/bin/env bash
# What keeping history costs: the same flowrelay-bench runs with history off (history_size: 0)
# and on (2000, the default), on broker-local and on broker-redis (2 replicas, one Redis),
# alternated so the machine's drift hits both alike. Prints one line per run and Redis' own
# time per append script (commandstats).
# usage: bench/history_cost.sh [ROUNDS]   (default 2; needs ./start.sh build; loopback only)
set -euo pipefail
rounds=${1:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
work=$(mktemp -d /tmp/flowrelay-history-cost.XXXX)
rport=26479
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

redis-server --port $rport --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port $rport

# start NAME WS_PORT BROKER_YAML -> pid on stdout
start() {
  cat >"$work/$1.yaml" <<YAML
plugin_dir: $build/plugins
log: { level: warning }
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:$2
    publish_rate: 0
broker: $3
http: { listen: off }
YAML
  "$build/daemon/flowrelayd" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  echo $!
}

run() {  # LABEL RATE PIDS URL...
  local label=$1 rate=$2 pidlist=$3
  shift 3
  local urls=()
  for u in "$@"; do urls+=(--url "$u"); done
  "$build/bench/flowrelay-bench" "${urls[@]}" --conns 1000 --rooms 10 --rate "$rate" \
    --duration 5 --pid "$pidlist" --json 2>/dev/null |
    python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print(f\"%-28s rate=%-5s deliveries/s %9d  cpu us/delivery %.2f  p50 %6.2f ms  p99 %6.2f ms  loss %.3f%%\" % ('$label', '$rate', d['deliveriesPerSec'], d['serverCpuUsPerDelivery'], d['p50'], d['p99'], d['lossPct']))"
}

for round in $(seq "$rounds"); do
  for hs in 0 2000; do
    p=$(start local 18481 "{ plugin: broker-local, history_size: $hs }")
    pids+=("$p")
    wait_port 18481
    run "local history_size=$hs" 0 "$p" ws://127.0.0.1:18481/ws
    run "local history_size=$hs" 1000 "$p" ws://127.0.0.1:18481/ws
    kill "$p"; wait "$p" 2>/dev/null || true

    redis-cli -p $rport CONFIG RESETSTAT >/dev/null
    a=$(start ra 18482 "{ plugin: broker-redis, url: 'redis://127.0.0.1:$rport', history_size: $hs }")
    b=$(start rb 18483 "{ plugin: broker-redis, url: 'redis://127.0.0.1:$rport', history_size: $hs }")
    pids+=("$a" "$b")
    wait_port 18482; wait_port 18483; sleep 0.5
    run "redis x2 history_size=$hs" 0 "$a,$b" ws://127.0.0.1:18482/ws ws://127.0.0.1:18483/ws
    run "redis x2 history_size=$hs" 1000 "$a,$b" ws://127.0.0.1:18482/ws ws://127.0.0.1:18483/ws
    redis-cli -p $rport INFO commandstats | grep -E '^cmdstat_(evalsha|publish):' |
      sed -E 's/^cmdstat_([a-z]+):calls=([0-9]+),usec=[0-9]+,usec_per_call=([0-9.]+).*/    redis \1: \2 calls, \3 us each/'
    kill "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
  done
done
