#!/usr/bin/env bash
# The packaging test (CTest label "packaging", registered by tests/packaging/CMakeLists.txt).
#   package_test.sh --source DIR --work DIR [--cmake CMAKE] [--cpack CPACK]
#  1. builds the packages in two trees under --work, daemon + plugins only, kept between runs
#     so a re-run rebuilds only what changed: deb/ (Debian layout, multiarch libdir) and
#     rpm/ (CMAKE_INSTALL_LIBDIR=lib64)
#  2. lintian on both .deb (an error fails), asserts the dpkg-deb and rpm -qlp listings
#  3. installs both .deb with apt-get, checks files, user, conffile, unit (systemd-analyze);
#     reinstalls over an edited config, which must survive
#  4. runs the installed flowrelayd as user flowrelay with the unit's ExecStart command line
#     and the installed config (if 8080/9090 are taken: in a private network namespace, else
#     a copy on free ports), exchanges a WebSocket message, reloads (SIGHUP), stops (SIGTERM:
#     the client gets close 1001, the daemon exits 0)
#  5. builds the SDK example out of tree against the installed flowrelay-dev, loads it
#  6. dpkg --remove (the config stays), dpkg --purge (nothing stays)
# Whatever happens, the trap purges what the test installed. The flowrelay system user
# survives the purge (Debian keeps system users; checked), and the test then deletes it if it
# did not exist before, so that every run starts from the same machine.
set -euo pipefail

src="" work="" cmake=cmake cpack=cpack
while [ $# -gt 0 ]; do
  case "$1" in
    --source) src=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --cmake) cmake=$2; shift 2 ;;
    --cpack) cpack=$2; shift 2 ;;
    *) echo "usage: $0 --source DIR --work DIR [--cmake CMAKE] [--cpack CPACK]" >&2; exit 2 ;;
  esac
done
[ -n "$src" ] && [ -n "$work" ] || { echo "usage: $0 --source DIR --work DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
ws_client=$here/ws_client.py
jobs=$(nproc 2>/dev/null || echo 2)
started=$SECONDS

step() { echo; echo "== [$((SECONDS - started))s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# expect_lines LISTING LINE...: every LINE is a whole line of LISTING.
expect_lines() {
  local listing=$1; shift
  for line in "$@"; do
    grep -qxF -- "$line" <<<"$listing" || fail "missing '$line' in:"$'\n'"$listing"
  done
}
# run_logged LOG CMD...: quiet unless it fails.
run_logged() {
  local log=$1; shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "'$*' failed (log above)"; }
}
cache_value() { sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt"; }
package_status() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

[ "$(id -u)" = 0 ] || fail "needs root: it installs and purges packages"
for p in flowrelay flowrelay-dev; do
  status=$(package_status "$p")
  case "$status" in
    "" | not-installed) ;;
    *) fail "package $p is already on this machine ($status); the test installs and purges" \
      "its own and will not touch an existing one: dpkg --purge $p first" ;;
  esac
done
user_existed=no
getent passwd flowrelay >/dev/null && user_existed=yes

tmp=$(mktemp -d /tmp/flowrelay-pkgtest.XXXXXX)
chmod 755 "$tmp" # the daemon runs as flowrelay and reads its config copy from here
installed=no daemon_pid="" hold_pid="" netns=""
cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  for pid in $hold_pid $daemon_pid; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  [ -z "$netns" ] || ip netns delete "$netns"
  if [ "$installed" = yes ]; then
    echo "cleanup: purging the packages" >&2
    dpkg --purge flowrelay-dev flowrelay >/dev/null
  fi
  if [ "$user_existed" = no ] && getent passwd flowrelay >/dev/null; then
    userdel flowrelay
    getent group flowrelay >/dev/null && groupdel flowrelay
  fi
  rm -rf "$tmp"
  if [ $rc -eq 0 ]; then
    echo "== packaging test passed in $((SECONDS - started))s"
  else
    echo "== packaging test FAILED after $((SECONDS - started))s" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. build the packages ------------------------------------------------------------------
