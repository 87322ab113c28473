// WgUapi: the backend::WireGuard of a userspace implementation, over its UAPI socket.
#include "linux/wg_uapi.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "linux/rtnl.hpp"
#include "model/fd.hpp"

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;
using backend::WgDeviceChange;
using backend::WgDeviceLive;

WgUapi::WgUapi(UapiOptions options) : options_(std::move(options)) {}

std::string WgUapi::socket_path(const std::string& ifname) const { return uapi_socket_path(options_.socket_dir, ifname); }

bool WgUapi::has_device(const std::string& ifname) const {
    model::Fd fd(uapi_connect(options_.socket_dir, ifname));
    return fd.fd >= 0;
}

bool WgUapi::has_socket(const std::string& ifname) const {
    struct stat st {};
    return model::valid_ifname(ifname) && stat(socket_path(ifname).c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::vector<std::string> WgUapi::list_devices() {
    std::vector<std::string> out;
    std::unique_ptr<DIR, int (*)(DIR*)> d(opendir(options_.socket_dir.c_str()), closedir);
    if (!d) return out;
    while (auto* e = readdir(d.get())) {
        std::string_view name = e->d_name;
        if (name.size() <= 5 || name.substr(name.size() - 5) != ".sock") continue;
        std::string ifname(name.substr(0, name.size() - 5));
        if (has_device(ifname)) out.push_back(std::move(ifname));
    }
    std::sort(out.begin(), out.end());
    return out;
}

Result<WgDeviceLive> WgUapi::read_device(const std::string& ifname) {
    const std::string what = "read WireGuard device " + ifname;
    model::Fd fd(uapi_connect(options_.socket_dir, ifname));
    if (fd.fd < 0) return uapi_connect_error(-fd.fd, what, socket_path(ifname));
    uapi_set_timeouts(fd.fd, options_.io_timeout_ms);
    static constexpr char kGet[] = "get=1\n\n";
    if (auto s = uapi_send(fd.fd, kGet, sizeof kGet - 1, what); !s) return s.error();
    uapi::GetReplyParser parser(ifname);
    if (auto s = uapi_read_reply(fd.fd, parser, what); !s) return s.error();
    return parser.finish();
}

Status WgUapi::set_device(const WgDeviceChange& change) {
    const std::string what = "set WireGuard device " + change.ifname;
    auto request = uapi::format_set_request(change);
    if (!request) return request.error();
    model::Fd fd(uapi_connect(options_.socket_dir, change.ifname));
    if (fd.fd < 0) return uapi_connect_error(-fd.fd, what, socket_path(change.ifname));
    uapi_set_timeouts(fd.fd, options_.io_timeout_ms);
    auto sent = uapi_send(fd.fd, request->data(), request->size(), what);
    uapi::SetReplyParser parser(change.ifname);
    auto got = uapi_read_reply(fd.fd, parser, what);
    // A daemon that rejects a line answers at once and drops the rest of a long request (the
    // send then fails with EPIPE): its errno, when it arrived, is the error worth reporting.
    if (!sent) {
        auto answer = parser.finish();
        return answer.is_ok() || answer.error().code == EPROTO ? sent : answer;
    }
    if (!got) return got;
    return parser.finish();
}

Status WgUapi::create_device(const std::string& ifname) {
    const std::string what = "create WireGuard device " + ifname;
    std::string why;
    if (!model::valid_ifname(ifname, &why)) return errno_error(EINVAL, what + ": " + why);
    if (has_device(ifname)) return errno_error(EEXIST, what + ": " + socket_path(ifname) + " already answers");
    auto argv = resolve_userspace_command(options_.userspace_command);
    if (!argv) return Error{argv.error().code, what + ": " + argv.error().message};
    return start_userspace(*argv, ifname, options_.socket_dir, options_.start_timeout_ms);
}

Status WgUapi::delete_device(const std::string& ifname) {
    const std::string what = "delete WireGuard device " + ifname;
    {
        model::Fd fd(uapi_connect(options_.socket_dir, ifname));
        if (fd.fd == -ECONNREFUSED) unlink(socket_path(ifname).c_str());  // its process is gone already
        if (fd.fd < 0) return uapi_connect_error(-fd.fd, what, socket_path(ifname));
    }

    auto pid = uapi_server_pid(options_.socket_dir, ifname);
    // The socket directory is shared by every network namespace: only delete the link when the
    // process serves a tun in ours; otherwise a same-named link here belongs to someone else.
    if (!pid || process_in_our_netns(*pid)) {
        Rtnl rtnl;
        auto s = rtnl.delete_link(ifname);
        if (!s && s.error().code != ENODEV) return errno_error(s.error().code, what + ": delete link");
    } else {
        kill(*pid, SIGTERM);
    }

    if (wait_userspace_gone(options_.socket_dir, ifname, options_.stop_timeout_ms)) return Status::ok();
    // The implementation ignored the loss of its tun: ask it to stop.
    if (pid && process_running(*pid)) {
        kill(*pid, SIGTERM);
        if (wait_userspace_gone(options_.socket_dir, ifname, options_.stop_timeout_ms)) return Status::ok();
    }
    return errno_error(ETIMEDOUT, what + ": " + socket_path(ifname) + " still answers " + std::to_string(options_.stop_timeout_ms) +
                                      " ms after the link was deleted");
}

}  // namespace wgf::linux_
