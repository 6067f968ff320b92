#!/usr/bin/env bash
# CTest bench.loadgen.smoke: starts the real flowrelayd (broker-local, transport-ws on a free
# port) and runs flowrelay-bench against it: 200 connections, 10 rooms, 200 msg/s for 2 s.
# Passes when every expected delivery arrived: received == expected > 0 and lossPct == 0.
# With TRANSPORT sse the same run goes over transport-sse (flowrelay-bench --transport sse:
# SSE streams, POST publishing) and no POST may be refused.
# usage: loadgen_smoke.sh FLOWRELAYD FLOWRELAY_BENCH PLUGIN_DIR [ws|sse]
set -euo pipefail
daemon=$1 bench=$2 plugin_dir=$3 transport=${4:-ws}
case $transport in ws|sse) ;; *) echo "usage: loadgen_smoke.sh FLOWRELAYD FLOWRELAY_BENCH PLUGIN_DIR [ws|sse]" >&2; exit 2;; esac

work=$(mktemp -d /tmp/flowrelay-smoke.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 30000))
    port_busy "$p" || { echo "$p"; return 0; }
  done
  echo "no free port found" >&2
  return 1
}
ready() { # GET /ready on the operator port answers 200
  local status
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  read -r -t 2 _ status _ <&3 || status=
  exec 3<&- 3>&-
  [ "$status" = 200 ]
}

started=0
for attempt in 1 2 3; do # a chosen port can be taken before the daemon binds it: retry
  ws_port=$(free_port)
  http_port=$(free_port)
  [ "$ws_port" != "$http_port" ] || continue
  if [ "$transport" = sse ]; then
    transport_yaml="  - plugin: transport-sse
    listen: 127.0.0.1:$ws_port
    path: /sse/"
  else
    transport_yaml="  - plugin: transport-ws
    listen: 127.0.0.1:$ws_port
    path: /ws/"
  fi
  cat >"$work/flowrelay.yaml" <<EOF
plugin_dir: $plugin_dir
log: { level: warning }
shutdown_timeout_ms: 1000
transports:
$transport_yaml
broker:
  plugin: broker-local
channels: { prefix: "chat:", echo: true }
http: { listen: 127.0.0.1:$http_port }
EOF
  "$daemon" --config "$work/flowrelay.yaml" >"$work/daemon.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    if ready "$http_port" 2>/dev/null; then started=1; break; fi
    sleep 0.1
  done
  [ $started = 1 ] && break
  echo "attempt $attempt: flowrelayd did not become ready:" >&2
  cat "$work/daemon.log" >&2
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
done
[ $started = 1 ] || { echo "FAIL: could not start flowrelayd" >&2; exit 1; }

if [ "$transport" = sse ]; then
  target=(--transport sse --url "http://127.0.0.1:$ws_port/sse")
else
  target=(--url "ws://127.0.0.1:$ws_port/ws")
fi
out=$("$bench" "${target[@]}" --conns 200 --rooms 10 --rate 200 \
  --duration 2 --drain 2 --pid "$pid" --json)
echo "$out"

field() { # the value of "name": in the JSON line (numbers and null only)
  local v
  v=$(grep -o "\"$1\":[^,}]*" <<<"$out" | head -1 | cut -d: -f2)
  [ -n "$v" ] || { echo "FAIL: no field $1 in: $out" >&2; exit 1; }
  echo "$v"
}
expected=$(field expected)
received=$(field received)
loss=$(field lossPct)
open=$(field open)

fail=0
[ "$open" = 200 ] || { echo "FAIL: open=$open, want 200" >&2; fail=1; }
[ "$expected" -gt 0 ] || { echo "FAIL: expected=$expected, want > 0" >&2; fail=1; }
[ "$received" = "$expected" ] || { echo "FAIL: received=$received != expected=$expected" >&2; fail=1; }
[ "$loss" = "0.000" ] || { echo "FAIL: lossPct=$loss, want 0" >&2; fail=1; }
if [ "$transport" = sse ]; then
  refused=$(field publishErrors)
  [ "$refused" = 0 ] || { echo "FAIL: publishErrors=$refused, want 0" >&2; fail=1; }
fi
if [ $fail = 1 ]; then
  echo "--- flowrelayd log" >&2
  cat "$work/daemon.log" >&2
  exit 1
fi
echo "PASS: received == expected == $expected, lossPct 0"
