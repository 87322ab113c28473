// Test support for tests against the real kernel: network namespaces, veth pairs and processes
// that the test creates and always removes (RAII, also when an assertion fails). Used by the
// netns tests and the benchmarks, so it does not depend on Catch.
//
// Without root a namespace test is skipped: its process exits 77, which ctest reports as
// "Skipped" (SKIP_RETURN_CODE), not as a pass that tested nothing. Under CI (CI=true) it fails
// instead, because CI runs as root and must exercise every layer.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "backend/backend.hpp"

namespace wgf::test {

// Why network namespaces cannot be created here (not root, no iproute2); empty when they can.
std::string netns_missing();

// Returns true when namespaces can be created. Otherwise prints why and ends the process: exit
// 77 (skipped), or 1 under CI. The netns tests' main calls it before any test case runs.
bool netns_available();

// True when the kernel can create a `wireguard` link (module present). Otherwise the test
// process exits with 77, which ctest reports as skipped; [kernel] tests skip so even in CI.
bool kernel_wireguard_available();

// Runs a shell command; returns its exit status (127 if it could not start). Output is captured.
struct CmdResult {
    int status = -1;
    std::string out;
};
CmdResult sh(const std::string& command);

// A unique short name for this process: prefix + pid-derived suffix (fits interface names).
std::string unique_name(const std::string& prefix);

// A named network namespace (`ip netns add`), deleted in the destructor.
class Netns {
public:
    explicit Netns(const std::string& prefix = "wgft");
    ~Netns();
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;
    const std::string& name() const { return name_; }
    // Runs a shell command inside the namespace.
    CmdResult sh(const std::string& command) const;

private:
    std::string name_;
};

// Moves the calling thread into a namespace for its lifetime; sockets opened meanwhile stay bound
// to that namespace. Restores the original namespace in the destructor.
class InNetns {
public:
    explicit InNetns(const Netns& ns);
    ~InNetns();
    InNetns(const InNetns&) = delete;
    InNetns& operator=(const InNetns&) = delete;

private:
    int orig_ = -1;
};

// A veth pair between two namespaces with an IPv4 /24 address on each end, both up.
void veth_pair(const Netns& a, const std::string& ifa, const std::string& addr_a, const Netns& b, const std::string& ifb,
               const std::string& addr_b);

// A child process (e.g. `wireguard-go -f IF` inside a namespace), killed by PID and reaped in
// the destructor. argv[0] is looked up in PATH.
class Process {
public:
    Process(const std::vector<std::string>& argv, const Netns* ns = nullptr);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    pid_t pid() const { return pid_; }
    bool alive();
    void kill_now();

private:
    pid_t pid_ = -1;
};

// Starts `wireguard-go -f IFNAME` in the namespace and waits until its UAPI socket answers.
class WireguardGo {
public:
    WireguardGo(const Netns& ns, const std::string& ifname);
    ~WireguardGo();
    const std::string& ifname() const { return ifname_; }
    pid_t pid() const { return proc_.pid(); }
    bool alive() { return proc_.alive(); }

private:
    std::string ifname_;
    Process proc_;
};

// Waits until pred() or the deadline; returns pred()'s last value. For convergence, not timing.
template <class F>
bool wait_for(F&& pred, int timeout_ms = 10000);
bool sleep_ms(int ms);

template <class F>
bool wait_for(F&& pred, int timeout_ms) {
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        if (pred()) return true;
        sleep_ms(50);
    }
    return pred();
}

// A device change that loads `peers` peers, each with its own /32 in 10.100.0.0/16 and an endpoint
// in 10.200.0.0/16 (up to 64,000 peers), and a fresh private key: the large load of the UAPI test
// and of its benchmark.
backend::WgDeviceChange many_peers(const std::string& ifname, int peers);
// The same load as a `wg setconf` file at `path`.
void write_wg_conf(const std::string& path, const backend::WgDeviceChange& load);

}  // namespace wgf::test
