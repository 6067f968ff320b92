#!/usr/bin/env bash
# A/B: two builds of flowrelayd side by side in one run, on the figures a change must not
# regress: fanout CPU per delivery, saturation (local broker, and Redis with 2 replicas) and
# cluster p50. The runs alternate A, B, B, A, A, B... so that the machine's drift hits both alike;
# each figure is the median of the rounds. The same client (this tree's flowrelay-bench) drives
# both.
# usage: bench/ab_compare.sh BASELINE_DIR [CANDIDATE_DIR] [--rounds N]
#   a DIR holds daemon/flowrelayd and plugins/ (a build tree, or a copy of one); CANDIDATE_DIR
#   defaults to this tree's build (FLOWRELAY_BUILD_DIR or ./build).
# Loopback only; every server it starts is stopped on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:?usage: bench/ab_compare.sh BASELINE_DIR [CANDIDATE_DIR] [--rounds N]}
shift
cand=${FLOWRELAY_BUILD_DIR:-$root/build}
if [ $# -gt 0 ] && [ "${1:0:2}" != "--" ]; then cand=$1; shift; fi
rounds=3
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
bench=$root/build/bench/flowrelay-bench
[ -x "$bench" ] || bench=$cand/bench/flowrelay-bench
for d in "$base" "$cand"; do
  [ -x "$d/daemon/flowrelayd" ] || [ -x "$d/flowrelayd" ] || { echo "no flowrelayd in $d" >&2; exit 2; }
done
daemon_of() { if [ -x "$1/daemon/flowrelayd" ]; then echo "$1/daemon/flowrelayd"; else echo "$1/flowrelayd"; fi; }
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/frab.XXXX)
pids=()
# start() runs in a command substitution (a subshell): its pids never reach `pids`, so the
# daemons are also found by their config folder (an early exit used to leave them running).
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f -- "--config $work/" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_http() { for _ in $(seq 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

rport=26389
redis-server --port $rport --bind 127.0.0.1 --save "" --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
wait_port $rport

# start DIR NAME WS_PORT HTTP_PORT BROKER_YAML: prints the pid
start() {
  cat >"$work/$2.yaml" <<YAML
plugin_dir: $1/plugins
log: { level: warning }
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:$3
    publish_rate: 0
    max_outbound_bytes: 67108864
broker: $5
http: { listen: 127.0.0.1:$4 }
YAML
  "$(daemon_of "$1")" --config "$work/$2.yaml" >"$work/$2.log" 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_http "http://127.0.0.1:$4/ready" >&2 || { cat "$work/$2.log" >&2; exit 1; }
  echo "$pid"
}

results=$work/results.tsv
: >"$results"
# run LABEL METRIC FIELD args...: one flowrelay-bench run, one row
run() {
  local label=$1 metric=$2 field=$3
  shift 3
  local r
  r=$("$bench" --json "$@" 2>/dev/null | tail -1)
  local v
  v=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get(sys.argv[2]))' "$r" "$field")
  local loss
  loss=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get("lossPct"))' "$r")
  printf '%s\t%s\t%s\t%s\n' "$label" "$metric" "$v" "$loss" >>"$results"
  echo "$label $metric $field=$v loss=$loss" >&2
}

port=18500
for round in $(seq "$rounds"); do
  # Who goes first alternates too: on a loaded machine the first run of a round was seen to
  # win by ~10% whichever build it was (A/B swapped gave the same ratio the other way).
  sides="A B"
  [ $((round % 2)) = 0 ] && sides="B A"
  for side in $sides; do
    dir=$base
    [ $side = B ] && dir=$cand
    p=$port
    port=$((port + 10))
    local_pid=$(start "$dir" "$side$round-local" $p $((p + 1)) "{ plugin: broker-local }")
    ra=$(start "$dir" "$side$round-ra" $((p + 2)) $((p + 3)) "{ plugin: broker-redis, url: 'redis://127.0.0.1:$rport' }")
    rb=$(start "$dir" "$side$round-rb" $((p + 4)) $((p + 5)) "{ plugin: broker-redis, url: 'redis://127.0.0.1:$rport' }")
    url=ws://127.0.0.1:$p/ws
    run $side fanout_cpu_us serverCpuUsPerDelivery --url "$url" --conns 1000 --rooms 10 --rate 100 --duration 5 --pid "$local_pid"
    run $side saturation_local deliveriesPerSec --url "$url" --conns 1000 --rooms 10 --rate 0 --window 128 --warmup 1 --duration 5 --pid "$local_pid"
    run $side saturation_redis2x deliveriesPerSec --url ws://127.0.0.1:$((p + 2))/ws --url ws://127.0.0.1:$((p + 4))/ws --conns 1000 --rooms 10 --rate 0 --window 128 --warmup 1 --duration 5 --pid "$ra,$rb"
    run $side cluster_p50_ms p50 --url ws://127.0.0.1:$((p + 2))/ws --url ws://127.0.0.1:$((p + 4))/ws --conns 1000 --rooms 10 --rate 100 --duration 5 --publish-url-index 0 --pid "$ra,$rb"
    for pid in $local_pid $ra $rb; do kill "$pid" 2>/dev/null || true; done
    redis-cli -p $rport FLUSHALL >/dev/null
  done
done

python3 - "$results" "$base" "$cand" "$rounds" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
metrics = ["fanout_cpu_us", "saturation_local", "saturation_redis2x", "cluster_p50_ms"]
better_low = {"fanout_cpu_us", "cluster_p50_ms"}
print(f"A = {sys.argv[2]}\nB = {sys.argv[3]}\nmedian of {sys.argv[4]} alternating rounds each\n")
print("| figure | A (baseline) | B (candidate) | B / A | loss % A / B |")
print("|---|---|---|---|---|")
for m in metrics:
    val = lambda side: [float(r[2]) for r in rows if r[0] == side and r[1] == m and r[2] != "None"]
    loss = lambda side: max([float(r[3]) for r in rows if r[0] == side and r[1] == m and r[3] != "None"] or [float("nan")])
    a, b = val("A"), val("B")
    if not a or not b:
        print(f"| {m} | {a} | {b} | – | |")
        continue
    ma, mb = statistics.median(a), statistics.median(b)
    note = "lower is better" if m in better_low else "higher is better"
    print(f"| {m} ({note}) | {ma:.3f} | {mb:.3f} | {mb / ma:.2f} | {loss('A')} / {loss('B')} |")
PY
