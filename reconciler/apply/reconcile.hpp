// The reconcile loop's pieces: resolve endpoints, read live state through the backends, apply an
// ordered plan (stopping at the first failure and saying what was and was not done), and verify
// that a fresh diff is empty afterwards.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "apply/keys.hpp"
#include "backend/backend.hpp"
#include "model/host_state.hpp"
#include "model/timing.hpp"
#include "plan/diff.hpp"

namespace wgf::apply {

struct Backends {
    backend::WireGuard& wg;
    backend::Links& links;
    backend::Sysctls& sysctls;
    backend::Firewall& firewall;
    backend::Files& files;
};

// DNS for endpoints: an explicit phase on every run and tick.
class Resolver {
public:
    virtual ~Resolver() = default;
    virtual std::optional<model::IpAddr> resolve(const std::string& host) = 0;
};

class SystemResolver : public Resolver {
public:
    std::optional<model::IpAddr> resolve(const std::string& host) override;
};

// Replaces DNS names in desired endpoints by addresses. A name that does not resolve leaves that
// peer without an endpoint and adds a warning; the rest converges.
void resolve_endpoints(model::HostState& desired, const model::Labels& labels, Resolver& resolver, std::vector<std::string>& warnings);

struct Live {
    model::HostState state;
    plan::LiveFacts facts;
    std::map<std::string, std::map<model::Key, backend::WgPeerStats>> stats;  // by interface
};

// Reads what the plan may touch: the desired and owned interfaces, our routes, the desired
// sysctls, our firewall table, the desired and owned files.
backend::Result<Live> read_live(Backends& b, const model::HostState& desired, const plan::Ownership& owned, int64_t now);

// read_live in two parts. The bulk needs only the names of the desired interfaces: those
// WireGuard devices (with link and addresses; one that exists but is not WireGuard is an error),
// our routes on them and our firewall table. The rest needs the rendered desired state:
// interfaces we own but no longer want (and our routes on them), the sysctls it names, the
// desired and owned files.
backend::Result<Live> read_live_bulk(Backends& b, const std::set<std::string>& desired_interfaces, int64_t now,
                                     model::Timings* timings = nullptr);
backend::Status read_live_rest(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live);
// The WireGuard devices among `names`; one that exists but is not WireGuard is an error when
// desired, else skipped.
backend::Status read_interfaces(Backends& b, const std::set<std::string>& names, const std::set<std::string>& desired_interfaces,
                                Live& live, model::Timings* timings = nullptr);
// Our routes on `devices` (the desired interfaces; read_live_rest adds those of owned ones) and
// our firewall table.
backend::Status read_tables(Backends& b, const std::set<std::string>& devices, Live& live, model::Timings* timings = nullptr);
// The desired and owned sysctls, and what plan::complete_sysctls needs: IPv6 forwarding and
// every interface's accept_ra.
backend::Status read_sysctls(Backends& b, const model::HostState& desired, const plan::Ownership& owned, Live& live);
std::set<std::string> interface_names(const model::HostState& desired);

class Journal {
public:
    virtual ~Journal() = default;
    virtual void record(const std::string& op_line, const backend::Status& result) = 0;
    // Called after each batch of operations: records may be buffered until then.
    virtual void flush() {}
};

struct ApplyOptions {
    // Called every few address changes on a device; false stops the apply (a userspace
    // implementation that died under a burst of changes).
    std::function<bool(const std::string& ifname)> device_alive;
    size_t address_chunk = 16;
};

struct ApplyResult {
    std::vector<std::string> done;       // op lines applied
    std::vector<std::string> not_done;   // op lines not applied (after a failure)
    std::optional<backend::Error> error;
    bool ok() const { return !error; }
};

ApplyResult apply_plan(Backends& b, const plan::Plan& plan, KeyStore& keys, Journal* journal, const ApplyOptions& opts = {});

}  // namespace wgf::apply
