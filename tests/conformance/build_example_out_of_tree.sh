#!/usr/bin/env bash
# Builds sdk/examples/broker-minimal the way a third party would: from the installed SDK only.
#
#   build_example_out_of_tree.sh BUILD_DIR SOURCE_DIR WORK_DIR LIBDIR [CMAKE]
#
#  1. cmake --install BUILD_DIR --component dev --prefix WORK_DIR/prefix
#  2. configures the installed copy of the example (WORK_DIR/prefix/share/flowrelay/examples)
#     in a fresh build folder with CMAKE_PREFIX_PATH=WORK_DIR/prefix, builds it with -Werror,
#     and checks that no compile command reaches into SOURCE_DIR and that the package came
#     from the prefix;
#  3. compiles it again by hand: cc -shared -fPIC $(pkg-config --cflags flowrelay-sdk);
#  4. checks that both .so files export flowrelay_plugin_entry_v2 and nothing else;
#  5. compiles a C++20 plugin on the installed flowrelay/plugin.hpp alone (-Werror), so that
#     the optional C++ layer is self-contained as installed.
# Leaves WORK_DIR/build/flowrelay-broker-minimal.so for the conformance tests.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR WORK_DIR LIBDIR [CMAKE]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
source_dir=$(cd "$2" && pwd)
work_dir=$3
libdir=$4
cmake=${5:-cmake}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
# WORK_DIR is wiped: never a tree someone works in.
case "$work_dir" in
  / | "$source_dir" | "$build_dir" | "$HOME") fail "refusing WORK_DIR '$work_dir'" ;;
