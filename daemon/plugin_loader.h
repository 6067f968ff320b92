// Loads a plugin shared object and checks its ABI before anything of it runs.
#pragma once

#include <flowrelay/plugin.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace flowrelay {

// A plugin that could not be loaded; what() names the file and the reason.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `name` is a bare plugin name ("broker-local" -> <plugin_dir>/flowrelay-broker-local.so) or a
// path (contains '/' or ends in ".so"), taken relative to `base_dir` when not absolute.
std::string resolve_plugin_path(const std::string& name, const std::string& plugin_dir,
                                const std::string& base_dir);

// One dlopen()ed plugin (RTLD_NOW | RTLD_LOCAL). Unloaded when the last reference goes, so keep
// it alive for as long as any instance it created.
class LoadedPlugin {
 public:
  // Throws PluginError "<path>: <reason>" when the file is missing or not a shared object,
  // lacks the entry symbol (an ABI 1 plugin is told to rebuild), returns no info, was built for
  // another ABI major, or has a table smaller than ABI 2.0's or without a required slot. So a
  // loaded plugin's tables have every 2.0 slot: callers check only the optional (NULL-able) ones.
  static std::shared_ptr<LoadedPlugin> load(const std::string& path);
  ~LoadedPlugin();
  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;

  const flowrelay_plugin_info& info() const { return *_info; }
  const std::string& path() const { return _path; }
  // The broker/transport table, or nullptr if the plugin does not provide one.
  const flowrelay_broker_vtable* broker() const { return _info->broker; }
  const flowrelay_transport_vtable* transport() const { return _info->transport; }

 private:
  LoadedPlugin(std::string path, void* handle, const flowrelay_plugin_info* info);
  std::string _path;
  void* _handle;
  const flowrelay_plugin_info* _info;
};

}  // namespace flowrelay