# Debian's hardening flags (lintian checks for them), taken in the source folder so that
# -ffile-prefix-map, and with it the flags, are the same on every run.
flags=$(cd "$src" && export DEB_BUILD_MAINT_OPTIONS=hardening=+all &&
  printf '%s\n' "$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
    "$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
    "$(dpkg-buildflags --get LDFLAGS)")
mapfile -t flag <<<"$flags"
# The two trees compile the same sources with the same flags (only install paths differ, and
# with them the daemon's default plugin dir): through ccache the second tree compiles almost
# nothing. Paths below $work are hashed relative to it, and the working directory not at all,
# so deb/ and rpm/ share entries.
launcher=()
if command -v ccache >/dev/null; then
  export CCACHE_DIR=$work/ccache CCACHE_BASEDIR=$work CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
build_tree() { # name generator [cmake args...]
  local tree=$work/$1 generator=$2; shift 2
  step "configure and build $tree ($generator)"
  run_logged "$tmp/configure-$generator.log" "$cmake" -S "$src" -B "$tree" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DFLOWRELAY_BUILD_TESTS=OFF -DFLOWRELAY_BUILD_BENCH=OFF \
    "-DCMAKE_C_FLAGS=${flag[0]}" "-DCMAKE_CXX_FLAGS=${flag[1]}" \
    "-DCMAKE_EXE_LINKER_FLAGS=${flag[2]}" "-DCMAKE_MODULE_LINKER_FLAGS=${flag[2]}" \
    "-DCMAKE_SHARED_LINKER_FLAGS=${flag[2]}" "${launcher[@]}" "$@"
  run_logged "$tmp/build-$generator.log" "$cmake" --build "$tree" -j "$jobs"
  step "cpack -G $generator"
  rm -f "$tree"/*.deb "$tree"/*.rpm
  (cd "$tree" && run_logged "$tmp/cpack-$generator.log" "$cpack" -G "$generator")
}
build_tree deb DEB
# rpm distributions ship shared objects executable (rpm's ELF dependency and build-id
# generators look at executable files); CMake on Debian installs them 0644 unless told.
build_tree rpm RPM -DCMAKE_INSTALL_LIBDIR=lib64 -DCMAKE_INSTALL_SO_NO_EXE=0

deb_tree=$work/deb rpm_tree=$work/rpm
arch=$(dpkg --print-architecture)
libdir=/usr/$(cache_value "$deb_tree" CMAKE_INSTALL_LIBDIR) # /usr/lib/<multiarch>
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
unitdir=${unitdir:-/lib/systemd/system} # where Debian's systemd reads package units
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$deb_tree/CPackConfig.cmake")
deb=$(echo "$deb_tree"/flowrelay_*_"$arch".deb)
deb_dev=$(echo "$deb_tree"/flowrelay-dev_*_"$arch".deb)
rpm_file=$(echo "$rpm_tree"/flowrelay-[0-9]*.rpm)
rpm_devel=$(echo "$rpm_tree"/flowrelay-devel-[0-9]*.rpm)
for f in "$deb" "$deb_dev" "$rpm_file" "$rpm_devel"; do
  [ -f "$f" ] || fail "cpack did not make $f"
done
plugins=(flowrelay-transport-ws.so flowrelay-transport-sse.so flowrelay-broker-local.so
  flowrelay-broker-redis.so)

# ---- 2. inspect them ------------------------------------------------------------------------
step "lintian $(basename "$deb") $(basename "$deb_dev")"
lintian_rc=0
lintian_out=$(lintian --display-info --fail-on error "$deb" "$deb_dev" 2>&1) || lintian_rc=$?
grep -v '^running with root privileges' <<<"$lintian_out" || echo "(no tags)"
[ $lintian_rc -eq 0 ] || fail "lintian reports errors"

step "deb contents and control data"
listing=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\.||')
echo "$listing"
expected=(/usr/sbin/flowrelayd /etc/flowrelay/flowrelay.yaml "$unitdir/flowrelay.service"
  /usr/share/man/man8/flowrelayd.8.gz /usr/share/doc/flowrelay/copyright
  /usr/share/doc/flowrelay/changelog.Debian.gz)
for p in "${plugins[@]}"; do expected+=("$libdir/flowrelay/plugins/$p"); done
expect_lines "$listing" "${expected[@]}"
expect_lines "$(dpkg-deb --info "$deb" conffiles)" /etc/flowrelay/flowrelay.yaml
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for d in adduser libpocofoundation libyaml-cpp libhiredis libsystemd0; do
  grep -q "$d" <<<"$depends" || fail "Depends lacks $d: $depends"
done
dev_listing=$(dpkg-deb -c "$deb_dev" | awk '{print $6}' | sed 's|^\.||')
expect_lines "$dev_listing" /usr/include/flowrelay/plugin.h /usr/include/flowrelay/plugin.hpp \
  /usr/include/flowrelay/plugin_options.hpp /usr/include/flowrelay/plugin_metrics.hpp \
  "$libdir/cmake/FlowRelaySDK/FlowRelaySDKConfig.cmake" "$libdir/pkgconfig/flowrelay-sdk.pc" \
  /usr/share/flowrelay/examples/broker-minimal/CMakeLists.txt \
  /usr/share/doc/flowrelay-dev/copyright

step "rpm -qlp $(basename "$rpm_file")"
rpm_list=$(rpm -qlp "$rpm_file")
echo "$rpm_list"
expected=(/usr/sbin/flowrelayd /etc/flowrelay /etc/flowrelay/flowrelay.yaml
  /usr/lib/systemd/system/flowrelay.service /usr/share/man/man8/flowrelayd.8.gz
  /usr/share/licenses/flowrelay/LICENSE /usr/lib64/flowrelay/plugins)
for p in "${plugins[@]}"; do expected+=("/usr/lib64/flowrelay/plugins/$p"); done
expect_lines "$rpm_list" "${expected[@]}"
# Nothing of the Debian layout, and no folder that belongs to filesystem or systemd.
if grep -E -e '-linux-gnu|^/usr/local|^/lib/' -e '^(/usr/lib/systemd|/usr/lib/systemd/system|/usr/sbin|/usr/share/man|/usr/share/man/man8|/usr/lib64)$' \
  <<<"$rpm_list"; then
  fail "unexpected paths in the rpm (above)"
fi
expect_lines "$(rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm_file")" \
  "cn /etc/flowrelay/flowrelay.yaml" # %config(noreplace)
expect_lines "$(rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm_file")" \
  "-rwxr-xr-x /usr/sbin/flowrelayd" "${plugins[@]/#/-rwxr-xr-x /usr/lib64/flowrelay/plugins/}"
requires=$(rpm -qpR "$rpm_file")
expect_lines "$requires" "libPocoFoundation.so.80()(64bit)" "libyaml-cpp.so.0.7()(64bit)" \
  "/usr/sbin/useradd"
if rpm -qp --provides "$rpm_file" | grep -F "flowrelay-"; then
  fail "the rpm offers its private plugins as Provides (above)"
fi
scripts=$(rpm -qp --scripts "$rpm_file")
for word in useradd "preset flowrelay.service" "disable --now" "try-restart"; do
  grep -qF "$word" <<<"$scripts" || fail "rpm scriptlets lack '$word':"$'\n'"$scripts"
done
rpm2archive - <"$rpm_file" | tar -xzO ./etc/flowrelay/flowrelay.yaml >"$tmp/rpm-config.yaml"
expect_lines "$(cat "$tmp/rpm-config.yaml")" "plugin_dir: /usr/lib64/flowrelay/plugins"
echo "rpm -qlp $(basename "$rpm_devel"):"
devel_list=$(rpm -qlp "$rpm_devel")
echo "$devel_list"
expect_lines "$devel_list" /usr/include/flowrelay/plugin.h /usr/include/flowrelay/plugin.hpp \
  /usr/include/flowrelay/plugin_options.hpp /usr/include/flowrelay/plugin_metrics.hpp \
  /usr/lib64/cmake/FlowRelaySDK/FlowRelaySDKConfig.cmake /usr/lib64/pkgconfig/flowrelay-sdk.pc \
  /usr/share/flowrelay/examples/broker-minimal/broker_minimal.c \
  /usr/share/licenses/flowrelay-devel/LICENSE

# ---- 3. install -----------------------------------------------------------------------------
# Everything the packages install or leave behind; none of it may exist before or after.
leftovers=(/usr/sbin/flowrelayd "$libdir/flowrelay" /etc/flowrelay "$unitdir/flowrelay.service"
  /etc/systemd/system/multi-user.target.wants/flowrelay.service
  /var/lib/systemd/deb-systemd-helper-enabled/flowrelay.service.dsh-also
  /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/flowrelay.service
  /usr/share/man/man8/flowrelayd.8.gz /usr/share/doc/flowrelay /usr/share/doc/flowrelay-dev
  /usr/share/lintian/overrides/flowrelay /usr/share/lintian/overrides/flowrelay-dev
  /usr/include/flowrelay "$libdir/cmake/FlowRelaySDK" "$libdir/pkgconfig/flowrelay-sdk.pc"
  /usr/share/flowrelay)
for path in "${leftovers[@]}"; do
  [ ! -e "$path" ] && [ ! -L "$path" ] ||
    fail "$path exists before the test installed anything; remove that flowrelay first"
done

step "apt-get install $(basename "$deb") $(basename "$deb_dev")"
installed=yes
DEBIAN_FRONTEND=noninteractive run_logged "$tmp/apt.log" \
  apt-get install -y -q --no-install-recommends "$deb" "$deb_dev"
[ "$(package_status flowrelay)" = installed ] || fail "flowrelay is not installed after apt-get"

step "installed files, user, unit"
for path in /usr/sbin/flowrelayd "$unitdir/flowrelay.service" /etc/flowrelay/flowrelay.yaml \
  /usr/share/man/man8/flowrelayd.8.gz "${plugins[@]/#/$libdir/flowrelay/plugins/}"; do
  [ -f "$path" ] || fail "$path is missing after install"
done
expect_lines "$(dpkg-query -W -f='${Conffiles}\n' flowrelay | awk '{print $1}')" \
  /etc/flowrelay/flowrelay.yaml
expect_lines "$(cat /etc/flowrelay/flowrelay.yaml)" "plugin_dir: $libdir/flowrelay/plugins"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd flowrelay) ||
  fail "postinst did not create the user flowrelay"
echo "user flowrelay: uid $uid gid $gid home $home shell $shell"
[ "$uid" -lt 1000 ] || fail "flowrelay is not a system user (uid $uid)"
[ "$(getent group flowrelay | cut -d: -f3)" = "$gid" ] || fail "flowrelay's group is not flowrelay"
case "$shell" in */nologin | */false) ;; *) fail "flowrelay has a login shell: $shell" ;; esac
[ -L /etc/systemd/system/multi-user.target.wants/flowrelay.service ] ||
  fail "postinst did not enable flowrelay.service"
