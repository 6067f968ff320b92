#!/usr/bin/env bash
# Redis Sentinel failover time, N runs (default 10): each run is the cluster test
# ClusterSentinelTest.MasterKilledMidStreamViewersOnTwoReplicasMissNothingAcknowledged on a
# fresh topology (1 master, 2 replicas, 3 sentinels with down-after-milliseconds 2000; two
# flowrelayd replicas on the sentinel URL): the master is SIGKILLed after 300 of 1,000
# publishes, and the time until the first publish after the kill is acknowledged is read from
# its output. The test's own checks (every acknowledged message once, in order, at both
# viewers; an exact resume) hold in every run or the run is reported as failed.
# usage: bench/sentinel_failover.sh [BUILD_DIR] [RUNS]   (loopback only; needs redis-sentinel)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
runs=${2:-10}
bin=$build/tests/cluster/cluster_tests
[ -x "$bin" ] || { echo "sentinel_failover.sh: $bin not built (./start.sh build)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
times=()
failed=0
for i in $(seq "$runs"); do
  out=$("$bin" --gtest_filter='ClusterSentinelTest.MasterKilledMidStream*' 2>&1) || failed=$((failed + 1))
  ms=$(sed -n 's/.*publishing resumed \([0-9]*\) ms after.*/\1/p' <<<"$out")
  recovered=$(sed -n 's/.*resume from offset [0-9]*: recovered \([a-z]*\),.*/\1/p' <<<"$out")
  echo "run $i: resumed ${ms:-?} ms after SIGKILL; resume recovered: ${recovered:-?}"
  [ -n "$ms" ] && times+=("$ms")
done
[ ${#times[@]} -gt 0 ] || { echo "no run measured" >&2; exit 1; }
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
n=${#times[@]}
min=$(head -1 <<<"$sorted"); max=$(tail -1 <<<"$sorted")
median=$(sed -n "$(( (n + 1) / 2 ))p" <<<"$sorted")
echo "failover (SIGKILL -> first acknowledged publish), $n runs: min $min ms, median $median ms, max $max ms; failed runs: $failed"
[ "$failed" -eq 0 ]
