// serve's HTTP listeners (cpp-httplib): each on threads of its own, every request handed to the
// Router. A listener may name an address the machine does not have yet (a fleet's ip6, which the
// first converge adds to the device): it is bound with IP_FREEBIND and answers once the address
// exists.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "model/net.hpp"
#include "serve/router.hpp"

namespace httplib {
class Server;
}

namespace wgf::serve {

// Bodies larger than this get 413.
inline constexpr size_t kMaxBody = 64 * 1024;

struct Listener {
    model::IpAddr addr;
    uint16_t port = 0;

    std::string str() const;
    bool loopback() const;
    auto operator<=>(const Listener&) const = default;
};

// "ADDR:PORT", "[V6]:PORT" or "V6:PORT" (the last colon separates the port).
std::optional<Listener> parse_listener(std::string_view text, std::string* why = nullptr);

class HttpServers {
public:
    explicit HttpServers(const Router& router);
    ~HttpServers();
    HttpServers(const HttpServers&) = delete;
    HttpServers& operator=(const HttpServers&) = delete;

    // Binds every listener and starts serving; on a failure nothing serves and the message says
    // which listener and why.
    std::optional<std::string> start(const std::vector<Listener>& listeners);
    void stop();

private:
    const Router& router_;
    std::vector<std::unique_ptr<httplib::Server>> servers_;
    std::vector<std::thread> threads_;
};

}  // namespace wgf::serve
