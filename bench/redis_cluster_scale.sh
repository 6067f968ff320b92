#!/usr/bin/env bash
# Publishes with history per second through broker-redis mode: cluster on a Redis Cluster of 1
# master and of 3 (issue #13), alternated ROUNDS times: two flowrelayd replicas (transport-ws,
# history on: history_size 2000), flowrelay-bench saturating 400 conversations with one client
# each (each publishes with a window of 16 and receives its own messages, so a delivery is a
# publish), conversations spread over the masters by their slots. Per run: publishes/s, the
# daemons' CPU per publish, and each master's CPU per publish (INFO cpu), i.e. what one Redis
# spends per append script and how the load splits. No replicas: they would only add CPU.
# usage: bench/redis_cluster_scale.sh [BUILD_DIR] [ROUNDS]   (default ./build, 2; loopback only)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
rounds=${2:-2}
work=$(mktemp -d /tmp/flowrelay-cluster-scale.XXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
ports=(27101 27102 27103)  # bus ports 37101-37103

start_cluster() {  # MASTERS
  local n=$1 nodes=()
  for p in "${ports[@]:0:$n}"; do
    rm -f "$work/nodes-$p.conf"
    redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --cluster-enabled yes \
      --cluster-config-file "$work/nodes-$p.conf" --dir "$work" >"$work/redis-$p.log" 2>&1 &
    pids+=($!)
    nodes+=("127.0.0.1:$p")
  done
  for p in "${ports[@]:0:$n}"; do wait_port "$p"; done
  if [ "$n" = 1 ]; then
    redis-cli -p "${ports[0]}" CLUSTER ADDSLOTSRANGE 0 16383 >/dev/null
  else
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$work/create.log" 2>&1
  fi
  for _ in $(seq 100); do
    local ok=0
    for p in "${ports[@]:0:$n}"; do
      redis-cli -p "$p" CLUSTER INFO | grep -q '^cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" = "$n" ] && return 0
    sleep 0.2
  done
  echo "redis_cluster_scale.sh: the cluster did not settle" >&2
  exit 1
}

start_daemon() {  # NAME WS_PORT SEEDS -> pid
  cat >"$work/$1.yaml" <<YAML
plugin_dir: $build/plugins
log: { level: warning }
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:$2
    publish_rate: 0
broker: { plugin: broker-redis, mode: cluster, url: '$3', history_size: 2000 }
http: { listen: off }
YAML
  "$build/daemon/flowrelayd" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  echo $!
}

redis_cpu_us() {  # PORT -> used_cpu_user + used_cpu_sys in microseconds
  redis-cli -p "$1" INFO cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%d", s * 1000000 }'
}

for round in $(seq "$rounds"); do
  for masters in 1 3; do
    start_cluster "$masters"
    seeds=$(printf '127.0.0.1:%s,' "${ports[@]:0:$masters}"); seeds="redis://${seeds%,}"
    a=$(start_daemon a 18581 "$seeds"); b=$(start_daemon b 18582 "$seeds")
    pids+=("$a" "$b")
    wait_port 18581; wait_port 18582; sleep 1
    before=()
    for p in "${ports[@]:0:$masters}"; do
      redis-cli -p "$p" CONFIG RESETSTAT >/dev/null
      before+=("$(redis_cpu_us "$p")")
    done
    json=$("$build/bench/flowrelay-bench" --url ws://127.0.0.1:18581/ws --url ws://127.0.0.1:18582/ws \
      --conns 400 --rooms 400 --rate 0 --window 16 --warmup 1 --duration 5 --pid "$a,$b" --json 2>/dev/null)
    cpu=(); scripts=(); i=0
    for p in "${ports[@]:0:$masters}"; do
      cpu+=($(( $(redis_cpu_us "$p") - ${before[$i]} )))
      # calls:usec of the append script (EVALSHA) on this master since the reset
      scripts+=("$(redis-cli -p "$p" INFO commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),usec=\([0-9]*\),.*/\1:\2/p')")
      i=$((i + 1))
    done
    python3 - "$masters" "$json" "${cpu[*]}" "${scripts[*]}" <<'PY'
import json, sys
masters, d = int(sys.argv[1]), json.loads(sys.argv[2])
cpu = [int(c) for c in sys.argv[3].split()]
scripts = [tuple(int(x) for x in s.split(":")) for s in sys.argv[4].split()]
calls = sum(c for c, _ in scripts) or 1
# Each master's share of the scripts run (how the conversations split over the masters), its
# time per script (Redis' own, commandstats), and its whole CPU (INFO cpu: scripts, Pub/Sub,
# networking) over the run per script it ran.
split = " ".join("%.0f%%" % (100.0 * c / calls) for c, _ in scripts)
per_script = " ".join("%.1f" % (u / c if c else 0) for c, u in scripts)
per_cpu = " ".join("%.1f" % (cu / c if c else 0) for cu, (c, _) in zip(cpu, scripts))
print("masters=%d publishes/s %7d  daemons cpu us/publish %5.2f  scripts split %s  us/script %s"
      "  redis cpu us/script %s  p50 %.1f ms  loss %.3f%%"
      % (masters, d["deliveriesPerSec"], d["serverCpuUsPerDelivery"], split, per_script, per_cpu,
         d["p50"], d["lossPct"]))
PY
    kill "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
    for p in "${ports[@]:0:$masters}"; do redis-cli -p "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; done
    sleep 0.5
  done
done
