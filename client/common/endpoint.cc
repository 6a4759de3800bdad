// endpoint.cc: where daemons listen (Endpoint) and which TCP peers they accept (HostPattern).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fmt/core.h>

#include <cctype>
#include <cstring>

#include "common/config.h"

namespace vvm {

namespace {

constexpr std::string_view kUnixPrefix = "unix:";
// vvm's control protocol over TLS: "tls:" and a TCP endpoint.
constexpr std::string_view kTlsPrefix = "tls:";
// sun_path holds the path and its terminating NUL.
constexpr size_t kMaxUnixPath = sizeof(sockaddr_un::sun_path) - 1;

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Host names as RFC 1123 allows them: letters, digits, '-' and '.'.
bool valid_host_name(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.front() == '-') return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return true;
}

// True when the first `bits` bits of `a` and `b` agree.
bool prefix_equal(const unsigned char* a, const unsigned char* b, int bits) {
  int bytes = bits / 8;
  if (std::memcmp(a, b, static_cast<size_t>(bytes)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

}  // namespace

Result<Endpoint> Endpoint::parse(std::string_view text) {
  auto fail = [&](std::string_view reason) {
    return Status::InvalidArgument(fmt::format("'{}': {}", text, reason));
  };
  Endpoint ep;
  if (text.substr(0, kUnixPrefix.size()) == kUnixPrefix) {
    std::string_view path = text.substr(kUnixPrefix.size());
    if (path.empty()) return fail("no path after 'unix:'");
    if (path[0] != '/') return fail("a Unix socket path must be absolute (unix:/run/vvm/x.sock)");
    if (path.size() > kMaxUnixPath) {
      return fail(
          fmt::format("the socket path is {} bytes long, more than the {} a Unix socket takes",
                      path.size(), kMaxUnixPath));
    }
    if (path.find('\0') != std::string_view::npos) return fail("the path holds a NUL byte");
    ep.kind = Kind::kUnix;
    ep.path = std::string(path);
    return ep;
  }
  if (text.substr(0, kTlsPrefix.size()) == kTlsPrefix) {
    auto tcp = parse(text.substr(kTlsPrefix.size()));
    if (!tcp.ok()) {
      return Status::InvalidArgument(fmt::format("'{}': {}", text, tcp.status().message()));
    }
    if (tcp->kind != Kind::kTcp) return fail("TLS runs over TCP: write tls:HOST:PORT");
    tcp->kind = Kind::kTls;
    return tcp;
  }

  std::string_view host;
  std::string_view port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return fail("'[' without ']' (write [::1]:7370)");
    host = text.substr(1, close - 1);
    std::string_view after = text.substr(close + 1);
    if (after.empty() || after[0] != ':') return fail("no port after ']' (write [::1]:7370)");
    port = after.substr(1);
    in6_addr a6;
    std::string host_str(host);
    if (inet_pton(AF_INET6, host_str.c_str(), &a6) != 1) {
      return fail(fmt::format("'{}' is not an IPv6 address", host));
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return fail("no port (write HOST:PORT, [IPv6]:PORT or unix:/PATH)");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail("an IPv6 address needs brackets (write [::1]:7370)");
    }
    if (host.empty()) return fail("no host before the port");
    bool numeric = host.find_first_not_of("0123456789.") == std::string_view::npos;
    if (numeric) {
      in_addr a4;
      std::string host_str(host);
      if (inet_pton(AF_INET, host_str.c_str(), &a4) != 1) {
        return fail(fmt::format("'{}' is not an IPv4 address", host));
      }
    } else if (!valid_host_name(host)) {
      return fail(fmt::format("'{}' is not a host name or an address", host));
    }
  }
  if (port.empty()) return fail("no port after ':'");
  if (!all_digits(port) || port.size() > 5) return fail(fmt::format("bad port '{}'", port));
  unsigned long n = std::stoul(std::string(port));
  if (n < 1 || n > 65535) return fail(fmt::format("port {} is not between 1 and 65535", n));
  ep.kind = Kind::kTcp;
  ep.host = std::string(host);
  ep.port = static_cast<uint16_t>(n);
  return ep;
}

std::string Endpoint::to_string() const {
  if (kind == Kind::kUnix) return fmt::format("unix:{}", path);
  std::string_view prefix = kind == Kind::kTls ? kTlsPrefix : "";
  if (host.find(':') != std::string::npos) return fmt::format("{}[{}]:{}", prefix, host, port);
  return fmt::format("{}{}:{}", prefix, host, port);
}

Result<MetricsListen> MetricsListen::parse(std::string_view text) {
  auto ep = Endpoint::parse(text);
  if (!ep.ok()) return ep.status();
  // The HTTP server (civetweb) binds numeric addresses only, and serves no Unix socket.
  in_addr a4;
  in6_addr a6;
  if (ep->kind != Endpoint::Kind::kTcp || (inet_pton(AF_INET, ep->host.c_str(), &a4) != 1 &&
                                           inet_pton(AF_INET6, ep->host.c_str(), &a6) != 1)) {
    return Status::InvalidArgument(
        fmt::format("'{}': metrics are served over HTTP on an address and a port "
                    "(write 127.0.0.1:9370 or [::1]:9370)",
                    text));
  }
  return MetricsListen{*ep, 0};
}

Result<HostPattern> HostPattern::parse(std::string_view text) {
  auto fail = [&](std::string_view reason) {
    return Status::InvalidArgument(fmt::format("'{}': {}", text, reason));
  };
  if (text.empty()) return fail("empty (write an address such as 10.1.2.3 or a network)");
  HostPattern p;
  p.text = std::string(text);
  size_t slash = text.find('/');
  std::string address(text.substr(0, slash));
  if (inet_pton(AF_INET, address.c_str(), p.addr) == 1) {
    p.family = AF_INET;
    p.prefix_len = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), p.addr) == 1) {
    p.family = AF_INET6;
    p.prefix_len = 128;
  } else {
    std::string what = slash == std::string_view::npos ? "" : fmt::format("'{}' ", address);
    return fail(fmt::format(
        "{}is not an IP address (host names are not allowed: write an address such as 10.1.2.3 "
        "or a network such as 10.0.0.0/8)",
        what));
  }
  if (slash != std::string_view::npos) {
    std::string_view prefix = text.substr(slash + 1);
    int max = p.prefix_len;
    if (!all_digits(prefix) || prefix.size() > 3 || std::stoi(std::string(prefix)) > max) {
      return fail(fmt::format("bad prefix length '/{}' (use /0 to /{})", prefix, max));
    }
    p.prefix_len = std::stoi(std::string(prefix));
    // "10.0.0.1/8" is most likely a typing error: say so rather than guess.
    unsigned char network[16] = {};
    int bytes = p.family == AF_INET ? 4 : 16;
    for (int bit = 0; bit < p.prefix_len; ++bit) {
      network[bit / 8] |= p.addr[bit / 8] & static_cast<unsigned char>(0x80 >> (bit % 8));
    }
    if (std::memcmp(network, p.addr, static_cast<size_t>(bytes)) != 0) {
      char buf[INET6_ADDRSTRLEN] = {};
      inet_ntop(p.family, network, buf, sizeof buf);
      return fail(fmt::format("address bits are set past the /{} prefix (did you mean {}/{}?)",
                              p.prefix_len, buf, p.prefix_len));
    }
  }
  return p;
}

bool HostPattern::matches(const struct sockaddr* sa) const {
  if (sa == nullptr) return false;
  // ::ffff:0:0/96 holds IPv4 addresses seen through an IPv6 socket.
  static constexpr unsigned char kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (sa->sa_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
    const auto* peer = reinterpret_cast<const unsigned char*>(&sin->sin_addr);
    if (family == AF_INET) return prefix_equal(addr, peer, prefix_len);
    if (family == AF_INET6) {
      unsigned char mapped[16];
      std::memcpy(mapped, kMappedPrefix, 12);
      std::memcpy(mapped + 12, peer, 4);
      return prefix_equal(addr, mapped, prefix_len);
    }
    return false;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
    const auto* peer = reinterpret_cast<const unsigned char*>(&sin6->sin6_addr);
    if (family == AF_INET6) return prefix_equal(addr, peer, prefix_len);
    if (family == AF_INET && std::memcmp(peer, kMappedPrefix, 12) == 0) {
      return prefix_equal(addr, peer + 12, prefix_len);
    }
    return false;
  }
  return false;
}

}  // namespace vvm