man_opt=()
command -v man >/dev/null || man_opt=(--man=no) # verify runs `man flowrelayd` otherwise
systemd-analyze verify "${man_opt[@]}" "$unitdir/flowrelay.service" ||
  fail "systemd-analyze verify $unitdir/flowrelay.service"
echo "systemd-analyze verify: OK"
exec_start=$(sed -n 's/^ExecStart=//p' "$unitdir/flowrelay.service")
[ "$exec_start" = "/usr/sbin/flowrelayd --config /etc/flowrelay/flowrelay.yaml" ] ||
  fail "unexpected ExecStart=$exec_start"

step "reinstall over an edited configuration: the edit stays"
echo "# edited by the packaging test" >>/etc/flowrelay/flowrelay.yaml
run_logged "$tmp/reinstall.log" dpkg -i "$deb"
[ "$(tail -n 1 /etc/flowrelay/flowrelay.yaml)" = "# edited by the packaging test" ] ||
  fail "reinstalling replaced the edited /etc/flowrelay/flowrelay.yaml"
[ -L /etc/systemd/system/multi-user.target.wants/flowrelay.service ] ||
  fail "reinstalling lost the enablement"
echo "edited conffile kept"

step "flowrelayd --check-config (as root and as flowrelay, like ExecStartPre)"
as_flowrelay=(setpriv --reuid flowrelay --regid flowrelay --init-groups --no-new-privs --)
/usr/sbin/flowrelayd --version
/usr/sbin/flowrelayd --check-config --config /etc/flowrelay/flowrelay.yaml
"${as_flowrelay[@]}" /usr/sbin/flowrelayd --check-config --config /etc/flowrelay/flowrelay.yaml

