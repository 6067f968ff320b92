#include "support/temp_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "support/text.h"

namespace flowrelay::test {

TempDir::TempDir(std::string_view tag, Access access) {
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string base =
      access == Access::Owner && tmpdir && *tmpdir ? std::string(tmpdir) : std::string("/tmp");
  std::string templ = base + "/flowrelay-" + std::string(tag) + ".XXXXXX";
  if (!::mkdtemp(templ.data())) {
    throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
  }
  if (access == Access::Everyone) ::chmod(templ.c_str(), 0755);
  _path = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(_path, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  const std::string p = file(name);
  write_text_file(p, content);
  return p;
}

std::string TempDir::read(const std::string& name) const { return read_text_file(file(name)); }

}  // namespace flowrelay::test
