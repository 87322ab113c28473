// sandbox: the whole fleet on one machine. Each node gets a network namespace on a shared
// underlay (a bridge in its own namespace), its own state_dir, and a mount namespace of its own
// in which two paths are the node's: /run/wireguard (userspace UAPI sockets, named by interface
// only, would otherwise be shared by every node, and nodes of one fleet use the same interface
// name) and /etc/hosts (the resolver's file: localhost, the underlay names of endpoints, and the
// node's hosts_file). Every other path is the host's; the files wg-fleet manages for a node
// (hosts_file, http_routes_dir) are written under the node's directory, at files/PATH, so no node
// writes the host's. Nodes generate their keys and publish them to a shared keys directory, then
// each applies its part; a member with routes gets an address inside each announced prefix on
// its loopback. `test` pings every pair over IPv6, IPv4 and host names, and every announced route
// from every other member; `plan` runs each node's plan of a file without applying it.
//
// Every `wg-fleet ...` of a node runs this binary's command line in a process inside the node,
// with the node's name, state_dir, keys directory and file root preset (cli::Context::run): the
// main command line has no options for them.
//
// Everything lives under /run/wg-fleet-sandbox/NAME; `down` removes it all, `up --prune` a node.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sandbox/actions.hpp"
#include "sandbox/sandbox.hpp"

#include "plan/address_plan.hpp"

namespace wgf::sandbox {
namespace {

using cli::Globals;
using cli::kChanges;
using cli::kError;
using cli::kOk;
using cli::load;
using cli::Loaded;

namespace fs = std::filesystem;

struct Node {
    std::string name;
    std::string netns;
    std::string underlay;  // IPv4 address on the underlay
    std::string veth;      // its end in the underlay namespace
};

struct Sandbox {
    std::string name;
    std::string config;
    fs::path dir;
    std::string underlay_ns;
    std::vector<Node> nodes;

    fs::path node_dir(const Node& n) const { return dir / "nodes" / n.name; }
    fs::path keys_dir() const { return dir / "keys"; }
};

struct Out {
    int status = -1;
    std::string text;
};

// Replaces this process by argv (PATH lookup); returns only when that fails.
int exec_argv(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::cerr << fmt::format("wg-fleet sandbox: cannot run {}: {}\n", args[0], strerror(errno));
    return 127;
}

void flush_all() {
    std::cout.flush();
    std::cerr.flush();
    fflush(nullptr);
}

// Runs `child` in a child process (its result is the exit status), capturing its stdout and
// stderr together, or only its stdout (JSON to parse) with its stderr left as ours. Output
// buffered here is flushed first, or the child would print it again.
Out capture(const std::function<int()>& child, bool with_stderr = true) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return {};
    flush_all();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        if (with_stderr) dup2(pipefd[1], 2);
        int rc = child();
        flush_all();
        _exit(rc);
    }
    close(pipefd[1]);
    Out out;
    char buf[4096];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0) out.text.append(buf, static_cast<size_t>(n));
    close(pipefd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    out.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return out;
}

// Runs argv (PATH lookup), capturing stdout and stderr together.
Out run(const std::vector<std::string>& argv, const std::function<void()>& in_child = {}) {
    return capture([&] {
        if (in_child) in_child();
        return exec_argv(argv);
    });
}

bool must(const std::vector<std::string>& argv) {
    auto o = run(argv);
    if (o.status != 0) {
        std::string cmd;
        for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
        std::cerr << fmt::format("wg-fleet sandbox: `{}` failed: {}", cmd, o.text);
    }
    return o.status == 0;
}

// In the child: enter the node's network namespace and give it its own UAPI socket directory
// and /etc/hosts, in a mount namespace of its own.
[[noreturn]] void node_fail(const Node& n, const std::string& what) {
    fprintf(stderr, "wg-fleet sandbox: cannot enter node %s: %s: %s\n", n.name.c_str(), what.c_str(), strerror(errno));
    _exit(126);
}

