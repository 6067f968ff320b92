// log.format: json — one JSON object per line, for log shippers.
#pragma once

#include <Poco/Formatter.h>
#include <Poco/Message.h>

namespace flowrelay {

class JsonLogFormatter : public Poco::Formatter {
 public:
  void format(const Poco::Message& msg, std::string& text) override;
};

}  // namespace flowrelay
