// Text helpers of the test support: files read whole, lines, trimming.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace flowrelay::test {

// The whole file ("" when it cannot be read).
std::string read_text_file(const std::string& path);
// Writes `content` to `path` (created or truncated); throws std::runtime_error on failure.
void write_text_file(const std::string& path, const std::string& content);

// The last `n` lines of `text` (for failure reports).
std::string tail_lines(const std::string& text, size_t n);
// The lines of `text` that are not blank.
std::vector<std::string> non_empty_lines(const std::string& text);

// Without leading and trailing spaces, tabs, CR and LF.
std::string trim(std::string_view s);
// ASCII lower case.
std::string lower(std::string_view s);

}  // namespace flowrelay::test