# ---- 4. run it as the unit does ---------------------------------------------------------------
# The installed config as it is, on 127.0.0.1:8080 and 9090. Where something else holds those
# ports (a developer's flowrelayd), it runs in a private network namespace, where they are
# free; where no namespace can be made either, a copy of the config moves to free ports.
config=/etc/flowrelay/flowrelay.yaml ws_port=8080 http_port=9090
in_ns=() netns=""
if ! port_busy 8080 && ! port_busy 9090; then
  step "running the installed config (127.0.0.1:8080, 9090)"
elif ip netns add "flowrelay-pkgtest-$$" 2>/dev/null; then
  netns=flowrelay-pkgtest-$$
  in_ns=(ip netns exec "$netns")
  ip -n "$netns" link set lo up
  step "8080 or 9090 is busy here: running the installed config in network namespace $netns"
else
  ws_port=$(free_port) http_port=$(free_port)
  config=$tmp/flowrelay.yaml
  sed -e "s|listen: 127.0.0.1:8080$|listen: 127.0.0.1:$ws_port|" \
    -e "s|listen: 127.0.0.1:9090$|listen: 127.0.0.1:$http_port|" \
    /etc/flowrelay/flowrelay.yaml >"$config"
  chmod 644 "$config"
  grep -q "127.0.0.1:$ws_port" "$config" && grep -q "127.0.0.1:$http_port" "$config" ||
    fail "could not move the ports in the copy of the installed config"
  step "8080 or 9090 is busy, no network namespace: a copy of the installed config on $ws_port/$http_port"
