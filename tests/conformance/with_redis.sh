#!/usr/bin/env bash
# with_redis.sh COMMAND [ARG...]
# Runs COMMAND next to a private redis-server listening on a unix socket only (no port to
# collide with), with FLOWRELAY_BROKER_OPTIONS="url=unix://<socket>[;<previous options>]" in
# its environment; returns COMMAND's exit code and stops the server.
set -euo pipefail

redis_server=${REDIS_SERVER:-redis-server}
dir=$(mktemp -d "${TMPDIR:-/tmp}/flowrelay-redis.XXXXXX")
sock=$dir/redis.sock
# `timeout` bounds the server's life even if this script is killed before its trap runs.
timeout 900 "$redis_server" --port 0 --unixsocket "$sock" --unixsocketperm 700 \
  --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

for _ in $(seq 200); do
  [[ -S "$sock" ]] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "with_redis.sh: redis-server exited:" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
  fi
  sleep 0.05
done
[[ -S "$sock" ]] || { echo "with_redis.sh: no socket $sock after 10 s" >&2; exit 1; }

export FLOWRELAY_BROKER_OPTIONS="url=unix://$sock${FLOWRELAY_BROKER_OPTIONS:+;$FLOWRELAY_BROKER_OPTIONS}"
"$@"
