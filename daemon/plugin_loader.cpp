#include "plugin_loader.h"

#include <dlfcn.h>

#include <filesystem>

namespace flowrelay {

namespace fs = std::filesystem;

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
  if (!sym) throw fail("not a flowrelay plugin: entry symbol " FLOWRELAY_ENTRY_SYMBOL " not found");
  auto entry = reinterpret_cast<flowrelay_plugin_entry_fn>(sym);
  const flowrelay_plugin_info* info = entry(FLOWRELAY_ABI_MINOR);
  if (!info)
    throw fail("the plugin refused this daemon (it needs a newer ABI than 1." +
               std::to_string(FLOWRELAY_ABI_MINOR) + ")");
  if (info->struct_size < offsetof(flowrelay_plugin_info, transport) + sizeof(void*))
    throw fail("plugin info table too small (" + std::to_string(info->struct_size) + " bytes)");
  if (info->abi_major != FLOWRELAY_ABI_MAJOR)
    throw fail("built for plugin ABI " + std::to_string(info->abi_major) + "." +
               std::to_string(info->abi_minor) + ", this daemon speaks ABI " +
               std::to_string(FLOWRELAY_ABI_MAJOR) + "." + std::to_string(FLOWRELAY_ABI_MINOR));
  if (!info->broker && !info->transport)
    throw fail("the plugin provides neither a broker nor a transport");
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

const flowrelay_broker_vtable* LoadedPlugin::broker() const {
  const auto* b = _info->broker;
  if (!b || b->struct_size < offsetof(flowrelay_broker_vtable, unsubscribe) + sizeof(void*))
    return nullptr;
  return b->abi_major == FLOWRELAY_ABI_MAJOR ? b : nullptr;
}

const flowrelay_transport_vtable* LoadedPlugin::transport() const {
  const auto* t = _info->transport;
  if (!t || t->struct_size < offsetof(flowrelay_transport_vtable, subscribed) + sizeof(void*))
    return nullptr;
  return t->abi_major == FLOWRELAY_ABI_MAJOR ? t : nullptr;
}

}  // namespace flowrelay
