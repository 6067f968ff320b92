#include "resume_query.h"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <charconv>

namespace flowrelay::stream {

bool parse_offset(std::string_view text, uint64_t& out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return !text.empty() && ec == std::errc() && ptr == end;
}

std::string parse_resume_params(const std::string& uri, ResumeParams& out,
                                const QueryParameterCheck& other) {
  Poco::URI::QueryParameters params;
  try {
    params = Poco::URI(uri).getQueryParameters();
  } catch (const Poco::Exception& e) {
    return "malformed query string: " + e.message();
  }
  bool has_epoch = false;
  for (const auto& [name, value] : params) {
    if (name == "since") {
      if (!parse_offset(value, out.since))
        return "since must be a decimal offset, got '" + value.substr(0, 32) + "'";
      out.resume = true;
    } else if (name == "epoch") {
      if (value.size() > 64) return "epoch too long";
      out.epoch = value;
      has_epoch = true;
    } else if (other) {
      if (std::string why = other(name, value); !why.empty()) return why;
    }
  }
  if (has_epoch && !out.resume) return "epoch needs since";
  return {};
}

}  // namespace flowrelay::stream