fi
http() { "${in_ns[@]}" curl -fsS "http://127.0.0.1:$http_port$1"; }
ws() { "${in_ns[@]}" python3 "$ws_client" "$1" 127.0.0.1 "$ws_port" /ws/packaging-test; }
# The unit's ExecStart, as the unit's User= and Group=, with the unit's descriptor limit.
(ulimit -n 1048576 2>/dev/null || true
  exec "${in_ns[@]}" "${as_flowrelay[@]}" /usr/sbin/flowrelayd --config "$config") \
  >"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
ready=no
for _ in $(seq 200); do
  if http /ready >/dev/null 2>&1; then ready=yes; break; fi
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
[ $ready = yes ] || { cat "$tmp/daemon.log" >&2; fail "flowrelayd did not become ready"; }
[ "$(ps -o user= -p "$daemon_pid" | tr -d ' ')" = flowrelay ] || fail "flowrelayd does not run as flowrelay"
echo "flowrelayd (pid $daemon_pid, user flowrelay) is ready"
ws exchange
http /health >/dev/null || fail "GET /health"
metrics=$(http /metrics) || fail "GET /metrics"
grep -q '^flowrelay_build_info' <<<"$metrics" || fail "GET /metrics lacks flowrelay_build_info"

kill -HUP "$daemon_pid"
reloaded=no
for _ in $(seq 100); do
  grep -q "reloaded" "$tmp/daemon.log" && { reloaded=yes; break; }
  sleep 0.1