void enter_node(const Sandbox& sb, const Node& n) {
    int fd = open(("/run/netns/" + n.netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) node_fail(n, "open /run/netns/" + n.netns);
    if (setns(fd, CLONE_NEWNET) != 0) node_fail(n, "setns");
    if (unshare(CLONE_NEWNS) != 0) node_fail(n, "unshare the mount namespace");
    // Slave propagation: our mounts must not leak back into the host.
    if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) node_fail(n, "make / a slave mount");
    fs::path nd = sb.node_dir(n);
    if (mount((nd / "wireguard").c_str(), "/run/wireguard", nullptr, MS_BIND, nullptr) != 0) node_fail(n, "bind /run/wireguard");
    if (mount((nd / "hosts").c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0) node_fail(n, "bind /etc/hosts");
    // sysfs of this network namespace, as `ip netns exec` does.
    umount2("/sys", MNT_DETACH);
    mount("sysfs", "/sys", "sysfs", 0, nullptr);
}

Out run_in_node(const Sandbox& sb, const Node& n, const std::vector<std::string>& argv) {
    return run(argv, [&] { enter_node(sb, n); });
}

bool node_netns_exists(const Node& n) { return fs::exists("/run/netns/" + n.netns); }

// What entering a node binds: the mount points on the host (/run/wireguard, /etc/hosts) and each
// node's own directory and hosts file. Anything missing (a tmpfiles clean-up, a hand-removed
// directory) is made again, and said on stderr, so that `exec` and the node's runs work.
void ensure_mount_points(const Sandbox& sb) {
    std::error_code ec;
    if (!fs::is_directory("/run/wireguard")) {
        fs::create_directories("/run/wireguard", ec);
        std::cerr << "wg-fleet sandbox: note: created /run/wireguard, where each node's UAPI socket directory is mounted; it was missing\n";
    }
    // A machine without /etc/hosts (a bare debootstrap) gets the usual localhost one.
    if (!fs::exists("/etc/hosts")) {
        std::ofstream("/etc/hosts") << "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n";
        std::cerr
            << "wg-fleet sandbox: note: created /etc/hosts (localhost only), where each node's hosts file is mounted; it did not exist\n";
    }
    for (const auto& n : sb.nodes) {
        if (!fs::is_directory(sb.node_dir(n) / "wireguard")) {
            fs::create_directories(sb.node_dir(n) / "wireguard", ec);
            std::cerr << fmt::format(
                "wg-fleet sandbox: note: created {} (node {}'s /run/wireguard); it was missing, and a userspace device of {} that "
                "had its socket there needs `wg-fleet sandbox up` again\n",
                (sb.node_dir(n) / "wireguard").string(), n.name, n.name);
        }
        if (!fs::exists(sb.node_dir(n) / "hosts")) {
            std::ofstream(sb.node_dir(n) / "hosts") << "127.0.0.1 localhost\n::1 localhost\n";
            std::cerr << fmt::format(
                "wg-fleet sandbox: note: created {} (node {}'s /etc/hosts) with localhost only; it was missing, and `wg-fleet "
                "sandbox up` or `test` writes the fleet's names again\n",
                (sb.node_dir(n) / "hosts").string(), n.name);
        }
    }
}

// The node's hosts file as wg-fleet wrote it there (hosts_file under its file root).
fs::path node_hosts_file(const Sandbox& sb, const Node& n, const std::string& hosts_file) {
    return (sb.node_dir(n) / "files").string() + hosts_file;
}

// A node's /etc/hosts: localhost, the underlay names of endpoints, and the hosts file wg-fleet
// wrote for it. Rewritten in place: it is bind-mounted.
void write_node_hosts(const Sandbox& sb, const Node& n, const std::string& underlay_names, const std::string& hosts_file) {
    std::ifstream fleet_hosts(node_hosts_file(sb, n, hosts_file));
    std::string fleet((std::istreambuf_iterator<char>(fleet_hosts)), std::istreambuf_iterator<char>());
    std::ofstream(sb.node_dir(n) / "hosts", std::ios::trunc) << "127.0.0.1 localhost\n::1 localhost\n" << underlay_names << fleet;
}

// The address the sandbox stands in for a host behind a subnet router with: the first host of
// the announced prefix (the prefix itself when it is a single address).
model::IpAddr first_host(const model::Prefix& p) {
    model::IpAddr a = p.masked().addr;
    if (p.len >= a.bits()) return a;
    for (size_t i = a.is_v4() ? 4 : 16; i-- > 0;)
        if (++a.bytes[i] != 0) break;
    return a;
}

// Every announced prefix with the node that announces it, over all fleets.
std::vector<std::pair<model::Prefix, std::string>> announced_routes(const model::Config& cfg) {
    std::vector<std::pair<model::Prefix, std::string>> out;
    for (const auto& [fname, f] : cfg.fleets)
        for (const auto* group : {&f.controllers, &f.peers})
            for (const auto& [n, m] : *group)
                for (const auto& r : m.routes) out.emplace_back(r, n);
    return out;
}

// Puts the first address of each prefix the node announces on its loopback, and removes the
// ones a previous `up` put there for prefixes it no longer announces: pinging that address from
// another member proves the prefix is routed to this node and the answer finds its way back.
bool place_route_addresses(const Node& n, const std::vector<model::Prefix>& prefixes) {
    std::set<std::string> want;
    for (const auto& p : prefixes) want.insert(model::Prefix::host(first_host(p)).str());
    auto listed = run({"ip", "-n", n.netns, "-o", "addr", "show", "dev", "lo"});
    std::istringstream ls(listed.text);
    std::string line;
    bool ok = true;
    while (std::getline(ls, line)) {
        std::istringstream words(line);
        std::string w, addr;
        while (words >> w)
            if ((w == "inet" || w == "inet6") && words >> addr) break;
        if (addr.empty() || addr == "127.0.0.1/8" || addr == "::1/128" || want.count(addr)) continue;
        ok = must({"ip", "-n", n.netns, "addr", "del", addr, "dev", "lo"}) && ok;
    }
    for (const auto& a : want) ok = must({"ip", "-n", n.netns, "addr", "replace", a, "dev", "lo"}) && ok;
    return ok;
}

fs::path sandbox_dir(const std::string& name) { return fs::path("/run/wg-fleet-sandbox") / name; }

bool save(const Sandbox& sb) {
    nlohmann::ordered_json j{{"name", sb.name}, {"config", sb.config}, {"underlay_ns", sb.underlay_ns}};
    auto& nodes = j["nodes"] = nlohmann::ordered_json::array();
    for (const auto& n : sb.nodes) nodes.push_back({{"name", n.name}, {"netns", n.netns}, {"underlay", n.underlay}, {"veth", n.veth}});
    std::ofstream out(sb.dir / "sandbox.json");
    out << j.dump(1) << "\n";
    return bool(out);
}

std::optional<Sandbox> restore(const std::string& name) {
    std::ifstream in(sandbox_dir(name) / "sandbox.json");
    if (!in) return std::nullopt;
    try {
        auto j = nlohmann::json::parse(in);
        Sandbox sb{
            .name = j.at("name"), .config = j.at("config"), .dir = sandbox_dir(name), .underlay_ns = j.at("underlay_ns"), .nodes = {}};
        for (const auto& n : j.at("nodes")) sb.nodes.push_back({n.at("name"), n.at("netns"), n.at("underlay"), n.at("veth")});
        return sb;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

std::optional<Sandbox> restore_or_say(const std::string& name) {
    auto sb = restore(name);
    if (!sb) std::cerr << fmt::format("wg-fleet sandbox: no sandbox '{}'; run `wg-fleet sandbox up FILE --name {}`\n", name, name);
    return sb;
}

std::string prefix24(const std::string& ip) { return ip.substr(0, ip.rfind('.') + 1); }

// The underlay address of each node: an IPv4 endpoint in the file is used as is; everyone else
// keeps the address it has in the sandbox when that is in the same /24 and no endpoint claims it,
// or gets the next free address of that /24 from .100 up, away from the ones people write
// (10.77.0.0/24 when the file names none). Endpoint host names are mapped to their node's
// underlay address in each node's /etc/hosts.
std::map<std::string, std::string> underlay_plan(const model::Config& cfg, const plan::NodeIndex& index, const std::vector<Node>& have,
                                                 std::map<std::string, std::string>& names) {
    std::map<std::string, std::string> addr;
    std::set<std::string> used;
    std::string base = "10.77.0.";
    for (const auto& [fname, f] : cfg.fleets) {
        auto note = [&](const std::string& node, const std::optional<model::Endpoint>& ep) {
            if (!ep) return;
            auto ip = model::IpAddr::parse(ep->host);
            if (ip && ip->is_v4() && !addr.count(node)) {
                if (used.count(ip->str())) {
                    std::cerr << fmt::format(
                        "wg-fleet sandbox: warning: {} has endpoint {}, which another node has already; {} gets another\n", node, ip->str(),
                        node);
                    return;
                }
                addr[node] = ip->str();
                used.insert(ip->str());
                base = prefix24(ip->str());
            } else if (!ip) {
                names[ep->host] = node;
            }
        };
        for (const auto& [n, m] : f.controllers) note(n, m.endpoint);
        for (const auto& [n, m] : f.peers) note(n, m.endpoint);
        if (f.external_ip) note(f.server, model::Endpoint{*f.external_ip, f.port});
    }
    // A node no longer in the file (kept without --prune) keeps its address on the underlay.
    std::set<std::string> stale;
    for (const auto& n : have)
        if (!index.count(n.name)) {
            stale.insert(n.underlay);
            for (const auto& [node, a] : addr)
                if (a == n.underlay)
                    std::cerr << fmt::format(
                        "wg-fleet sandbox: warning: {}'s endpoint {} is also the underlay address of {}, no longer in the file; "
                        "`--prune` removes {}\n",
                        node, a, n.name, n.name);
        }
    for (const auto& n : have)
        if (index.count(n.name) && !addr.count(n.name) && prefix24(n.underlay) == base && !used.count(n.underlay) &&
            !stale.count(n.underlay)) {
            addr[n.name] = n.underlay;
            used.insert(n.underlay);
        }
    int next = 100;
    for (const auto& [node, ms] : index) {
        if (addr.count(node)) continue;
        while (next < 255 && (used.count(base + std::to_string(next)) || stale.count(base + std::to_string(next)))) ++next;
        addr[node] = base + std::to_string(next);
        used.insert(addr[node]);
    }
    return addr;
}

// Whether a process's environment (NUL-separated) holds `entry` exactly.
bool has_env(const std::string& environ, const std::string& entry) {
    for (size_t i = 0; i < environ.size();) {
        size_t end = environ.find('\0', i);
        if (end == std::string::npos) end = environ.size();
        if (environ.compare(i, end - i, entry) == 0) return true;
        i = end + 1;
    }
    return false;
}

// Stops every process a node of the sandbox started (all nodes when `node` is empty): each has
// WG_FLEET_SANDBOX, and WG_FLEET_SANDBOX_NODE, in its environment, and a userspace WireGuard
// inherits them. SIGTERM, then SIGKILL after a few seconds.
void stop_node_processes(const std::string& name, const std::string& node) {
    for (int i = 0; i < 50; ++i) {
        bool any = false;
        std::error_code ec;
        for (const auto& proc : fs::directory_iterator("/proc", ec)) {
            const std::string pid = proc.path().filename().string();
            if (pid.find_first_not_of("0123456789") != std::string::npos || std::stoi(pid) == getpid()) continue;
            std::ifstream env(proc.path() / "environ");
            const std::string all((std::istreambuf_iterator<char>(env)), std::istreambuf_iterator<char>());
            if (!has_env(all, "WG_FLEET_SANDBOX=" + name) || (!node.empty() && !has_env(all, "WG_FLEET_SANDBOX_NODE=" + node))) continue;
            // A zombie has exited and waits for its parent: the state after "(comm)" in stat.
            std::ifstream stat_file(proc.path() / "stat");
            const std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
            if (auto close = stat.rfind(')'); close != std::string::npos && stat.compare(close, 3, ") Z") == 0) continue;
            kill(std::stoi(pid), i < 25 ? SIGTERM : SIGKILL);
            any = true;
        }
        if (!any) return;
        usleep(100000);
    }
}

// Deletes a node's links (deleting a userspace device's tun link makes wireguard-go exit), stops
// every process still in its network namespace (a `watch` started with `exec`), and deletes the
// namespace; its veth on the underlay goes with it.
void remove_node_namespace(const Node& n) {
    if (!node_netns_exists(n)) return;
    auto links = run({"ip", "-n", n.netns, "-o", "link", "show"});
    std::istringstream ls(links.text);
    std::string line;
    while (std::getline(ls, line)) {
        auto a = line.find(": "), b = line.find(':', a + 2);
        if (a == std::string::npos || b == std::string::npos) continue;
        std::string ifname = line.substr(a + 2, b - a - 2);
        ifname = ifname.substr(0, ifname.find('@'));
        if (ifname != "lo" && ifname != "eth0") run({"ip", "-n", n.netns, "link", "del", ifname});
    }
    for (int i = 0; i < 50; ++i) {
        auto pids = run({"ip", "netns", "pids", n.netns});
        std::istringstream ps(pids.text);
        std::string pid;
        bool any = false;
        while (ps >> pid) {
            kill(std::stoi(pid), i < 25 ? SIGTERM : SIGKILL);
            any = true;
        }
        if (!any) break;
        usleep(100000);
    }
    run({"ip", "netns", "del", n.netns});
}

// --prune: a node no longer in the file goes entirely: namespace, processes, its directory and
// the public keys it published.
void prune_node(Sandbox& sb, const Node& n) {
    remove_node_namespace(n);
    stop_node_processes(sb.name, n.name);
    std::error_code ec;
    fs::remove_all(sb.node_dir(n), ec);
    for (const auto& fleet_dir : fs::directory_iterator(sb.keys_dir(), ec)) fs::remove(fleet_dir.path() / (n.name + ".pub"), ec);
    std::cout << fmt::format("== {}: pruned (no longer in the file): namespace {}, its processes and {} removed\n", n.name, n.netns,
                             sb.node_dir(n).string());
}

}  // namespace

int sandbox_down(const std::string& name, bool quiet) {
    auto sb = restore(name);
    if (!sb) {
        if (!quiet)
            std::cerr << fmt::format("wg-fleet sandbox: no sandbox '{}' ({} missing)\n", name,
                                     (sandbox_dir(name) / "sandbox.json").string());
        std::error_code ec;
        fs::remove_all(sandbox_dir(name), ec);
        return quiet ? kOk : kError;
    }
    for (const auto& n : sb->nodes) remove_node_namespace(n);
    run({"ip", "netns", "del", sb->underlay_ns});
    // Processes started in a node's mount namespace may linger a moment after their link went.
    stop_node_processes(name, "");
    std::error_code ec;
    fs::remove_all(sb->dir, ec);
    if (!quiet) std::cout << fmt::format("sandbox {}: removed {} namespaces and {}\n", name, sb->nodes.size() + 1, sb->dir.string());
    return kOk;
}

namespace {

// What a node's `wg-fleet` runs with before its own arguments: the sandbox's file, the node's
// name and state, public keys only from the sandbox's keys directory (every node generates its
// own), and every managed file under the node's directory. No "pending" warnings: the sandbox
// makes every key, so a member without one is not waiting for anything.
Globals node_globals(const Sandbox& sb, const Node& n) {
    Globals g;
    g.config = sb.config;
    g.node = n.name;
    g.state_dir = (sb.node_dir(n) / "state").string();
    g.keys_only_from = sb.keys_dir().string();
    g.files_root = (sb.node_dir(n) / "files").string();
    g.hide_pending = true;
    return g;
}

// In a process that has entered the node: wg-fleet's command line, as the node. WG_FLEET_SANDBOX
// marks the processes it starts (wireguard-go inherits it) for `down`.
int wg_fleet_as_node(const cli::Context& ctx, const Sandbox& sb, const Node& n, const std::vector<std::string>& args) {
    setenv("WG_FLEET_SANDBOX", sb.name.c_str(), 1);
    setenv("WG_FLEET_SANDBOX_NODE", n.name.c_str(), 1);
    return ctx.run(args, node_globals(sb, n));
}

// Runs wg-fleet as `node` inside its namespaces, capturing its output (see capture).
Out node_wg_fleet(const cli::Context& ctx, const Sandbox& sb, const Node& n, const std::vector<std::string>& args,
                  bool with_stderr = true) {
    return capture(
        [&] {
            enter_node(sb, n);
            return wg_fleet_as_node(ctx, sb, n, args);
        },
        with_stderr);
}

std::string underlay_hosts(const Sandbox& sb, const std::map<std::string, std::string>& names) {
    std::string out;
    for (const auto& [host, node] : names)
        for (const auto& n : sb.nodes)
            if (n.name == node) out += fmt::format("{} {}\n", n.underlay, host);
    return out;
}

// The node's namespace on the underlay: a veth pair, eth0 in the node with its underlay address.
bool create_node_namespace(const Sandbox& sb, const Node& n) {
    return must({"ip", "netns", "add", n.netns}) && must({"ip", "-n", n.netns, "link", "set", "lo", "up"}) &&
           must({"ip", "link", "add", n.veth, "netns", sb.underlay_ns, "type", "veth", "peer", "name", "eth0", "netns", n.netns}) &&
           must({"ip", "-n", sb.underlay_ns, "link", "set", n.veth, "master", "br0", "up"}) &&
           must({"ip", "-n", n.netns, "addr", "add", n.underlay + "/24", "dev", "eth0"}) &&
           must({"ip", "-n", n.netns, "link", "set", "eth0", "up"});
}

bool add_node(Sandbox& sb, const std::string& node, const std::string& ip) {
    // The veth's name in the underlay namespace: the first number no node of this sandbox uses
    // (a pruned node frees its own).
    std::set<std::string> veths;
    for (const auto& n : sb.nodes) veths.insert(n.veth);
    std::string veth;
    for (size_t i = 0; veth.empty() || veths.count(veth); ++i) veth = fmt::format("sb{}{}", sb.name.substr(0, 4), i);
    Node n{.name = node, .netns = "wgfsb-" + sb.name + "-" + node, .underlay = ip, .veth = veth};
    std::error_code ec;
    fs::create_directories(sb.node_dir(n) / "wireguard", ec);
    fs::create_directories(sb.node_dir(n) / "files", ec);
    std::ofstream(sb.node_dir(n) / "hosts") << "127.0.0.1 localhost\n";
    sb.nodes.push_back(n);
    return save(sb) && create_node_namespace(sb, n);
}

// Nodes of the sandbox whose endpoint (so underlay address) changed get their new address; every
// old address goes before any new one is added, so two nodes may swap theirs. Adds the names of
// the nodes moved to `moved`.
bool move_underlay(Sandbox& sb, const std::map<std::string, std::string>& addrs, std::set<std::string>& moved) {
    std::vector<Node*> nodes;
    for (auto& n : sb.nodes)
        if (auto it = addrs.find(n.name); it != addrs.end() && it->second != n.underlay && node_netns_exists(n)) nodes.push_back(&n);
    bool ok = true;
    for (Node* n : nodes) ok = must({"ip", "-n", n->netns, "addr", "del", n->underlay + "/24", "dev", "eth0"}) && ok;
    for (Node* n : nodes) {
        std::cout << fmt::format("== {}: underlay address {} -> {} (its endpoint changed)\n", n->name, n->underlay, addrs.at(n->name));
        n->underlay = addrs.at(n->name);
        moved.insert(n->name);
        ok = must({"ip", "-n", n->netns, "addr", "add", n->underlay + "/24", "dev", "eth0"}) && ok;
    }
    return save(sb) && ok;
}

// After a node's underlay address moved, each of its peers' endpoints is set again to what it
// is. A userspace WireGuard (wireguard-go) keeps the source address it last answered each peer
// from and sends from it until that peer's next packet arrives (a keepalive, up to 25 s later),
// and that address is gone; setting the endpoint forgets it. The kernel's WireGuard does so by
// itself when a send fails, and keeps its sessions either way.
void refresh_endpoints(const Sandbox& sb, const Node& n) {
    std::istringstream devices(run_in_node(sb, n, {"wg", "show", "interfaces"}).text);
    std::string dev;
    while (devices >> dev) {
        std::istringstream lines(run_in_node(sb, n, {"wg", "show", dev, "endpoints"}).text);
        std::string key, endpoint;
        while (lines >> key >> endpoint)
            if (endpoint != "(none)") run_in_node(sb, n, {"wg", "set", dev, "peer", key, "endpoint", endpoint});
    }
}

// Nodes of the sandbox no longer in the file: removed with --prune, else named with the way to
// remove them.
void handle_stale(Sandbox& sb, const plan::NodeIndex& index, const std::string& file, const UpOptions& o) {
    std::vector<Node> stale, keep;
    for (const auto& n : sb.nodes) (index.count(n.name) ? keep : stale).push_back(n);
    if (stale.empty()) return;
    if (o.prune) {
        for (const auto& n : stale) prune_node(sb, n);
        sb.nodes = keep;
        save(sb);
        return;
    }
    std::string list;
    for (const auto& n : stale) list += (list.empty() ? "" : ", ") + n.name;
    const bool one = stale.size() == 1;
    std::cout << fmt::format(
        "== stale: {} {} no longer in {} and {} left as {} (no other node has {} as a peer now). `wg-fleet sandbox up {} --name {} "
        "--prune` removes {}\n",
        list, one ? "is" : "are", file, one ? "is" : "are", one ? "it is" : "they are", one ? "it" : "them", file, sb.name,
        one ? "it" : "them");
}

// The underlay: a bridge in a namespace of its own, one veth per node. Made when the sandbox is
// created, and again when it went missing.
bool ensure_underlay(const Sandbox& sb, bool created) {
    if (!created && fs::exists("/run/netns/" + sb.underlay_ns)) return true;
    if (!created) std::cout << fmt::format("== sandbox {}: its underlay namespace {} was gone; created again\n", sb.name, sb.underlay_ns);
    return must({"ip", "netns", "add", sb.underlay_ns}) && must({"ip", "-n", sb.underlay_ns, "link", "add", "br0", "type", "bridge"}) &&
           must({"ip", "-n", sb.underlay_ns, "link", "set", "br0", "up"});
}

// A node whose namespace was made again has a new veth (a new MAC address for its underlay
// address, which the others' neighbour tables still map to the old one) and a new WireGuard device
// with its old key: the other members' sessions with it are dead, and a userspace WireGuard
// notices only when a rekey times out (15 s or more). Each other member forgets both; its apply
// adds the peer back, without a session, so the first packet starts a handshake.
void forget_sessions_with(const Sandbox& sb, const Node& node) {
    std::set<std::string> keys;
    std::error_code ec;
    for (const auto& fleet_dir : fs::directory_iterator(sb.keys_dir(), ec)) {
        std::ifstream in(fleet_dir.path() / (node.name + ".pub"));
        std::string key;
        if (in >> key) keys.insert(key);
    }
    for (const auto& n : sb.nodes) {
        if (n.name == node.name || !node_netns_exists(n)) continue;
        run({"ip", "-n", n.netns, "neigh", "flush", "to", node.underlay, "dev", "eth0"});
        std::istringstream devices(run_in_node(sb, n, {"wg", "show", "interfaces"}).text);
        std::string dev;
        while (devices >> dev)
            for (const auto& key : keys) run_in_node(sb, n, {"wg", "set", dev, "peer", key, "remove"});
    }
}

// The nodes' namespaces as the file wants them: stale ones named or pruned, deleted ones made
// again, moved endpoints' underlay addresses moved (named in `moved`), new nodes added.
bool converge_namespaces(Sandbox& sb, const Loaded& l, const std::string& file, const UpOptions& opts, std::set<std::string>& moved,
                         std::map<std::string, std::string>& names) {
    const auto& index = l.fleet->index;
    handle_stale(sb, index, file, opts);
    for (const auto& n : sb.nodes)
        if (index.count(n.name) && !node_netns_exists(n)) {
            std::cout << fmt::format("== {}: its network namespace {} was gone; created again\n", n.name, n.netns);
            // The node's processes keep the old namespace alive, and with it the veth's other
            // end and their UAPI sockets: they go first.
            stop_node_processes(sb.name, n.name);
            run({"ip", "-n", sb.underlay_ns, "link", "del", n.veth});
            std::error_code ec;
            for (const auto& sock : fs::directory_iterator(sb.node_dir(n) / "wireguard", ec)) fs::remove(sock.path(), ec);
            if (!create_node_namespace(sb, n)) return false;
            forget_sessions_with(sb, n);
        }
    const auto addrs = underlay_plan(l.cfg(), index, sb.nodes, names);
    if (!move_underlay(sb, addrs, moved)) return false;
    std::set<std::string> have;
    for (const auto& n : sb.nodes) have.insert(n.name);
    for (const auto& [node, ip] : addrs)
        if (!have.count(node) && !add_node(sb, node, ip)) return false;
    return true;
}

// Every member's key first, so that each apply knows every peer; then each member's plan and
// apply. Returns the number of members that failed.
int apply_members(const cli::Context& ctx, const Sandbox& sb, const std::vector<const Node*>& members, bool verbose) {
    for (const Node* n : members) {
        auto o = node_wg_fleet(ctx, sb, *n, {"-q", "keygen"});
        if (o.status != 0) {
            std::cerr << fmt::format("wg-fleet sandbox: keygen on {} failed:\n{}", n->name, o.text);
            return static_cast<int>(members.size());
        }
    }
    int failed = 0;
    for (const Node* n : members) {
        std::cout << fmt::format("== {} ({}, underlay {})\n", n->name, n->netns, n->underlay);
        if (ctx.g.quiet == 0) std::cout << node_wg_fleet(ctx, sb, *n, {"-q", "plan"}).text;
        auto o = node_wg_fleet(ctx, sb, *n, {verbose ? "-v" : "-q", "apply"});
        std::cout << o.text;
        if (o.status != 0) {
            std::cerr << fmt::format("wg-fleet sandbox: apply on {} failed\n", n->name);
            ++failed;
        } else {
            std::cout << fmt::format("applied on {}: it matches the fleet\n", n->name);
        }
    }
    return failed;
}

}  // namespace

// up: creates the sandbox, or brings an existing one up to date with the file, which it then
// records as the sandbox's (new nodes get namespaces, changed endpoints move underlay addresses,
// every node applies again).
int sandbox_up(const cli::Context& ctx, const Globals& given, const std::string& name, const UpOptions& opts) {
    Globals g = given;
    g.hide_pending = true;  // the sandbox makes every key: a member without one is not waiting for anything
    auto l = load(g);
    if (!l->fleet) return kError;
    auto existing = restore(name);
    const bool created = !existing;
    Sandbox sb = existing
                     ? *existing
                     : Sandbox{.name = name, .config = "", .dir = sandbox_dir(name), .underlay_ns = "wgfsb-" + name + "-u", .nodes = {}};
    const std::string file = fs::absolute(g.config).string();
    if (existing && existing->config != file)
        std::cout << fmt::format("== sandbox {}: its file is now {} (was {})\n", name, file, existing->config);
    sb.config = file;
    std::error_code ec;
    fs::create_directories(sb.keys_dir(), ec);
    ensure_mount_points(sb);
    if (!save(sb)) {
        std::cerr << fmt::format("wg-fleet sandbox: cannot write {}\n", (sb.dir / "sandbox.json").string());
        return kError;
    }
    std::set<std::string> moved;
    std::map<std::string, std::string> names;
    if (!ensure_underlay(sb, created) || !converge_namespaces(sb, *l, g.config, opts, moved, names)) {
        if (created) sandbox_down(name, true);
        return kError;
    }
    const std::string& hosts_file = l->cfg().hosts_file;
    const std::string hosts = underlay_hosts(sb, names);
    std::vector<const Node*> members;
    for (const auto& n : sb.nodes) {
        if (l->fleet->index.count(n.name)) members.push_back(&n);
        write_node_hosts(sb, n, hosts, hosts_file);
    }
    int failed = apply_members(ctx, sb, members, opts.verbose);
    for (const Node* n : members)
        if (moved.count(n->name)) refresh_endpoints(sb, *n);
    for (const auto& n : sb.nodes) write_node_hosts(sb, n, hosts, hosts_file);
    const auto routes = announced_routes(l->cfg());
    for (const Node* n : members) {
        std::vector<model::Prefix> mine;
        for (const auto& [p, owner] : routes)
            if (owner == n->name) mine.push_back(p);
        if (!place_route_addresses(*n, mine)) ++failed;
    }
    if (failed) return kError;
    std::cout << fmt::format(
        "sandbox {} is up: {} nodes. Next: `wg-fleet sandbox test --name {}`; `wg-fleet sandbox down --name {}` removes it\n", name,
        members.size(), name, name);
    return kOk;
}

namespace {

// What `test` found: every check with its answer, for the closing line and --json.
struct Tally {
    int checks = 0, failures = 0, skipped = 0;
    nlohmann::ordered_json checks_json = nlohmann::ordered_json::array();

    // One ping's answer: "ok" or "FAIL", as the matrix shows it.
    std::string record(nlohmann::ordered_json check, bool ok) {
        ++checks;
        failures += !ok;
        check["ok"] = ok;
        checks_json.push_back(std::move(check));
        return ok ? "ok" : "FAIL";
    }
    void not_asked(nlohmann::ordered_json check) {
        ++skipped;
        check["ok"] = nullptr;
        checks_json.push_back(std::move(check));
    }
};

struct Tester {
    const Sandbox& sb;
    std::map<std::string, const Node*> by_name;
    std::ostream& out;  // where the matrix goes
    Tally tally;

    // A first packet may wait for a handshake (two or three in a hub): one retry, then another.
    bool ping(const std::string& src, const std::string& target) const {
        for (int attempt = 0; attempt < 3; ++attempt)
            if (run_in_node(sb, *by_name.at(src), {"ping", "-c", "1", "-W", "2", target}).status == 0) return true;
        return false;
    }
};

// Every member reaches every other in both topologies: directly, or through controllers; by
// IPv6 address, IPv4 address (fleets with ipv4) and host name.
void test_pairs(Tester& t, const std::string& fname, const model::Fleet& f, const plan::FleetPlan& fp,
                const std::vector<std::string>& members, const std::string& domain) {
    const bool v4 = !fp.ipv4.empty();
    t.out << fmt::format("fleet {} ({} topology): rows ping columns, by IPv6 address{} / by name\n", fname, model::to_string(f.topology),
                         v4 ? " / by IPv4 address" : "");
    size_t w = 10;
    for (const auto& m : members) w = std::max(w, m.size() + 2);
    w = std::max<size_t>(w, v4 ? 13 : 10);
    t.out << fmt::format("{:<{}}", "", w);
    for (const auto& m : members) t.out << fmt::format("{:<{}}", m, w);
    t.out << "\n";
    for (const auto& src : members) {
        t.out << fmt::format("{:<{}}", src, w);
        for (const auto& dst : members) {
            if (src == dst) {
                t.out << fmt::format("{:<{}}", "-", w);
                continue;
            }
            auto check = [&](const char* by, const std::string& target) {
                return t.tally.record({{"fleet", fname}, {"from", src}, {"to", dst}, {"by", by}, {"target", target}},
                                      !target.empty() && t.ping(src, target));
            };
            auto addr = plan::primary_address(f, fp, dst);
            std::string cell = check("ipv6", addr ? addr->str() : "");
            if (v4) {
                auto a4 = fp.ipv4.find(dst);
                cell += "/" + check("ipv4", a4 != fp.ipv4.end() ? a4->second.str() : "");
            }
            cell += "/" + check("name", fmt::format("{}.{}{}", dst, fname, domain));
            t.out << fmt::format("{:<{}}", cell, w);
        }
        t.out << "\n";
    }
}

// Announced routes: the sandbox put each prefix's first address on its announcer. A member
// without an address of the prefix's family in this fleet has no source address the fleet would
// carry, so it is not asked.
void test_routes(Tester& t, const std::string& fname, const model::Fleet& f, const plan::FleetPlan& fp,
                 const std::vector<std::string>& members) {
    std::vector<std::pair<model::Prefix, std::string>> routes;
    for (const auto* group : {&f.controllers, &f.peers})
        for (const auto& [n, m] : *group)
            if (t.by_name.count(n))
                for (const auto& r : m.routes) routes.emplace_back(r, n);
    if (routes.empty()) return;
    t.out << fmt::format("fleet {}: rows ping the first address of each announced route\n", fname);
    for (const auto& [prefix, owner] : routes) {
        const std::string target = first_host(prefix).str();
        t.out << fmt::format("  {} ({} via {}):", target, prefix.str(), owner);
        for (const auto& src : members) {
            if (src == owner) continue;
            nlohmann::ordered_json check{{"fleet", fname}, {"from", src},           {"to", owner},
                                         {"by", "route"},  {"route", prefix.str()}, {"target", target}};
            bool has_family = false;
            for (const auto& a : fp.nodes.at(src).addresses) has_family = has_family || a.addr.family == prefix.addr.family;
            if (!has_family) {
                t.tally.not_asked(std::move(check));
                t.out << fmt::format(" {} n/a", src);
                continue;
            }
            t.out << fmt::format(" {} {}", src, t.tally.record(std::move(check), t.ping(src, target)));
        }
        t.out << "\n";
    }
}

}  // namespace

int sandbox_test(const Globals& g, const std::string& name, bool json) {
    auto sb = restore_or_say(name);
    if (!sb) return kError;
    ensure_mount_points(*sb);
    Globals cg = g;
    cg.config = sb->config;
    cg.keys_only_from = sb->keys_dir().string();
    cg.quiet = 1;  // `up` showed the file's warnings already
    auto l = load(cg);
    if (!l->fleet) return kError;
    const auto& fw = *l->fleet;
    // With --json, standard output holds only the document; the matrix goes to stderr.
    Tester t{.sb = *sb, .by_name = {}, .out = json ? std::cerr : std::cout, .tally = {}};
    std::map<std::string, std::string> names;
    underlay_plan(l->cfg(), fw.index, sb->nodes, names);
    const std::string hosts = underlay_hosts(*sb, names);
    for (const auto& n : sb->nodes) {
        t.by_name[n.name] = &n;
        write_node_hosts(*sb, n, hosts, l->cfg().hosts_file);
    }
    const std::string domain = l->cfg().domain ? "." + *l->cfg().domain : "";
    for (const auto& [fname, f] : l->cfg().fleets) {
        const auto& fp = fw.plan.fleets.at(fname);
        std::vector<std::string> members;
        for (const auto& [n, na] : fp.nodes)
            if (t.by_name.count(n)) members.push_back(n);
        test_pairs(t, fname, f, fp, members, domain);
        test_routes(t, fname, f, fp, members);
    }
    const Tally& r = t.tally;
    if (json) {
        nlohmann::ordered_json j{{"version", 1},
                                 {"sandbox", name},
                                 {"file", sb->config},
                                 {"checks", r.checks_json},
                                 {"passed", r.checks - r.failures},
                                 {"failed", r.failures},
                                 {"not_asked", r.skipped}};
        std::cout << j.dump(2) << "\n";
    } else {
        std::cout << fmt::format("{} passed, {} failed", r.checks - r.failures, r.failures);
        if (r.skipped) std::cout << fmt::format(", {} not asked (no address of the route's family)", r.skipped);
        std::cout << "\n";
    }
    return r.failures ? kError : kOk;
}


// plan: every node's `wg-fleet plan` of FILE (the sandbox's own file when none is given), each
// under a heading, in the node as `exec NODE wg-fleet -c FILE plan` runs it. Nothing is applied
// and the sandbox keeps its file; nodes the file adds or drops are named, not planned. With
// --json, one document holding each node's `plan --json`.
int sandbox_plan(const cli::Context& ctx, const std::string& name, const std::string& file_arg, bool detailed, bool json) {
    auto sb = restore_or_say(name);
    if (!sb) return kError;
    const std::string file = file_arg.empty() ? sb->config : fs::absolute(file_arg).string();
    Globals g = ctx.g;
    g.config = file;
    g.keys_only_from = sb->keys_dir().string();
    g.hide_pending = true;
    auto l = load(g);
    if (!l->fleet) return kError;
    ensure_mount_points(*sb);
    std::map<std::string, std::string> names;
    const auto addrs = underlay_plan(l->cfg(), l->fleet->index, sb->nodes, names);
    // With --json, standard output holds only the document; the headings go to stderr.
    std::ostream& out = json ? std::cerr : std::cout;
    auto nodes = nlohmann::ordered_json::array(), added = nlohmann::ordered_json::array(), stale = nlohmann::ordered_json::array();
    int changes = 0, errors = 0;
    std::set<std::string> in_sandbox;
    for (const auto& n : sb->nodes) {
        in_sandbox.insert(n.name);
        if (!l->fleet->index.count(n.name)) {
            out << fmt::format("== {}: not in {}; `wg-fleet sandbox up {} --name {} --prune` would remove it\n", n.name, file, file, name);
            stale.push_back(n.name);
            continue;
        }
        nlohmann::ordered_json node{{"node", n.name}, {"underlay", n.underlay}, {"underlay_after", addrs.at(n.name)}};
        if (!node_netns_exists(n)) {
            std::cerr << fmt::format("wg-fleet sandbox: {}: its network namespace {} is gone; `wg-fleet sandbox up` creates it again\n",
                                     n.name, n.netns);
            ++errors;
            node["status"] = "error";
            node["plan"] = nullptr;
            nodes.push_back(std::move(node));
            continue;
        }
        out << fmt::format("== {} (plan of {})\n", n.name, file);
        const bool moves = addrs.at(n.name) != n.underlay;
        if (moves)
            out << fmt::format("underlay address {} -> {} (its endpoint changed; `sandbox up` moves it)\n", n.underlay, addrs.at(n.name));
        std::vector<std::string> args{"-c", file, "plan", "--detailed-exitcode"};
        if (ctx.g.verbose) args.insert(args.begin(), "-v");
        if (json) args.emplace_back("--json");
        auto o = node_wg_fleet(ctx, *sb, n, args, !json);
        if (!json) out << o.text;
        const bool failed = o.status != kOk && o.status != kChanges;
        if (failed) ++errors;
        else if (o.status == kChanges || moves) ++changes;
        node["status"] = failed ? "error" : o.status == kChanges || moves ? "changes" : "converged";
        node["plan"] = json ? nlohmann::ordered_json::parse(o.text, nullptr, false) : nullptr;
        if (node["plan"].is_discarded()) node["plan"] = nullptr;
        nodes.push_back(std::move(node));
    }
    for (const auto& [node, ms] : l->fleet->index)
        if (!in_sandbox.count(node)) {
            out << fmt::format("== {}: new; `wg-fleet sandbox up` creates it and its key (its peers appear on the others then)\n", node);
            added.push_back(node);
        }
    out << fmt::format("sandbox {}: {} of {} nodes would change{}; nothing applied. `wg-fleet sandbox up {} --name {}` applies it\n", name,
                       changes, sb->nodes.size(), errors ? fmt::format(", {} failed", errors) : "", file, name);
    if (json) {
        nlohmann::ordered_json j{{"version", 1}, {"sandbox", name}, {"file", file},        {"nodes", nodes},
                                 {"new", added}, {"stale", stale},  {"changing", changes}, {"failed", errors}};
        std::cout << j.dump(2) << "\n";
    }
    if (errors) return kError;
    return detailed && changes ? kChanges : kOk;
}


// exec: runs a command in a node's namespaces; `wg-fleet ...` runs this binary as that node.
int sandbox_exec(const cli::Context& ctx, const std::string& name, const std::string& node_name, const std::vector<std::string>& command) {
    auto sb = restore_or_say(name);
    if (!sb) return kError;
    const Node* node = nullptr;
    std::string nodes;
    for (const auto& n : sb->nodes) {
        if (n.name == node_name) node = &n;
        nodes += (nodes.empty() ? "" : ", ") + n.name;
    }
    if (!node) {
        std::cerr << fmt::format("wg-fleet sandbox: no node '{}' in sandbox {} (its nodes: {})\n", node_name, name, nodes);
        return kError;
    }
    if (!node_netns_exists(*node)) {
        std::cerr << fmt::format(
            "wg-fleet sandbox: node {}'s network namespace {} is gone; `wg-fleet sandbox up --name {}` creates it again\n", node->name,
            node->netns, name);
        return kError;
    }
    ensure_mount_points(*sb);
    std::vector<std::string> cmd = command;
    if (cmd.empty()) cmd = {"sh"};
    // No child: this process enters the node and becomes the command, so signals (a service
    // manager's SIGTERM, a test's kill) reach it directly.
    flush_all();
    enter_node(*sb, *node);
    if (cmd[0] == "wg-fleet") return wg_fleet_as_node(ctx, *sb, *node, std::vector<std::string>(cmd.begin() + 1, cmd.end()));
    setenv("WG_FLEET_SANDBOX", name.c_str(), 1);
    setenv("WG_FLEET_SANDBOX_NODE", node->name.c_str(), 1);
    return exec_argv(cmd);
}


bool need_root() {
    if (geteuid() == 0) return true;
    std::cerr << "wg-fleet sandbox: needs root (it creates network namespaces)\n";
    return false;
}


}  // namespace wgf::sandbox
