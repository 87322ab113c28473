// The plan is data: a list of typed operations, each small, each able to describe itself (the same
// line is printed by `plan` and written by the apply log) and to say what it disrupts.
// Secrets never appear in an op: a private key change names the key file, not the key.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "model/host_state.hpp"

namespace wgf::plan {

enum class Disruption { none, peer_session, all_sessions };
const char* to_string(Disruption d);

struct OpCreateDevice {
    std::string ifname;
    std::string fleet;
};
struct OpDeleteDevice {
    std::string ifname;
};
// Loads the private key from key_file; public_key is what the device will then have. With
// `generate`, key_file does not exist yet: the apply generates the key there (0600) first, and
// public_key is unknown until then.
// fresh: the device is created by the same plan (or has no key yet), so there is no session to
// disrupt.
struct OpSetPrivateKey {
    std::string ifname;
    std::string key_file;
    model::Key public_key;
    bool fresh = false;
    bool generate = false;
};
struct OpSetListenPort {
    std::string ifname;
    uint16_t port = 0;
    std::optional<uint16_t> old;
    bool fresh = false;
};
struct OpSetMtu {
    std::string ifname;
    uint32_t mtu = 0;
    uint32_t old = 0;
};
struct OpSetUp {
    std::string ifname;
};
// The mark the device puts on its own packets (0: none); an exit node's policy rules need it.
struct OpSetFwmark {
    std::string ifname;
    uint32_t fwmark = 0;
    uint32_t old = 0;
};

// A member whose key changed (`wg-fleet rotate`, or a new published key) is a key swap: the
// removal of its old key and the addition of its new one, next to each other in one set of the
// device, the new entry keeping the old one's allowed IPs and (when none is desired) its live
// endpoint. Each op names the other key.
struct OpAddPeer {
    std::string ifname;
    model::WgPeer peer;
    std::string name{};
    std::optional<model::Key> swapped_from{};
};
struct OpRemovePeer {
    std::string ifname;
    model::Key public_key;
    std::string name{};
    bool foreign = false;
    std::optional<model::Key> swapped_for{};
};
// Only the fields that change are set.
struct OpUpdatePeer {
    std::string ifname{};
    model::Key public_key{};
    std::string name{};
    std::optional<model::Endpoint> endpoint{}, old_endpoint{};
    std::optional<uint16_t> keepalive{}, old_keepalive{};
    std::optional<model::PrefixSet> allowed_ips{};  // the whole new list
    std::vector<model::Prefix> added{}, removed{};  // for the description
};

struct OpAddAddress {
    std::string ifname;
    model::Prefix addr;
};
struct OpDelAddress {
    std::string ifname;
    model::Prefix addr;
};
struct OpAddRoute {
    model::Route route;
};
struct OpDelRoute {
    model::Route route;
};
struct OpAddPolicyRule {
    model::PolicyRule rule;
};
struct OpDelPolicyRule {
    model::PolicyRule rule;
};
// restore: the value wg-fleet found before it changed the sysctl, now that it no longer needs it.
struct OpSetSysctl {
    std::string key;
    std::string value;
    std::string old;
    bool restore = false;
};
struct OpAddRule {
    model::FwRule rule;
};
struct OpDelRule {
    std::string id;
    std::optional<model::FwRule> old;
};
// Damage the live read found in our table: removed (a rule, a set) or rebuilt (the skeleton).
struct OpRepairFirewall {
    model::FwDamage damage;
};
// old_content: what the file holds now (when it exists), for the plan's diff.
struct OpWriteFile {
    model::ManagedFile file{};
    bool exists = false;
    size_t changed_lines = 0;
    std::string old_content{};
};
// A file only its owner may read holds a secret: plan shows its size, never its content.
bool is_secret(const model::ManagedFile& f);
struct OpRemoveFile {
    std::string path;
};

// A rule of ours in another table's chain (firewall: foreign_accept): inserted at its head, or
// deleted (every rule there carrying its comment, and nothing else).
struct OpAddForeignRule {
    model::ForeignRule rule;
};
struct OpDelForeignRule {
    model::ForeignRule rule;
};

// Runs the command that makes a program read the files of `dir` again, after this plan changed
// them (or a failed run left the reload owed).
struct OpReload {
    std::string command;
    std::string dir;
};

using Op =
    std::variant<OpCreateDevice, OpDeleteDevice, OpSetPrivateKey, OpSetListenPort, OpSetMtu, OpSetUp, OpAddPeer, OpRemovePeer, OpUpdatePeer,
                 OpAddAddress, OpDelAddress, OpAddRoute, OpDelRoute, OpSetSysctl, OpAddRule, OpDelRule, OpRepairFirewall, OpWriteFile,
                 OpRemoveFile, OpSetFwmark, OpAddPolicyRule, OpDelPolicyRule, OpReload, OpAddForeignRule, OpDelForeignRule>;

// '+' adds, '~' changes, '-' removes.
char mark(const Op& op);
Disruption disruption(const Op& op);
// One line, e.g. "+ peer laptop1 (AbCd…) on mesh: allowed-ips fd51::/96; endpoint 1.2.3.4:51820".
std::string describe(const Op& op);
// The interface an op acts on ("" for sysctls, rules and files).
std::string interface_of(const Op& op);
// Machine-readable kind, e.g. "add_peer".
const char* kind(const Op& op);

std::string describe_rule(const model::FwRule& r);
// "ip rule" style: "ipv4 rule 30567: not fwmark 0x7767 lookup 30567".
std::string describe_policy_rule(const model::PolicyRule& r);
std::string describe_damage(const model::FwDamage& d);

}  // namespace wgf::plan
