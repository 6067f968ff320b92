// LoadedPlugin::load against broken plugins: each is refused with "<path>: <reason>" and left
// unloaded; a broker whose create() fails reports its message through the error buffer.
#include "plugin_loader.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstddef>
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
  expect_refused(fixture("abi-major-3"), {"ABI 3.", "ABI 2."});
  EXPECT_FALSE(still_loaded(fixture("abi-major-3")));
}

TEST(PluginLoader, Abi1PluginIsRefusedWithOneMessageSayingWhatToRebuild) {
  const std::string path = fixture("abi1");
  try {
    LoadedPlugin::load(path);
    ADD_FAILURE() << path << " was loaded";
  } catch (const PluginError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": " + ABI1_REFUSAL_MESSAGE);
  }
  EXPECT_FALSE(still_loaded(path));
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

TEST(PluginLoader, BrokerTableSmallerThanAbi20IsRefusedAtLoad) {
  expect_refused(fixture("small-broker-table"),
                 {"broker table too small for plugin ABI 2.0",
                  std::to_string(offsetof(flowrelay_broker_vtable, reconfigure)) + " bytes"});
  EXPECT_FALSE(still_loaded(fixture("small-broker-table")));
}

TEST(PluginLoader, BrokerTableWithoutARequiredSlotIsRefusedAtLoad) {
  expect_refused(fixture("missing-slot"), {"broker table lacks the required slot 'publish'"});
}

TEST(PluginLoader, FailingCreateReportsItsMessage) {
  auto plugin = LoadedPlugin::load(fixture("create-fails"));
  EXPECT_EQ(plugin->path(), fixture("create-fails"));
  EXPECT_STREQ(plugin->info().name, "broken-fixture");
  const flowrelay_broker_vtable* vt = plugin->broker();
  ASSERT_NE(vt, nullptr);
  // Its optional slots are NULL, which the loader accepts.
  EXPECT_EQ(vt->history, nullptr);
  EXPECT_EQ(vt->metrics, nullptr);
  EXPECT_EQ(vt->reconfigure, nullptr);
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
