#include "linux/userspace_pacing.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "linux/wg_select.hpp"

namespace wgf::linux_ {

UserspaceProbe userspace_probe(const WgSelect& wg) {
    return UserspaceProbe{
        .is_userspace = [&wg](const std::string& ifname) { return wg.transport_for(ifname) == WgSelect::Transport::userspace; },
        .alive = [&wg](const std::string& ifname) { return wg.userspace_alive(ifname); },
    };
}

UserspacePacing::UserspacePacing(backend::Links& inner, UserspaceProbe probe, PacingOptions options)
    : inner_(inner), probe_(std::move(probe)), options_(std::move(options)) {
    if (!options_.pause) options_.pause = [] { usleep(1000); };
}

backend::Status UserspacePacing::after_change(const std::string& name) {
    if (!probe_.is_userspace(name)) return backend::Status::ok();
    if (++changes_[name] % std::max<size_t>(1, options_.chunk) == 0) options_.pause();
    if (probe_.alive(name)) return backend::Status::ok();
    return backend::Error{EIO, fmt::format("the userspace WireGuard process of {} exited during address changes", name)};
}

backend::Status UserspacePacing::add_address(const std::string& name, const model::Prefix& addr) {
    auto s = inner_.add_address(name, addr);
    return s ? after_change(name) : s;
}

backend::Status UserspacePacing::del_address(const std::string& name, const model::Prefix& addr) {
    auto s = inner_.del_address(name, addr);
    return s ? after_change(name) : s;
}

backend::Result<std::optional<backend::LinkLive>> UserspacePacing::read_link(const std::string& name) { return inner_.read_link(name); }

backend::Result<model::AddressSet> UserspacePacing::read_addresses(const std::string& name) { return inner_.read_addresses(name); }

backend::Result<std::set<model::Route>> UserspacePacing::read_routes(const std::set<std::string>& devices) {
    return inner_.read_routes(devices);
}

backend::Status UserspacePacing::set_mtu(const std::string& name, uint32_t mtu) { return inner_.set_mtu(name, mtu); }

backend::Status UserspacePacing::set_up(const std::string& name, bool up) { return inner_.set_up(name, up); }

backend::Status UserspacePacing::add_route(const model::Route& route) { return inner_.add_route(route); }

backend::Status UserspacePacing::del_route(const model::Route& route) { return inner_.del_route(route); }

backend::Result<std::set<model::PolicyRule>> UserspacePacing::read_rules() { return inner_.read_rules(); }

backend::Status UserspacePacing::add_rule(const model::PolicyRule& rule) { return inner_.add_rule(rule); }

backend::Status UserspacePacing::del_rule(const model::PolicyRule& rule) { return inner_.del_rule(rule); }

}  // namespace wgf::linux_
