#!/usr/bin/env bash
# flowrelay's two front doors:
#   ./start.sh single [flowrelayd options]   build if needed, run one daemon on the local broker
#   ./start.sh cluster                       redis-server + 3 replicas (broker-redis) + nginx on :8080
#   ./start.sh cluster --redis-cluster       the same on a local Redis Cluster (3 masters + 3
#                                            replicas on :7000-7005, broker-redis mode: cluster)
#   ./start.sh demo                          one daemon + the example agent; prints the chat page's URL
#   ./start.sh test                          install what is missing, build, run every test
#   ./start.sh build                         install what is missing and build only
# Debian 12. As root, missing packages are installed with apt-get; otherwise the apt-get line
# to run is printed.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
build_dir=${FLOWRELAY_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)

build_deps=(build-essential cmake pkg-config libpoco-dev libyaml-cpp-dev libhiredis-dev libsystemd-dev)
test_deps=(googletest libgtest-dev libbenchmark-dev redis-server redis-sentinel nginx libnginx-mod-nchan curl valgrind
  lintian rpm systemd file python3 ccache)  # ccache: the packaging test's second tree
ci_deps=(clang libclang-rt-14-dev llvm)  # sanitizer and fuzz stages (tests/ci): clang, its runtimes, llvm-symbolizer
# The chat loop's tests: the example agent (Debian's FastAPI), its WebSocket test client, and
# the demo page in Debian's chromium driven by npm's playwright-core (tests/browser).
web_deps=(python3-fastapi python3-uvicorn python3-websocket chromium)
# Node.js >= 20 runs the JS client's and the browser tests; Debian's own (18) is installed only
# where no node is on the machine (those tests then say why they cannot run).
command -v node >/dev/null 2>&1 || web_deps+=(nodejs npm)

