#!/usr/bin/env bash
# with_redis_cluster.sh COMMAND [ARG...]
# Runs COMMAND next to a private Redis Cluster of 3 masters (no replicas) on free loopback ports
# (each node's bus port, port + 10000, free too), with
# FLOWRELAY_BROKER_OPTIONS="mode=cluster;url=redis://127.0.0.1:p1,...[;<previous options>]" in
# its environment, so that a suite written for one Redis runs on broker-redis' mode: cluster;
# returns COMMAND's exit code and stops the nodes.
set -euo pipefail

redis_server=${REDIS_SERVER:-redis-server}
redis_cli=${REDIS_CLI:-redis-cli}
dir=$(mktemp -d "${TMPDIR:-/tmp}/flowrelay-redis-cluster.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Three consecutive ports below 30000 (bus ports below 40000, under the ephemeral range).
for _ in $(seq 50); do
  base=$((20000 + RANDOM % 9000))
  ok=1
  for p in $base $((base + 1)) $((base + 2)); do
    if busy "$p" || busy $((p + 10000)); then ok=0; fi
  done
  [ "$ok" = 1 ] && break
done
[ "$ok" = 1 ] || { echo "with_redis_cluster.sh: no free ports" >&2; exit 1; }
ports=($base $((base + 1)) $((base + 2)))

nodes=()
for p in "${ports[@]}"; do
  # `timeout` bounds each node's life even if this script is killed before its trap runs.
  timeout 900 "$redis_server" --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
    --cluster-enabled yes --cluster-config-file "$dir/nodes-$p.conf" --cluster-node-timeout 2000 \
    --dir "$dir" --logfile "$dir/redis-$p.log" &
  pids+=($!)
  nodes+=("127.0.0.1:$p")
done
for p in "${ports[@]}"; do
  for _ in $(seq 200); do "$redis_cli" -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
done
"$redis_cli" --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
  >"$dir/create.log" 2>&1 || { cat "$dir/create.log" "$dir"/redis-*.log >&2; exit 1; }
for _ in $(seq 200); do
  settled=0
  for p in "${ports[@]}"; do
    "$redis_cli" -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && settled=$((settled + 1))
  done
  [ "$settled" = 3 ] && break
  sleep 0.05
done
[ "$settled" = 3 ] || { echo "with_redis_cluster.sh: the cluster did not settle" >&2; exit 1; }

seeds=$(IFS=,; echo "${nodes[*]}")
export FLOWRELAY_BROKER_OPTIONS="mode=cluster;url=redis://$seeds${FLOWRELAY_BROKER_OPTIONS:+;$FLOWRELAY_BROKER_OPTIONS}"
"$@"