esac
rm -rf "${work_dir:?}"/*
prefix=$work_dir/prefix

step "install component dev into $prefix"
"$cmake" --install "$build_dir" --component dev --prefix "$prefix"

for f in include/flowrelay/plugin.h include/flowrelay/plugin.hpp include/flowrelay/plugin_options.hpp \
  include/flowrelay/plugin_metrics.hpp \
  "$libdir/cmake/FlowRelaySDK/FlowRelaySDKConfig.cmake" \
  "$libdir/cmake/FlowRelaySDK/FlowRelaySDKConfigVersion.cmake" \
  "$libdir/cmake/FlowRelaySDK/FlowRelaySDKTargets.cmake" \
  "$libdir/cmake/FlowRelaySDK/FlowRelaySDKPlugin.cmake" \
  "$libdir/pkgconfig/flowrelay-sdk.pc" \
  share/flowrelay/examples/broker-minimal/broker_minimal.c \
  share/flowrelay/examples/broker-minimal/CMakeLists.txt \
  share/flowrelay/examples/broker-minimal/README.md; do
  [[ -f "$prefix/$f" ]] || fail "not installed: $f"
done
# The dev component is the SDK only: no daemon, no plugin binaries.
unexpected=$(find "$prefix" -type f \( -name '*.so' -o -perm -u+x \) | head -5)
[[ -z "$unexpected" ]] || fail "component dev installs binaries: $unexpected"

example=$prefix/share/flowrelay/examples/broker-minimal
# Compile the example in a copy outside both trees, so that not even a relative path can
# lead back into the source tree.
cp -r "$example" "$work_dir/src"

step "configure the example against $prefix"
# No package registries and no inherited prefix path: only the fresh prefix may satisfy
# find_package(FlowRelaySDK).
env -u CMAKE_PREFIX_PATH -u FlowRelaySDK_DIR -u CPATH -u C_INCLUDE_PATH \
  "$cmake" -S "$work_dir/src" -B "$work_dir/build" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS=-Werror

found=$(sed -n 's/^FlowRelaySDK_DIR:PATH=//p' "$work_dir/build/CMakeCache.txt")
[[ "$found" == "$prefix/$libdir/cmake/FlowRelaySDK" ]] ||
  fail "FlowRelaySDK found at '$found', not in the prefix"

step "build the example"
env -u CPATH -u C_INCLUDE_PATH "$cmake" --build "$work_dir/build" --verbose
so=$work_dir/build/flowrelay-broker-minimal.so
[[ -f "$so" ]] || fail "no $so"

commands=$work_dir/build/compile_commands.json
[[ -f "$commands" ]] || fail "no compile_commands.json"
# Every include path of every compile command is the prefix's include dir.
includes=$(grep -o -E -- '(-I ?|-isystem )[^ "]+' "$commands" | sed -E 's/^(-I ?|-isystem )//' | sort -u)
[[ -n "$includes" ]] || fail "no include path in the compile commands: $(cat "$commands")"
for inc in $includes; do
  [[ "$inc" == "$prefix/include" ]] || fail "compile command uses include path $inc (not $prefix/include)"
done
if grep -F -q "$source_dir/sdk" "$commands"; then
  fail "a compile command references $source_dir/sdk"
fi

exports() { nm -D --defined-only "$1" | awk '{print $NF}' | sort; }
[[ "$(exports "$so")" == "flowrelay_plugin_entry_v2" ]] ||
  fail "$so exports more or other than the entry symbol: $(exports "$so" | tr '\n' ' ')"

step "pkg-config --cflags flowrelay-sdk + cc by hand"
pcdir=$prefix/$libdir/pkgconfig
cflags=$(PKG_CONFIG_LIBDIR="$pcdir" PKG_CONFIG_PATH="" pkg-config --cflags flowrelay-sdk)
echo "cflags: $cflags"
[[ "$cflags" == *-I* ]] || fail "pkg-config gives no include path"
for flag in $cflags; do
  if [[ "$flag" == -I* ]]; then
    inc=$(cd "${flag#-I}" && pwd -P)
    [[ "$inc" == "$(cd "$prefix/include" && pwd -P)" ]] || fail "include path $inc is not $prefix/include"
  fi
done
version=$(PKG_CONFIG_LIBDIR="$pcdir" pkg-config --modversion flowrelay-sdk)
[[ -n "$version" ]] || fail "pkg-config --modversion is empty"
mkdir -p "$work_dir/by-hand"
# shellcheck disable=SC2086 # cflags is a list of flags
env -u CPATH -u C_INCLUDE_PATH cc -std=c11 -Wall -Wextra -pedantic -Werror -O2 \
  -fvisibility=hidden -shared -fPIC $cflags \
  -o "$work_dir/by-hand/flowrelay-broker-minimal.so" "$work_dir/src/broker_minimal.c" \
  -pthread -Wl,--no-undefined
[[ "$(exports "$work_dir/by-hand/flowrelay-broker-minimal.so")" == "flowrelay_plugin_entry_v2" ]] ||
  fail "the hand-built plugin exports more than the entry symbol"

step "c++ -std=c++20 on the installed flowrelay/plugin.hpp"
cat >"$work_dir/by-hand/broker_cpp.cpp" <<'CPP'
#include <flowrelay/plugin.hpp>
namespace {
struct Options { uint32_t size = 0; };
class Echo final : public flowrelay::sdk::Broker {
 public:
  Echo(flowrelay::sdk::BrokerHost host, const flowrelay_option* o, size_t n) : _host(host) {
    static const flowrelay::sdk::OptionTable<Options> table(
        "broker-cpp", {{"size", &Options::size, "1", 0, 10, flowrelay::sdk::Reload::Live}});
    table.parse(o, n);
  }
  flowrelay_status publish(std::string_view ch, const flowrelay_message& m,
                           flowrelay_published_fn done, void* ctx) override {
    _host.deliver(ch, m);
    if (done) done(ctx, FLOWRELAY_OK, 0, {nullptr, 0});
    return FLOWRELAY_OK;
  }
  flowrelay_status subscribe(std::string_view) override { return FLOWRELAY_OK; }
  void unsubscribe(std::string_view) override {}
  void metrics(flowrelay::sdk::PrometheusText& out) const override {
    out.counter("flowrelay_cpp_total", "example", uint64_t{0});
  }
 private:
  flowrelay::sdk::BrokerHost _host;
};
}  // namespace
FLOWRELAY_PLUGIN_ENTRY("broker-cpp", "0.1.0", flowrelay::sdk::broker_vtable<Echo>(), nullptr)
CPP
# shellcheck disable=SC2086 # cflags is a list of flags
env -u CPATH -u CPLUS_INCLUDE_PATH c++ -std=c++20 -Wall -Wextra -Werror -O2 \
  -fvisibility=hidden -fvisibility-inlines-hidden -shared -fPIC $cflags \
  -o "$work_dir/by-hand/flowrelay-broker-cpp.so" "$work_dir/by-hand/broker_cpp.cpp" \
  -Wl,--no-undefined
exports "$work_dir/by-hand/flowrelay-broker-cpp.so" | grep -qx flowrelay_plugin_entry_v2 ||
  fail "the C++ plugin does not export flowrelay_plugin_entry_v2"

step "OK: $so"
