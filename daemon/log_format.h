// log.format: json — one JSON object per line, for log shippers.
#pragma once

#include <Poco/Formatter.h>
#include <Poco/Message.h>

namespace flowrelay {

class JsonLogFormatter : public Poco::Formatter {
 public:
  void format(const Poco::Message& msg, std::string& text) override;
};

// Under systemd (JOURNAL_STREAM set, log.format text): "<N>source: message" lines, N the
// syslog priority, so journald files each line at its level (journalctl -p warning works) and
// adds its own timestamp.
class JournalLogFormatter : public Poco::Formatter {
 public:
  void format(const Poco::Message& msg, std::string& text) override;
};

}  // namespace flowrelay
