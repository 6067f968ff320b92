// A fresh directory for one test's files (configs, logs, keys), removed with its contents.
#pragma once

#include <string>
#include <string_view>

namespace flowrelay::test {

class TempDir {
 public:
  enum class Access {
    Owner,     // $TMPDIR (or /tmp), mode 0700
    Everyone,  // /tmp, mode 0755: other users must traverse it (nginx workers run as nobody,
               // and $TMPDIR may be a private folder)
  };

  // <base>/flowrelay-<tag>.XXXXXX; throws std::runtime_error if it cannot be made.
  explicit TempDir(std::string_view tag = "test", Access access = Access::Owner);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return _path; }
  // path()/name
  std::string file(const std::string& name) const { return _path + "/" + name; }
  // Writes `content` to path()/name (created or truncated); returns the file's path.
  std::string write(const std::string& name, const std::string& content) const;
  // The content of path()/name ("" when it cannot be read).
  std::string read(const std::string& name) const;

 private:
  std::string _path;
};

}  // namespace flowrelay::test
