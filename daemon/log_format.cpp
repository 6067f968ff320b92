#include "log_format.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/JSON/Object.h>

#include <sstream>

namespace flowrelay {

namespace {
const char* level_name(Poco::Message::Priority p) {
  static const char* names[] = {"",       "fatal", "critical", "error", "warning",
                                "notice", "info",  "debug",    "trace"};
  return p >= 1 && p <= 8 ? names[p] : "info";
}
}  // namespace

void JsonLogFormatter::format(const Poco::Message& msg, std::string& text) {
  Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
  o.set("ts",
        Poco::DateTimeFormatter::format(msg.getTime(), Poco::DateTimeFormat::ISO8601_FRAC_FORMAT));
  o.set("level", level_name(msg.getPriority()));
  o.set("source", msg.getSource());
  o.set("msg", msg.getText());
  std::ostringstream out;
  o.stringify(out);
  text = out.str();
}

void JournalLogFormatter::format(const Poco::Message& msg, std::string& text) {
  const int p = msg.getPriority();
  const int syslog = p <= Poco::Message::PRIO_CRITICAL ? 2 : p >= Poco::Message::PRIO_DEBUG ? 7 : p;
  text = "<" + std::to_string(syslog) + ">" + msg.getSource() + ": " + msg.getText();
}

}  // namespace flowrelay