need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "start.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "start.sh: missing packages; run as root:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# build [targets...]: configure once (tests and benchmarks are built when their packages
# are there), then build the named targets, or everything.
build() {
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  if [ $# -gt 0 ]; then
    cmake --build "$build_dir" -j "$jobs" --target "$@"
  else
    cmake --build "$build_dir" -j "$jobs"
  fi
}
daemon_targets=(flowrelayd flowrelay-transport-ws flowrelay-transport-sse flowrelay-broker-local
  flowrelay-broker-redis)

# Fills deploy/nginx.conf's ${NAME} placeholders from the environment (and only those).
render_nginx() {
  sed -e "s|\${LISTEN}|$LISTEN|g" -e "s|\${RUN_DIR}|$RUN_DIR|g" -e "s|\${REPLICA_1}|$REPLICA_1|g" \
      -e "s|\${REPLICA_2}|$REPLICA_2|g" -e "s|\${REPLICA_3}|$REPLICA_3|g" \
      -e "s|\${SSE_1}|$SSE_1|g" -e "s|\${SSE_2}|$SSE_2|g" -e "s|\${SSE_3}|$SSE_3|g" \
      "$root/deploy/nginx.conf"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_ready() { # url seconds
  for _ in $(seq $(( $2 * 10 ))); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# A Redis Cluster of 3 masters + 3 replicas on 127.0.0.1:7000-7005 (bus ports 17000-17005),
# no persistence, joined by redis-cli; returns once every node says cluster_state:ok.
start_redis_cluster() {
  local nodes=()
  for port in 7000 7001 7002 7003 7004 7005; do
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
      --cluster-enabled yes --cluster-config-file "$RUN_DIR/nodes-$port.conf" \
      --cluster-node-timeout 2000 --dir "$RUN_DIR" >"$RUN_DIR/redis-$port.log" 2>&1 &
    pids+=($!)
    nodes+=("127.0.0.1:$port")
  done
  for port in 7000 7001 7002 7003 7004 7005; do
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
    >"$RUN_DIR/cluster-create.log" 2>&1 || { cat "$RUN_DIR/cluster-create.log" >&2; exit 1; }
  for _ in $(seq 100); do
    local ok=0
    for port in 7000 7001 7002 7003 7004 7005; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && ok=$((ok + 1))
    done
    [ "$ok" = 6 ] && return 0
    sleep 0.2
  done
  echo "start.sh: the Redis Cluster did not settle (logs in $RUN_DIR)" >&2
  exit 1
}

run_cluster() {
  local redis_port=${REDIS_PORT:-6379} front=${FRONT_PORT:-8080} redis_cluster=0
  case "${1:-}" in
    "") ;;
    --redis-cluster) redis_cluster=1 redis_port=7000 ;;
    *) echo "usage: $0 cluster [--redis-cluster]" >&2; exit 2 ;;
  esac
  local busy=("$front" 8081 8082 8083 8071 8072 8073 9091 9092 9093)
  if [ "$redis_cluster" = 1 ]; then busy+=(7000 7001 7002 7003 7004 7005 17000 17001 17002 17003 17004 17005)
  else busy+=("$redis_port"); fi
  for p in "${busy[@]}"; do
    if port_busy "$p"; then echo "start.sh: port $p is in use; stop what holds it first" >&2; exit 1; fi
  done
  RUN_DIR=$(mktemp -d /tmp/flowrelay-cluster.XXXX)
  export RUN_DIR LISTEN="127.0.0.1:$front"
  pids=()
  cleanup() {
    trap - INT TERM EXIT
    echo "stopping cluster..." >&2
    kill "$(cat "$RUN_DIR/nginx.pid" 2>/dev/null)" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$RUN_DIR"
  }
  trap cleanup INT TERM EXIT
  local broker_yaml="  url: redis://127.0.0.1:$redis_port" redis_info="redis://127.0.0.1:$redis_port"
  if [ "$redis_cluster" = 1 ]; then
    start_redis_cluster
    broker_yaml=$'  mode: cluster\n  url: redis://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002'
    redis_info="Redis Cluster 127.0.0.1:7000-7005 (3 masters + 3 replicas; redis-cli -c -p 7000)"
  else
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      >"$RUN_DIR/redis.log" 2>&1 &
    pids+=($!)
  fi
  for i in 1 2 3; do
    cat >"$RUN_DIR/replica$i.yaml" <<YAML
plugin_dir: $build_dir/plugins
log: { level: information }
transports:
  - plugin: transport-ws
    listen: 127.0.0.1:808$i
    path: /ws/
  - plugin: transport-sse
    listen: 127.0.0.1:807$i
    path: /sse/
    publish_rate: 0   # nginx limits per client (deploy/nginx.conf limit_req)
broker:
  plugin: broker-redis
$broker_yaml
channels: { prefix: "chat:", echo: true }
http: { listen: 127.0.0.1:909$i, api_key: dev-secret-key }
YAML
    "$build_dir/daemon/flowrelayd" --config "$RUN_DIR/replica$i.yaml" >"$RUN_DIR/replica$i.log" 2>&1 &
    pids+=($!)
    export "REPLICA_$i=127.0.0.1:808$i" "SSE_$i=127.0.0.1:807$i"
  done
  for i in 1 2 3; do
    wait_ready "http://127.0.0.1:909$i/ready" 10 || { echo "replica $i did not become ready:" >&2; cat "$RUN_DIR/replica$i.log" >&2; exit 1; }
  done
  render_nginx >"$RUN_DIR/nginx.conf"
  nginx -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -g 'daemon off;' &
  pids+=($!)
  for _ in $(seq 50); do port_busy "$front" && break; sleep 0.1; done
  cat >&2 <<INFO
flowrelay cluster is up (logs in $RUN_DIR):
  clients   ws://127.0.0.1:$front/ws/{conversation_id}   (nginx, round-robin over the replicas)
            http://127.0.0.1:$front/sse/{conversation_id}  (EventSource / curl -N; POST publishes)
  replica 1 ws://127.0.0.1:8081/ws/  http://127.0.0.1:9091/ready
  replica 2 ws://127.0.0.1:8082/ws/  http://127.0.0.1:9092/ready
  replica 3 ws://127.0.0.1:8083/ws/  http://127.0.0.1:9093/ready
  redis     $redis_info
  publish   curl http://127.0.0.1:9091/api/publish -H 'X-API-Key: dev-secret-key' -d '{"conversation":"42","data":"hello"}'
            (backends publish through any replica's API: offsets and history live in Redis)
Ctrl-C stops them all.
INFO
  wait -n "${pids[@]}" || true
  echo "start.sh: a cluster process exited; stopping the rest" >&2
}

# One daemon (the dev config, plus a backend section for the publish proxy) and the example
# agent (examples/agent) behind it, on a secret made for this run; the chat page is served by
# the daemon (http.demo). The backend is added here rather than in the dev config so that
# ./start.sh single keeps relaying client messages without an agent running.
run_demo() {
  for p in 8080 8090 9090 8000; do
    if port_busy "$p"; then echo "start.sh: port $p is in use; stop what holds it first" >&2; exit 1; fi
  done
  RUN_DIR=$(mktemp -d /tmp/flowrelay-demo.XXXX)
  pids=()
  cleanup() {
    trap - INT TERM EXIT
    echo "stopping the demo..." >&2
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$RUN_DIR"
  }
  trap cleanup INT TERM EXIT
  (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$RUN_DIR/backend.secret")
  { cat "$build_dir/flowrelay.dev.yaml"
    cat <<YAML
backend:
  publish_url: http://127.0.0.1:8000/flowrelay/publish
  secret_file: $RUN_DIR/backend.secret
  timeout_ms: 2000
YAML
  } >"$RUN_DIR/flowrelay.demo.yaml"
  "$build_dir/daemon/flowrelayd" --config "$RUN_DIR/flowrelay.demo.yaml" &
  pids+=($!)
  # Debian's fastapi and uvicorn live in the system interpreter, whatever python3 is on PATH.
  FLOWRELAY_API=http://127.0.0.1:9090 FLOWRELAY_API_KEY=dev-secret-key \
    FLOWRELAY_SECRET_FILE="$RUN_DIR/backend.secret" /usr/bin/python3 "$root/examples/agent/agent.py" &
  pids+=($!)
  wait_ready http://127.0.0.1:9090/ready 10 || { echo "start.sh: flowrelayd did not become ready" >&2; exit 1; }
  wait_ready http://127.0.0.1:8000/health 10 || { echo "start.sh: the example agent did not start" >&2; exit 1; }
  cat >&2 <<INFO
flowrelay demo is up:
  chat page  http://127.0.0.1:9090/demo/?conversation=demo   (open it in two windows)
  clients    ws://127.0.0.1:8080/ws/{conversation_id}
  agent      http://127.0.0.1:8000/stats   (the publish proxy posts to /flowrelay/publish)
Ctrl-C stops both.
INFO
  wait -n "${pids[@]}" || true
  echo "start.sh: a demo process exited; stopping the other" >&2
}

case "${1:-}" in
  single)
    shift
    need_packages "${build_deps[@]}"
    build "${daemon_targets[@]}"
    echo "flowrelay: ws://127.0.0.1:8080/ws/{conversation_id}, http://127.0.0.1:8090/sse/{conversation_id} (EventSource)  (health: http://127.0.0.1:9090/health; publish: POST http://127.0.0.1:9090/api/publish with X-API-Key: dev-secret-key; Ctrl-C stops)" >&2
    exec "$build_dir/daemon/flowrelayd" --config "$build_dir/flowrelay.dev.yaml" "$@"
    ;;
  cluster)
    need_packages "${build_deps[@]}" redis-server nginx
    build "${daemon_targets[@]}"
    shift
    run_cluster "$@"
    ;;
  demo)
    need_packages "${build_deps[@]}" python3-fastapi python3-uvicorn
    build "${daemon_targets[@]}"
    run_demo
    ;;
  build)
    need_packages "${build_deps[@]}" "${test_deps[@]}"
    build
    ;;
  test)
    need_packages "${build_deps[@]}" "${test_deps[@]}" "${ci_deps[@]}" "${web_deps[@]}"
    # playwright-core from npm, at the version package-lock.json pins (it never downloads a
    # browser: the tests drive /usr/bin/chromium).
    if [ ! -d "$root/tests/browser/node_modules/playwright-core" ]; then
      (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
    fi
    cmake -S "$root" -B "$build_dir" -DFLOWRELAY_BUILD_TESTS=ON -DFLOWRELAY_BUILD_BENCH=ON >/dev/null
    build
    # The load tests hold thousands of sockets: take the whole open-file allowance.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    # Stages: the normal ctest run, then tests/ci/sanitizers.sh (ASan+UBSan, TSan) and
    # tests/ci/fuzz.sh. Every stage runs even if an earlier one failed; the command fails if
    # any did, and ends with one summary of all of them. Developers may skip the slow ones:
    # FLOWRELAY_SKIP_SANITIZERS=1, FLOWRELAY_SKIP_FUZZ=1 (CI runs everything).
    ci_logs=$build_dir/ci-logs
    mkdir -p "$ci_logs"
    summary=() failed=()
    # stage <name> <log> <command...>: runs one stage with a banner, its output also in <log>.
    stage() {
      local name=$1 log=$2 t0=$SECONDS rc
      shift 2
      printf '\n######## %s ########\n' "$name"
      set +e
      "$@" 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
      set -e
      # The stage's own test counts: ctest's summary line(s), or the fuzzers' verdicts.
      local counts
      counts=$(grep -E '^[0-9]+% tests passed|^fuzz_[a-z_]+ +(PASS|FAIL)' "$log" |
        sed -E 's/^(fuzz_[a-z_]+) +(PASS|FAIL).*/\1 \2/' | paste -sd ';' - | sed 's/;/; /g' || true)
      local verdict=PASS
      if [ "$rc" != 0 ]; then verdict=FAIL; failed+=("$name"); fi
      summary+=("$(printf '%-22s %s %5ss  %s' "$name" "$verdict" $((SECONDS - t0)) "$counts")")
      printf '######## %s: %s (exit %s, %s s) ########\n' "$name" "$verdict" "$rc" $((SECONDS - t0))
    }
    skip() { summary+=("$(printf '%-22s SKIP          %s' "$1" "$2")"); }
    stage "ctest" "$ci_logs/ctest.log" \
      bash -c 'cd "$1" && ctest --output-on-failure --timeout 300 -j 1' _ "$build_dir"
    if [ "${FLOWRELAY_SKIP_SANITIZERS:-0}" = 1 ]; then
      skip "sanitizers: asan+ubsan" "FLOWRELAY_SKIP_SANITIZERS=1"
      skip "sanitizers: tsan" "FLOWRELAY_SKIP_SANITIZERS=1"
    else
      stage "sanitizers: asan+ubsan" "$ci_logs/asan.log" "$root/tests/ci/sanitizers.sh" asan
      stage "sanitizers: tsan" "$ci_logs/tsan.log" "$root/tests/ci/sanitizers.sh" tsan
    fi
    if [ "${FLOWRELAY_SKIP_FUZZ:-0}" = 1 ]; then
      skip "fuzz" "FLOWRELAY_SKIP_FUZZ=1"
    else
      stage "fuzz" "$ci_logs/fuzz.log" "$root/tests/ci/fuzz.sh"
    fi
    # Last lines of the run: every stage's verdict, then the overall one.
    printf '\n######## ./start.sh test: summary (logs in %s) ########\n' "$ci_logs"
    printf '%s\n' "${summary[@]}"
    if [ ${#failed[@]} -gt 0 ]; then
      printf 'OVERALL: FAILED (%s)\n' "$(IFS=,; echo "${failed[*]}" | sed 's/,/, /g')"
      exit 1
    fi
    echo "OVERALL: PASSED (every stage that ran passed)"
    ;;
  *)
    echo "usage: $0 single [flowrelayd options] | cluster [--redis-cluster] | demo | test | build" >&2
    exit 2
    ;;
esac
