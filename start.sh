#!/usr/bin/env bash
# flowrelay's two front doors:
#   ./start.sh single [flowrelayd options]   build if needed, run one daemon on the local broker
#   ./start.sh test                          install what is missing, build, run every test
#   ./start.sh build                         install what is missing and build only
# Debian 12. As root, missing packages are installed with apt-get; otherwise the apt-get line
# to run is printed.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
build_dir=${FLOWRELAY_BUILD_DIR:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)

build_deps=(build-essential cmake pkg-config libpoco-dev libyaml-cpp-dev libhiredis-dev)
test_deps=(googletest libgtest-dev libbenchmark-dev redis-server nginx libnginx-mod-nchan curl)

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

build() {
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$build_dir" -j "$jobs"
}

case "${1:-}" in
  single)
    shift
    need_packages "${build_deps[@]}"
    build -DFLOWRELAY_BUILD_TESTS=OFF -DFLOWRELAY_BUILD_BENCH=OFF
    echo "flowrelay: ws://127.0.0.1:8080/ws/{conversation_id}  (health: http://127.0.0.1:9090/health; Ctrl-C stops)" >&2
    exec "$build_dir/daemon/flowrelayd" --config "$build_dir/flowrelay.dev.yaml" "$@"
    ;;
  build)
    need_packages "${build_deps[@]}" "${test_deps[@]}"
    build
    ;;
  test)
    need_packages "${build_deps[@]}" "${test_deps[@]}"
    build
    # The load tests hold thousands of sockets: take the whole open-file allowance.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    cd "$build_dir"
    ctest --output-on-failure --timeout 300 -j 1
    ;;
  *)
    echo "usage: $0 single [flowrelayd options] | test | build" >&2
    exit 2
    ;;
esac