done
[ $reloaded = yes ] || { cat "$tmp/daemon.log" >&2; fail "no reload after SIGHUP"; }
http /ready >/dev/null || fail "not ready after SIGHUP"
echo "SIGHUP: reloaded, still ready"

ws hold >"$tmp/hold.out" 2>&1 &
hold_pid=$!
for _ in $(seq 100); do grep -q connected "$tmp/hold.out" && break; sleep 0.1; done
grep -q connected "$tmp/hold.out" || { cat "$tmp/hold.out" >&2; fail "hold client did not connect"; }
kill -TERM "$daemon_pid"
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
daemon_pid=""
wait "$hold_pid" || true
hold_pid=""
[ $daemon_rc -eq 0 ] || { cat "$tmp/daemon.log" >&2; fail "flowrelayd exited $daemon_rc on SIGTERM"; }
grep -qx "close 1001" "$tmp/hold.out" || { cat "$tmp/hold.out" >&2; fail "client did not get close 1001"; }
echo "SIGTERM: client closed with 1001, flowrelayd exited 0"
echo "--- daemon log"
cat "$tmp/daemon.log"

# ---- 5. the SDK from flowrelay-dev ------------------------------------------------------------
step "build sdk/examples/broker-minimal against the installed flowrelay-dev"
cp -r /usr/share/flowrelay/examples/broker-minimal "$tmp/broker-minimal"
run_logged "$tmp/example-configure.log" "$cmake" -S "$tmp/broker-minimal" -B "$tmp/example-build"
sdk_dir=$(cache_value "$tmp/example-build" FlowRelaySDK_DIR)
[ "$sdk_dir" = "$libdir/cmake/FlowRelaySDK" ] || fail "find_package(FlowRelaySDK) found $sdk_dir"
run_logged "$tmp/example-build.log" "$cmake" --build "$tmp/example-build"
example=$(find "$tmp/example-build" -name flowrelay-broker-minimal.so | head -n 1)
[ -n "$example" ] || fail "the example built no flowrelay-broker-minimal.so"
[ "$(pkg-config --modversion flowrelay-sdk)" = "$version" ] || fail "pkg-config flowrelay-sdk"
sed "s|^  plugin: broker-local$|  plugin: $example|" /etc/flowrelay/flowrelay.yaml >"$tmp/example.yaml"
grep -qF "plugin: $example" "$tmp/example.yaml" || fail "could not name the example in a config"
/usr/sbin/flowrelayd --check-config --config "$tmp/example.yaml"
echo "FlowRelaySDK $version from $sdk_dir: example built and loaded by the installed flowrelayd"

# ---- 6. remove, purge -----------------------------------------------------------------------
step "dpkg --remove: the configuration stays"
run_logged "$tmp/remove.log" dpkg --remove flowrelay-dev flowrelay
[ -f /etc/flowrelay/flowrelay.yaml ] || fail "remove deleted /etc/flowrelay/flowrelay.yaml"
[ ! -e /usr/sbin/flowrelayd ] || fail "remove left /usr/sbin/flowrelayd"
[ "$(package_status flowrelay)" = config-files ] || fail "flowrelay is not in state config-files"

step "dpkg --purge: nothing stays"
run_logged "$tmp/purge.log" dpkg --purge flowrelay-dev flowrelay
installed=no
for path in "${leftovers[@]}"; do
  [ ! -e "$path" ] && [ ! -L "$path" ] || fail "purge left $path"
done
for p in flowrelay flowrelay-dev; do
  case "$(package_status "$p")" in "" | not-installed) ;; *) fail "$p still known to dpkg" ;; esac
done
getent passwd flowrelay >/dev/null || fail "purge deleted the flowrelay user (Debian keeps it)"
echo "purged; the flowrelay system user stays, as Debian policy has it"
