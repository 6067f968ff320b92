// LoadedPlugin::load against broken plugins: each is refused with "<path>: <reason>" and left
// unloaded; a broker whose create() fails reports its message through the error buffer.
#include "plugin_loader.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "fixture_messages.h"

namespace flowrelay {
namespace {

std::string fixture(const std::string& kind) {
  return std::string(FIXTURE_DIR) + "/flowrelay-fixture-" + kind + ".so";
}

// Loads `path`, expecting a PluginError that starts with the path and contains every reason.
void expect_refused(const std::string& path, const std::vector<std::string>& reasons) {
  try {
    auto plugin = LoadedPlugin::load(path);
    ADD_FAILURE() << path << " was loaded";
  } catch (const PluginError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind(path + ": ", 0), 0u) << "error does not start with the path: " << what;
    for (const auto& reason : reasons)
      EXPECT_NE(what.find(reason), std::string::npos)
          << "reason '" << reason << "' missing: " << what;
  }
}

// True if the object is still mapped (a refused plugin must be dlclose()d).
bool still_loaded(const std::string& path) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h) dlclose(h);
  return h != nullptr;
}

TEST(PluginLoader, MissingFileIsNamed) {
  expect_refused(std::string(FIXTURE_DIR) + "/flowrelay-fixture-missing.so", {"no such file"});
}

TEST(PluginLoader, NotASharedObjectCannotBeLoaded) {
  expect_refused(fixture("not-elf"), {"cannot load"});
}

TEST(PluginLoader, MissingEntrySymbolIsRefused) {
  expect_refused(fixture("no-entry"), {FLOWRELAY_ENTRY_SYMBOL, "not found"});
  EXPECT_FALSE(still_loaded(fixture("no-entry")));
}

TEST(PluginLoader, AnotherAbiMajorIsRefused) {
  expect_refused(fixture("abi-major-2"), {"ABI 2.", "ABI 1."});
  EXPECT_FALSE(still_loaded(fixture("abi-major-2")));
}

TEST(PluginLoader, EntryReturningNullMeansTheDaemonIsTooOld) {
  expect_refused(fixture("entry-null"), {"refused"});
  EXPECT_FALSE(still_loaded(fixture("entry-null")));
}

TEST(PluginLoader, PluginWithoutTablesIsRefused) {
  expect_refused(fixture("no-tables"), {"neither a broker nor a transport"});
}

TEST(PluginLoader, TruncatedInfoTableIsRefused) {
  expect_refused(fixture("small-info"), {"too small"});
}

TEST(PluginLoader, UnresolvedSymbolFailsAtLoadNotLater) {
  expect_refused(fixture("undefined-symbol"), {"cannot load", UNDEFINED_SYMBOL_NAME});
}

TEST(PluginLoader, BrokerTableWithoutEveryAbi10SlotIsNotOffered) {
  auto plugin = LoadedPlugin::load(fixture("small-broker-table"));
  ASSERT_NE(plugin, nullptr);
  EXPECT_EQ(plugin->broker(), nullptr);
  EXPECT_EQ(plugin->transport(), nullptr);
}

TEST(PluginLoader, FailingCreateReportsItsMessage) {
  auto plugin = LoadedPlugin::load(fixture("create-fails"));
  EXPECT_EQ(plugin->path(), fixture("create-fails"));
  EXPECT_STREQ(plugin->info().name, "broken-fixture");
  const flowrelay_broker_vtable* vt = plugin->broker();
  ASSERT_NE(vt, nullptr);
  flowrelay_broker_host_api api;
  std::memset(&api, 0, sizeof api);
  api.struct_size = sizeof api;
  char err[256] = "";
  auto* const untouched = reinterpret_cast<flowrelay_broker*>(uintptr_t{0x1234});
  flowrelay_broker* out = untouched;
  EXPECT_EQ(vt->create(&api, nullptr, nullptr, 0, &out, err, sizeof err), FLOWRELAY_EINVAL);
  EXPECT_EQ(out, untouched);
  EXPECT_STREQ(err, CREATE_FAILS_MESSAGE);
}

TEST(PluginLoader, PluginStaysLoadedWhileReferencedAndUnloadsAfter) {
  const std::string path = fixture("create-fails");
  {
    auto plugin = LoadedPlugin::load(path);
    auto second_ref = plugin;
    plugin.reset();
    EXPECT_TRUE(still_loaded(path));
  }
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_FALSE(still_loaded(path));
#endif
}

}  // namespace
}  // namespace flowrelay
