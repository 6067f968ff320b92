#include "plugin_loader.h"

#include <dlfcn.h>

#include <filesystem>
#include <initializer_list>
#include <string>
#include <utility>

namespace flowrelay {

namespace fs = std::filesystem;

namespace {

#define END_OF(type, field) (offsetof(type, field) + sizeof(((type*)nullptr)->field))
// The ABI 2.0 sizes: a later minor's tables are larger, never smaller.
constexpr size_t kInfoSize20 = END_OF(flowrelay_plugin_info, transport);
constexpr size_t kBrokerSize20 = END_OF(flowrelay_broker_vtable, reconfigure);
constexpr size_t kTransportSize20 = END_OF(flowrelay_transport_vtable, reconfigure);
#undef END_OF

constexpr const char* kEntryV1 = "flowrelay_plugin_entry_v1";

std::string abi_text(uint32_t major, uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

// "" if `table` has every slot of ABI 2.0 (those in `required` not NULL), else why not.
template <typename Table>
std::string check_table(const char* kind, const Table* table, size_t size_20,
                        std::initializer_list<std::pair<const char*, bool>> required) {
  if (table->abi_major != FLOWRELAY_ABI_MAJOR)
    return std::string(kind) + " table built for plugin ABI " + std::to_string(table->abi_major) +
           ", this daemon speaks ABI " + abi_text(FLOWRELAY_ABI_MAJOR, FLOWRELAY_ABI_MINOR);
  if (table->struct_size < size_20)
    return std::string(kind) + " table too small for plugin ABI 2.0 (" +
           std::to_string(table->struct_size) + " bytes, at least " + std::to_string(size_20) + ")";
  for (const auto& [slot, present] : required)
    if (!present) return std::string(kind) + " table lacks the required slot '" + slot + "'";
  return {};
}

std::string check_tables(const flowrelay_plugin_info& info) {
  if (info.struct_size < kInfoSize20)
    return "plugin info table too small (" + std::to_string(info.struct_size) +
           " bytes, ABI 2.0 has " + std::to_string(kInfoSize20) + ")";
  if (info.abi_major != FLOWRELAY_ABI_MAJOR)
    return "built for plugin ABI " + abi_text(info.abi_major, info.abi_minor) +
           ", this daemon speaks ABI " + abi_text(FLOWRELAY_ABI_MAJOR, FLOWRELAY_ABI_MINOR);
  if (!info.broker && !info.transport)
    return "the plugin provides neither a broker nor a transport";
  if (const auto* b = info.broker) {
    std::string why = check_table("broker", b, kBrokerSize20,
                                  {{"create", b->create != nullptr},
                                   {"start", b->start != nullptr},
                                   {"destroy", b->destroy != nullptr},
                                   {"publish", b->publish != nullptr},
                                   {"subscribe", b->subscribe != nullptr},
                                   {"unsubscribe", b->unsubscribe != nullptr}});
    if (!why.empty()) return why;
  }
  if (const auto* t = info.transport)
    return check_table("transport", t, kTransportSize20,
                       {{"create", t->create != nullptr},
                        {"start", t->start != nullptr},
                        {"stop", t->stop != nullptr},
                        {"destroy", t->destroy != nullptr},
                        {"deliver", t->deliver != nullptr},
                        {"subscribed", t->subscribed != nullptr}});
  return {};
}

}  // namespace

std::string resolve_plugin_path(const std::string& name, const std::string& plugin_dir,
                                const std::string& base_dir) {
  bool is_path = name.find('/') != std::string::npos ||
                 (name.size() > 3 && name.compare(name.size() - 3, 3, ".so") == 0);
  fs::path p = is_path ? fs::path(name) : fs::path(plugin_dir) / ("flowrelay-" + name + ".so");
  if (p.is_relative()) p = fs::path(base_dir) / p;
  return p.lexically_normal().string();
}

std::shared_ptr<LoadedPlugin> LoadedPlugin::load(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw PluginError(path + ": no such file");
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* e = dlerror();
    throw PluginError(path + ": cannot load: " + (e ? e : "unknown dlopen error"));
  }
  auto fail = [&](const std::string& why) -> PluginError {
    dlclose(handle);
    return PluginError(path + ": " + why);
  };
  void* sym = dlsym(handle, FLOWRELAY_ENTRY_SYMBOL);
  if (!sym && dlsym(handle, kEntryV1))
    throw fail(std::string("built for plugin ABI 1 (") + kEntryV1 +
               "); this daemon loads ABI 2 plugins only: rebuild it against the flowrelay SDK "
               "of ABI 2 (sdk/include/flowrelay/plugin.h, package flowrelay-dev or "
               "flowrelay-devel)");
  if (!sym) throw fail("not a flowrelay plugin: entry symbol " FLOWRELAY_ENTRY_SYMBOL " not found");
  auto entry = reinterpret_cast<flowrelay_plugin_entry_fn>(sym);
  const flowrelay_plugin_info* info = entry(FLOWRELAY_ABI_MINOR);
  if (!info)
    throw fail("the plugin refused this daemon (it needs a newer ABI than " +
               abi_text(FLOWRELAY_ABI_MAJOR, FLOWRELAY_ABI_MINOR) + ")");
  if (std::string why = check_tables(*info); !why.empty()) throw fail(why);
  return std::shared_ptr<LoadedPlugin>(new LoadedPlugin(path, handle, info));
}

LoadedPlugin::LoadedPlugin(std::string path, void* handle, const flowrelay_plugin_info* info)
    : _path(std::move(path)), _handle(handle), _info(info) {}

LoadedPlugin::~LoadedPlugin() {
  // Sanitizer builds keep the code mapped so leak reports can still symbolize it.
#if !defined(__SANITIZE_ADDRESS__)
  dlclose(_handle);
#endif
}

}  // namespace flowrelay
