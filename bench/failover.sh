#!/usr/bin/env bash
# Failover time of broker-redis, N runs (default 10), each a cluster test on a fresh topology
# with two flowrelayd replicas, a backend publishing 1,000 messages through one replica's API
# and viewers on both; the master is SIGKILLed after 300:
#   sentinel  ClusterSentinelTest.MasterKilledMidStream...: 1 master, 2 replicas, 3 sentinels
#             (down-after-milliseconds 2000); the time from the kill to the first acknowledged
#             publish after it
#   cluster   ClusterRedisClusterTest.AMasterKilledMidStream...: a Redis Cluster of 3 masters +
#             3 replicas (cluster-node-timeout 1000), mode: cluster; the longest pause between
#             two acknowledgements after the kill
# The test's own checks (every acknowledged message once, in order, at both viewers) hold in
# every run or the run is reported as failed.
# usage: bench/failover.sh sentinel|cluster [BUILD_DIR] [RUNS]   (loopback only)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
build=${2:-$root/build}
runs=${3:-10}
case "$mode" in
  sentinel) filter='ClusterSentinelTest.MasterKilledMidStream*' pattern='publishing resumed \([0-9]*\) ms after' ;;
  cluster) filter='ClusterRedisClusterTest.AMasterKilledMidStream*' pattern='publishing stood still \([0-9]*\) ms after' ;;
  *) echo "usage: $0 sentinel|cluster [BUILD_DIR] [RUNS]" >&2; exit 2 ;;
esac
bin=$build/tests/cluster/cluster_tests
[ -x "$bin" ] || { echo "failover.sh: $bin not built (./start.sh build)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
times=()
failed=0
for i in $(seq "$runs"); do
  out=$("$bin" --gtest_filter="$filter" 2>&1) || failed=$((failed + 1))
  ms=$(sed -n "s/.*$pattern.*/\1/p" <<<"$out")
  echo "run $i: ${ms:-?} ms"
  [ -n "$ms" ] && times+=("$ms")
done
[ ${#times[@]} -gt 0 ] || { echo "no run measured" >&2; exit 1; }
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
n=${#times[@]}
min=$(head -1 <<<"$sorted"); max=$(tail -1 <<<"$sorted")
median=$(sed -n "$(( (n + 1) / 2 ))p" <<<"$sorted")
echo "$mode failover (SIGKILL -> publishing again), $n runs: min $min ms, median $median ms, max $max ms; failed runs: $failed"
[ "$failed" -eq 0 ]
