#include "security_util.h"

#include <Poco/Base64Encoder.h>
#include <Poco/Crypto/Crypto.h>
#include <Poco/Crypto/RSAKey.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/JWT/Signer.h>
#include <Poco/JWT/Token.h>
#include <Poco/Net/WebSocket.h>
#include <Poco/Timestamp.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace flowrelay::itest::sec {

namespace {

void run_or_throw(const std::string& command) {
  if (std::system(command.c_str()) != 0) throw std::runtime_error("command failed: " + command);
}

struct KeyStore {
  TempDir dir;
  Keys keys;
  KeyStore() {
    Poco::Crypto::initializeCrypto();
    keys.dir = dir.path();
    keys.rsa_private = dir.path() + "/rsa.pem";
    keys.rsa_public = dir.path() + "/rsa.pub.pem";
    keys.other_rsa_private = dir.path() + "/other.pem";
    run_or_throw("openssl genrsa -out '" + keys.rsa_private + "' 2048 2>/dev/null");
    run_or_throw("openssl rsa -in '" + keys.rsa_private + "' -pubout -out '" + keys.rsa_public +
                 "' 2>/dev/null");
    run_or_throw("openssl genrsa -out '" + keys.other_rsa_private + "' 2048 2>/dev/null");
    keys.rsa_public_pem = read_text_file(keys.rsa_public);
    if (keys.rsa_public_pem.find("PUBLIC KEY") == std::string::npos)
      throw std::runtime_error("openssl did not write a public key to " + keys.rsa_public);
  }
};

Poco::JSON::Array::Ptr to_array(const std::vector<std::string>& items) {
  Poco::JSON::Array::Ptr a = new Poco::JSON::Array;
  for (const auto& s : items) a->add(s);
  return a;
}

void fill(Poco::JWT::Token& token, const Claims& c) {
  const long now = static_cast<long>(Poco::Timestamp().epochTime());
  token.setType("JWT");
  token.setSubject(c.sub);
  if (c.exp_in) token.payload().set("exp", now + *c.exp_in);
  if (c.nbf_in) token.payload().set("nbf", now + *c.nbf_in);
  if (c.read) token.payload().set("read", to_array(*c.read));
  if (c.publish) token.payload().set("publish", to_array(*c.publish));
}

std::string json(const Poco::JSON::Object& o) {
  std::ostringstream s;
  Poco::JSON::Stringifier::condense(o, s);
  return s.str();
}

}  // namespace

const Keys& keys() {
  static KeyStore store;
  return store.keys;
}

std::string b64url(const std::string& raw) {
  std::ostringstream s;
  Poco::Base64Encoder enc(s, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
  enc.rdbuf()->setLineLength(0);
  enc << raw;
  enc.close();
  return s.str();
}

std::string hs256_token(const Claims& claims, const std::string& secret) {
  Poco::JWT::Token token;
  fill(token, claims);
  Poco::JWT::Signer signer;
  signer.setHMACKey(secret);
  return signer.sign(token, Poco::JWT::Signer::ALGO_HS256);
}

std::string rs256_token(const Claims& claims, const std::string& private_key_file) {
  keys();  // crypto initialised
  Poco::JWT::Token token;
  fill(token, claims);
  Poco::SharedPtr<Poco::Crypto::RSAKey> key(
      new Poco::Crypto::RSAKey(std::string(), private_key_file, std::string()));
  Poco::JWT::Signer signer(key);
  return signer.sign(token, Poco::JWT::Signer::ALGO_RS256);
}

std::string none_token(const Claims& claims) {
  Poco::JWT::Token token;
  fill(token, claims);
  Poco::JSON::Object header;
  header.set("alg", "none");
  header.set("typ", "JWT");
  return b64url(json(header)) + "." + b64url(json(token.payload())) + ".";
}

// ---------------------------------------------------------------------------------------------

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size()))
    ++n;
  return n;
}

bool rewrite_config_and_reload(Daemon& d, const std::string& from, const std::string& to,
                               Millis timeout) {
  std::string text = read_text_file(d.config_path());
  if (text.find(from) == std::string::npos) return false;
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  {
    std::ofstream out(d.config_path(), std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return false;
  }
  auto reloads = [&] {
    const std::string log = d.stderr_text();
    return count_of(log, "reloaded:") + count_of(log, "reload failed");
  };
  const size_t before = reloads();
  if (::kill(d.pid(), SIGHUP) != 0) return false;
  return wait_for([&] { return reloads() > before; }, timeout);
}

// ---------------------------------------------------------------------------------------------

SourcedHandshake::SourcedHandshake(const std::string& source_ip, uint16_t port,
                                   const std::string& path) {
  try {
    _client.emplace(port, 0, source_ip);
  } catch (const std::exception& e) {
    _error = "connect from " + source_ip + ": " + e.what();
    return;
  }
  const HttpHead head = _client->handshake(path);
  _status = head.status;
  if (_status == 0)
    _error =
        "no response head (connection " + std::string(_client->closed() ? "closed" : "open") + ")";
}

// ---------------------------------------------------------------------------------------------

Chatter::Chatter(uint16_t port, const std::string& conversation)
    : _a(port, conversation), _b(port, conversation) {
  _thread = std::thread([this] { run(); });
}

Chatter::~Chatter() { stop(); }

Chatter::Result Chatter::stop() {
  _stop = true;
  if (_thread.joinable()) _thread.join();
  _result.rounds = _rounds.load();
  return _result;
}

void Chatter::run() {
  auto fail = [&](const std::string& what) {
    if (_result.errors.size() < 10) _result.errors.push_back(what);
  };
  try {
    for (long n = 0; !_stop; ++n) {
      WsClient& sender = n % 2 ? _b : _a;
      const std::string msg = "round " + std::to_string(n);
      const auto t0 = Clock::now();
      sender.send_text(msg);
      for (WsClient* c : {&_a, &_b}) {
        auto m = c->receive(3s);
        const char* who = c == &_a ? "a" : "b";
        if (!m) return fail(std::string("client ") + who + ": no " + msg + " within 3 s");
        if (m->eof || m->opcode() != Poco::Net::WebSocket::FRAME_OP_TEXT || m->payload != msg)
          return fail(std::string("client ") + who + ": expected \"" + msg + "\", got opcode " +
                      std::to_string(m->opcode()) + (m->eof ? " (EOF)" : "") + " \"" +
                      m->payload.substr(0, 60) + "\"");
      }
      const auto rtt = std::chrono::duration_cast<Millis>(Clock::now() - t0);
      if (rtt > _result.max_rtt) _result.max_rtt = rtt;
      ++_rounds;
      std::this_thread::sleep_for(5ms);
    }
  } catch (const std::exception& e) {
    fail(std::string("exception: ") + e.what());
  }
}

}  // namespace flowrelay::itest::sec
