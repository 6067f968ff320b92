#!/usr/bin/env bash
# Fuzzing stage of CI (./start.sh test runs it last): builds the libFuzzer targets of tests/fuzz
# with clang in a build folder of their own and runs each for FUZZ_SECONDS on a copy of its
# committed corpus (tests/fuzz/corpus/<target>/; the repository is never written), FUZZ_JOBS
# targets at a time. Fails if any target crashes, leaks, times out or runs out of memory, and
# prints the reproducer.
#
#   tests/ci/fuzz.sh [target...]        (default: every target)
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 30: with the stored corpus of every target,
#                   30 s still adds hundreds of new units each; CI must stay under 40 min)
#   FUZZ_JOBS       targets run in parallel (default 2)
#   FUZZ_BUILD_DIR  build folder (default <repo>/build-fuzz)
#   FUZZ_BUILD_JOBS parallel compile jobs (default: nproc)
#
# Reproduce a crash:  build-fuzz/tests/fuzz/<target> <reproducer file>
# Then commit the reproducer as tests/fuzz/corpus/<target>/regression-<what>.bin so that the
# fuzz.<target>.corpus ctest of a fuzz build (and every later fuzz run) replays it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${FUZZ_SECONDS:-30}
parallel=${FUZZ_JOBS:-2}
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
build_jobs=${FUZZ_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}
all_targets=(fuzz_frame_parser fuzz_handshake fuzz_config fuzz_ws_options fuzz_envelope
  fuzz_sse_request)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

t0=$SECONDS
printf '\n==== fuzz: build (%s) ====\n' "$build"
export CC=clang CXX=clang++
if [ -f "$build/CMakeCache.txt" ] &&
  ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++$' "$build/CMakeCache.txt"; then
  echo "fuzz.sh: $build was configured with another compiler; reconfiguring from scratch"
  rm -rf "$build"
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOWRELAY_FUZZ=ON \
  -DFLOWRELAY_BUILD_BENCH=OFF -DFLOWRELAY_BUILD_TESTS=ON >/dev/null
cmake --build "$build" -j "$build_jobs" --target fuzz_targets
echo "fuzz.sh: build took $((SECONDS - t0)) s"

if command -v llvm-symbolizer >/dev/null; then
  export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
fi
# Leaks count as findings; UBSan stops at the first report (the targets are also built with
# -fno-sanitize-recover=undefined).
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

run=$build/fuzz-run
rm -rf "$run"
mkdir -p "$run"

# fuzz_one <target>: runs one fuzzer; its output goes to $run/<target>/fuzz.log.
fuzz_one() {
  local t=$1 dir=$run/$1 bin=$build/tests/fuzz/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp "$root/tests/fuzz/corpus/$t/"* "$dir/corpus/" 2>/dev/null || true
  local dict=()
  [ -f "$root/tests/fuzz/dict/$t.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$t.dict")
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: per-process memory cap.
  "$bin" "$dir/corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$dir/artifacts/" -print_final_stats=1 >"$dir/fuzz.log" 2>&1
}

printf '\n==== fuzz: %s, %s s each, %s at a time ====\n' "${targets[*]}" "$seconds" "$parallel"
declare -A pid_target=()
declare -A status=()
pending=("${targets[@]}")
while [ ${#pending[@]} -gt 0 ] || [ ${#pid_target[@]} -gt 0 ]; do
  while [ ${#pending[@]} -gt 0 ] && [ ${#pid_target[@]} -lt "$parallel" ]; do
    t=${pending[0]}
    pending=("${pending[@]:1}")
    [ -x "$build/tests/fuzz/$t" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
    fuzz_one "$t" &
    pid_target[$!]=$t
    echo "fuzz.sh: started $t"
  done
  done_pid=
  rc=0
  wait -n -p done_pid "${!pid_target[@]}" || rc=$?
  t=${pid_target[$done_pid]}
  unset "pid_target[$done_pid]"
  status[$t]=$rc
  echo "fuzz.sh: $t finished (exit $rc)"
done

failed=0
printf '\n==== fuzz: results ====\n'
for t in "${targets[@]}"; do
  dir=$run/$t
  stats=$(grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$dir/fuzz.log" |
    sed 's/^stat:://' | tr '\n' ' ' || true)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  mapfile -t artifacts < <(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' \
    -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  if [ "${status[$t]}" = 0 ] && [ ${#artifacts[@]} -eq 0 ]; then
    printf '%-20s PASS  %s corpus=%s\n' "$t" "$stats" "$corpus"
    continue
  fi
  failed=1
  printf '%-20s FAIL  (exit %s) %s\n' "$t" "${status[$t]}" "$stats"
  echo "---- $t: end of $dir/fuzz.log"
  # The sanitizer / libFuzzer report: from the first "==ERROR"/"deadly signal" line on.
  awk '/==[0-9]+==ERROR|ERROR: libFuzzer|runtime error:|invariant failed|non-ConfigError/ {p=1} p' \
    "$dir/fuzz.log" | head -120
  for a in "${artifacts[@]}"; do
    echo "---- reproducer: $a ($(stat -c %s "$a") bytes)"
    echo "     hex: $(head -c 512 "$a" | od -An -tx1 -v | tr -d ' \n')"
    echo "     run: $build/tests/fuzz/$t $a"
  done
  [ ${#artifacts[@]} -gt 0 ] || echo "     (no reproducer written; see $dir/fuzz.log)"
done
echo "fuzz.sh: fuzz stage took $((SECONDS - t0)) s"
if [ $failed != 0 ]; then
  echo "fuzz.sh: FAILED: a fuzz target found a bug (reproducers above)" >&2
  exit 1
fi
