#!/usr/bin/env bash
# Reply streams (issue 15) through two flowrelayd replicas on broker-redis and one Redis, history
# and compaction on (history_size 2000): flowrelay-reply-bench's three modes, ROUNDS times each.
#   fanout:   REPLIES concurrent replies at each rate of RATES (deltas/s per reply), VIEWERS
#             envelope viewers each (spread over both replicas), the producer on both replicas'
#             publish API (batches of 50): delivered deltas/s, p50/p99 send-to-receive,
#             loss/duplicates per viewer and reply
#   resume:   one reply of RESUME_DELTAS deltas; a client resuming in its middle and a late
#             joiner, while it streams and after it ended, against replaying every delta
#   producer: deltas/s accepted by one replica's API, single requests and batches of 50, with
#             server and Redis CPU per delta
# usage: bench/reply_bench.sh [BUILD_DIR]   (default ./build; needs flowrelayd, the plugins and
#        flowrelay-reply-bench built there, redis-server on PATH; loopback only)
# env: ROUNDS (2) REPLIES (1000) VIEWERS (5) RATES ("50 5 2") DURATION (20)
#      RESUME_DELTAS (10000) PRODUCER_SECONDS (10) PRODUCER_CONNS (8)
#      MODES ("fanout resume producer")
set -euo pipefail
build=${1:-./build}
daemon=$build/daemon/flowrelayd
bench=$build/bench/flowrelay-reply-bench
plugin_dir=$build/plugins
ROUNDS=${ROUNDS:-2} REPLIES=${REPLIES:-1000} VIEWERS=${VIEWERS:-5} RATES=${RATES:-50 5 2}
DURATION=${DURATION:-20} RESUME_DELTAS=${RESUME_DELTAS:-10000}
PRODUCER_SECONDS=${PRODUCER_SECONDS:-10} PRODUCER_CONNS=${PRODUCER_CONNS:-8}
MODES=${MODES:-fanout resume producer}
for f in "$daemon" "$bench"; do
  [ -x "$f" ] || { echo "missing $f (build it first)" >&2; exit 1; }
done
command -v redis-server >/dev/null || { echo "redis-server not on PATH" >&2; exit 1; }

work=$(mktemp -d /tmp/flowrelay-reply-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

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
redis_port=$port
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=($!)
redis_pid=$!
for _ in $(seq 50); do port_busy "$redis_port" && break; sleep 0.1; done

# start_replica NAME: sets $ws $http $pid
start_replica() {
  local name=$1
  free_port; ws=$port
  free_port; http=$port
  cat >"$work/$name.yaml" <<YAML
plugin_dir: $plugin_dir
log: { level: warning }
shutdown_timeout_ms: 1000
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:$ws
    path: /ws/
broker:
  plugin: broker-redis
  url: redis://127.0.0.1:$redis_port
  history_size: 2000
http:
  listen: 127.0.0.1:$http
  api_key: bench-key
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
start_replica a
a_ws=$ws a_http=$http a_pid=$pid
start_replica b
b_ws=$ws b_http=$http b_pid=$pid
echo "# redis :$redis_port (pid $redis_pid); replica a ws :$a_ws api :$a_http (pid $a_pid); replica b ws :$b_ws api :$b_http (pid $b_pid)" >&2

# redis_stats reset | redis_stats: Redis' own time per script call since the reset
redis_stats() {
  command -v redis-cli >/dev/null || return 0
  if [ "${1:-}" = reset ]; then
    redis-cli -p "$redis_port" CONFIG RESETSTAT >/dev/null
    return 0
  fi
  redis-cli -p "$redis_port" INFO commandstats | grep -E '^cmdstat_(evalsha|eval|fcall|publish):' |
    sed -E 's/^cmdstat_([a-z]+):calls=([0-9]+),usec=[0-9]+,usec_per_call=([0-9.]+).*/#   redis \1: \2 calls, \3 us each/' >&2
}

both=(--ws 127.0.0.1:$a_ws --ws 127.0.0.1:$b_ws --pid "$a_pid" --pid "$b_pid" --redis "$redis_port")
status=0
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    case $mode in
      fanout)
        for rate in $RATES; do
          echo "# round $round: fanout, $REPLIES replies at $rate deltas/s" >&2
          redis_stats reset
          timeout $((DURATION + 120)) "$bench" --mode fanout --api 127.0.0.1:$a_http \
            --api 127.0.0.1:$b_http "${both[@]}" --replies "$REPLIES" --viewers "$VIEWERS" \
            --rate "$rate" --duration "$DURATION" || { echo "# fanout exited $?" >&2; status=1; }
          redis_stats
        done
        ;;
      resume)
        echo "# round $round: resume" >&2
        timeout 120 "$bench" --mode resume --api 127.0.0.1:$a_http --ws 127.0.0.1:$b_ws \
          --reply-deltas "$RESUME_DELTAS" || { echo "# resume exited $?" >&2; status=1; }
        ;;
      producer)
        for batch in 1 50; do
          echo "# round $round: producer, batch $batch" >&2
          redis_stats reset
          timeout $((PRODUCER_SECONDS + 60)) "$bench" --mode producer --api 127.0.0.1:$a_http \
            --producers "$PRODUCER_CONNS" --batch $batch --duration "$PRODUCER_SECONDS" \
            --pid "$a_pid" --pid "$b_pid" --redis "$redis_port" ||
            { echo "# producer exited $?" >&2; status=1; }
          redis_stats
        done
        ;;
    esac
    sleep 1
  done
done
for n in a b; do
  if grep -qiE 'error|fatal' "$work/$n.log"; then
    echo "# replica $n logged errors:" >&2
    grep -iE 'error|fatal' "$work/$n.log" | tail -5 >&2
  fi
done
exit $status
