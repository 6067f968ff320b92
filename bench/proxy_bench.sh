#!/usr/bin/env bash
# What the publish proxy costs: the same flowrelay-bench runs against two flowrelayd side by
# side, one publishing client messages directly and one asking a trivial backend first
# (flowrelay-trivial-backend, answering {}), alternated round by round.
#   1. latency at a fixed rate: p50/p99 from a client's send to every member's receipt;
#   2. saturation: client messages per second through the proxy (each room's publisher is one
#      session, whose messages go to the backend one at a time, so rooms = parallel requests).
# usage: bench/proxy_bench.sh [BUILD_DIR]   (default ./build; needs flowrelayd, the plugins,
#        flowrelay-bench and flowrelay-trivial-backend built there)
# env: ROUNDS (3) RATE (2000) CONNS (100) ROOMS (10) SAT_ROOMS (64) DURATION (5)
#      MAX_IN_FLIGHT (64)
set -euo pipefail
build=${1:-./build}
daemon=$build/daemon/flowrelayd
bench=$build/bench/flowrelay-bench
backend=$build/bench/flowrelay-trivial-backend
plugin_dir=$build/plugins
ROUNDS=${ROUNDS:-3} RATE=${RATE:-2000} CONNS=${CONNS:-100} ROOMS=${ROOMS:-10}
SAT_ROOMS=${SAT_ROOMS:-64} DURATION=${DURATION:-5} MAX_IN_FLIGHT=${MAX_IN_FLIGHT:-64}
for f in "$daemon" "$bench" "$backend"; do
  [ -x "$f" ] || { echo "missing $f (build it first)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/flowrelay-proxy-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
next_port=$((20000 + RANDOM % 10000))
free_port() { # sets $port: below the ephemeral range, never the same twice in this run
  for _ in $(seq 100); do
    next_port=$((next_port + 1))
    port_busy "$next_port" || { port=$next_port; return 0; }
  done
  return 1
}
ready() {
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  read -r -t 2 _ status _ <&3 || status=
  exec 3<&- 3>&-
  [ "$status" = 200 ]
}

free_port
backend_port=$port
"$backend" "$backend_port" &
pids+=($!)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/backend.secret"

# start_daemon NAME EXTRA_YAML: sets $ws $http $pid
start_daemon() {
  local name=$1 extra=$2
  free_port
  ws=$port
  free_port
  http=$port
  cat >"$work/$name.yaml" <<YAML
plugin_dir: $plugin_dir
log: { level: warning }
shutdown_timeout_ms: 1000
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:$ws
    path: /ws/
    publish_rate: 0
broker:
  plugin: broker-local
http: { listen: 127.0.0.1:$http }
$extra
YAML
  "$daemon" --config "$work/$name.yaml" >"$work/$name.log" 2>&1 &
  pid=$!
  pids+=($pid)
  for _ in $(seq 100); do
    if ready "$http" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "flowrelayd ($name) did not start:" >&2
  cat "$work/$name.log" >&2
  return 1
}

start_daemon direct ""
direct_ws=$ws direct_pid=$pid
start_daemon proxy "backend:
  publish_url: http://127.0.0.1:$backend_port/publish
  secret_file: backend.secret
  max_in_flight: $MAX_IN_FLIGHT"
proxy_ws=$ws proxy_pid=$pid proxy_http=$http

field() { grep -o "\"$1\":[^,}]*" <<<"$2" | head -1 | cut -d: -f2; }
run() { # run MODE WS PID ARGS...: one JSON line
  local ws=$2 pid=$3
  shift 3
  "$bench" --url "ws://127.0.0.1:$ws/ws" --pid "$pid" --json --warmup 1 --duration "$DURATION" "$@"
}

# deliveries/s: rate runs deliver each of RATE messages/s to CONNS/ROOMS members; sat runs have
# one member per room, so there a delivery is one client message through the proxy.
printf '%-6s %-10s %-7s %12s %9s %9s %9s %10s\n' round mode run deliveries/s p50_ms p99_ms lossPct cpu_us/msg
for round in $(seq "$ROUNDS"); do
  for mode in direct proxy; do
    if [ $mode = direct ]; then ws=$direct_ws pid=$direct_pid; else ws=$proxy_ws pid=$proxy_pid; fi
    out=$(run $mode "$ws" "$pid" --conns "$CONNS" --rooms "$ROOMS" --rate "$RATE")
    printf '%-6s %-10s %-7s %12s %9s %9s %9s %10s\n' "$round" $mode "rate" \
      "$(field deliveriesPerSec "$out")" "$(field p50 "$out")" "$(field p99 "$out")" \
      "$(field lossPct "$out")" "$(field serverCpuUsPerDelivery "$out")"
    # Saturation: one connection per room, so a delivery is one client message.
    out=$(run $mode "$ws" "$pid" --conns "$SAT_ROOMS" --rooms "$SAT_ROOMS" --rate 0 --window 32)
    printf '%-6s %-10s %-7s %12s %9s %9s %9s %10s\n' "$round" $mode "sat" \
      "$(field deliveriesPerSec "$out")" "$(field p50 "$out")" "$(field p99 "$out")" \
      "$(field lossPct "$out")" "$(field serverCpuUsPerDelivery "$out")"
  done
done
echo "proxy daemon's backend counters:"
exec 3<>"/dev/tcp/127.0.0.1/$proxy_http"
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
grep -E '^flowrelay_backend_requests_total\{endpoint="publish"' <&3 | grep -v ' 0$' || true
exec 3<&- 3>&-
