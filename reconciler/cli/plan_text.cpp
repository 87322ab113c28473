#include "cli/plan_text.hpp"

#include <array>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/overloaded.hpp"
#include "plan/foreign_firewall.hpp"
#include "plan/unified_diff.hpp"

namespace wgf::output {
namespace {

using model::overloaded;

using Json = nlohmann::ordered_json;

// The headings, in the order the issue of a plan reads best: what the device is, whom it talks
// to, then the host's addresses, routes, firewall, sysctls and files.
constexpr std::array<const char*, 7> kResources = {"device", "peers", "addresses", "routes", "firewall", "sysctls", "files"};

constexpr const char* kReset = "\033[0m";
constexpr const char* kBold = "\033[1m";
constexpr const char* kRed = "\033[31m";
constexpr const char* kGreen = "\033[32m";
constexpr const char* kYellow = "\033[33m";
constexpr const char* kCyan = "\033[36m";

const char* mark_colour(char mark) {
    switch (mark) {
        case '+': return kGreen;
        case '-': return kRed;
        case '~': return kYellow;
        case '!': return kRed;
        default: return nullptr;
    }
}

std::string paint(std::string_view s, const char* colour, bool on) {
    if (!on || !colour) return std::string(s);
    return fmt::format("{}{}{}", colour, s, kReset);
}

const char* disruption_word(plan::Disruption d) {
    switch (d) {
        case plan::Disruption::none: return "none";
        case plan::Disruption::peer_session: return "peer";
        case plan::Disruption::all_sessions: return "device";
    }
    return "?";
}

// The diff plan shows of a file it writes; the size of a secret one.
std::string file_body(const plan::OpWriteFile& w) {
    if (plan::is_secret(w.file)) return fmt::format("(secret, {} bytes)\n", w.file.content.size());
    return plan::unified_diff(w.exists ? w.old_content : std::string(), w.file.content, w.exists ? w.file.path : "/dev/null", w.file.path);
}

void diff_lines(std::string& out, const std::string& body, bool color) {
    size_t start = 0;
    while (start < body.size()) {
        size_t nl = body.find('\n', start);
        std::string_view l(body.data() + start, (nl == std::string::npos ? body.size() : nl) - start);
        const char* c = nullptr;
        if (l.starts_with("+++") || l.starts_with("---")) c = kBold;
        else if (l.starts_with("@@")) c = kCyan;
        else if (l.starts_with("+")) c = kGreen;
        else if (l.starts_with("-")) c = kRed;
        out += "    " + paint(l, c, color) + "\n";
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
}

template <class T>
Json opt(const std::optional<T>& v) {
    return v ? Json(*v) : Json(nullptr);
}
Json name_or_null(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }
Json change(Json old_value, Json new_value) { return Json{{"old", std::move(old_value)}, {"new", std::move(new_value)}}; }

template <class Prefixes>
Json prefixes(const Prefixes& v) {
    Json a = Json::array();
    for (const auto& p : v) a.push_back(p.str());
    return a;
}

Json foreign_rule_json(const model::ForeignRule& r) {
    return {{"family", r.family},
            {"table", r.table},
            {"chain", r.chain},
            {"comment", std::string(model::kForeignRuleMark) + r.id},
            {"description", plan::describe_foreign_match(r.id)},
            {"as_built", r.as_built}};
}

Json route_json(const model::Route& r) {
    return Json{{"dst", r.dst.str()}, {"dev", r.dev}, {"src", r.src ? Json(r.src->str()) : Json(nullptr)}, {"table", r.table}};
}

Json policy_rule_json(const model::PolicyRule& r) {
    return Json{{"family", r.family == 4 ? "ipv4" : "ipv6"},
                {"priority", r.priority},
                {"table", r.table},
                {"fwmark", r.fwmark ? Json(r.fwmark) : Json(nullptr)},
                {"invert", r.invert},
                {"suppress_prefixlength", r.suppress_prefixlength ? Json(*r.suppress_prefixlength) : Json(nullptr)}};
}

// What an op names, and each field it changes as {"old", "new"}.
void op_detail(Json& j, const plan::Op& op) {
    Json changes = Json::object();
    std::visit(overloaded{
                   [&](const plan::OpCreateDevice& o) { j["fleet"] = o.fleet; },
                   [&](const plan::OpDeleteDevice&) {},
                   [&](const plan::OpSetPrivateKey& o) {
                       j["key_file"] = o.key_file;
                       j["generate"] = o.generate;
                       j["public_key"] = o.generate ? Json(nullptr) : Json(o.public_key.base64());
                   },
                   [&](const plan::OpSetListenPort& o) { changes["listen_port"] = change(o.fresh ? Json(nullptr) : opt(o.old), o.port); },
                   [&](const plan::OpSetMtu& o) { changes["mtu"] = change(o.old ? Json(o.old) : Json(nullptr), o.mtu); },
                   [&](const plan::OpSetUp&) { changes["up"] = change(false, true); },
                   [&](const plan::OpSetFwmark& o) {
                       changes["fwmark"] = change(o.old ? Json(o.old) : Json(nullptr), o.fwmark ? Json(o.fwmark) : Json(nullptr));
                   },
                   [&](const plan::OpAddPolicyRule& o) { j["policy_rule"] = policy_rule_json(o.rule); },
                   [&](const plan::OpDelPolicyRule& o) { j["policy_rule"] = policy_rule_json(o.rule); },
                   [&](const plan::OpAddPeer& o) {
                       j["peer"] = {{"name", name_or_null(o.name)},
                                    {"public_key", o.peer.public_key.base64()},
                                    {"allowed_ips", prefixes(o.peer.allowed_ips)},
                                    {"endpoint", o.peer.endpoint ? Json(o.peer.endpoint->str()) : Json(nullptr)},
                                    {"keepalive", o.peer.keepalive}};
                       if (o.swapped_from) j["peer"]["key_swap_of"] = o.swapped_from->base64();
                   },
                   [&](const plan::OpRemovePeer& o) {
                       j["peer"] = {{"name", name_or_null(o.name)}, {"public_key", o.public_key.base64()}, {"foreign", o.foreign}};
                       if (o.swapped_for) j["peer"]["key_swapped_for"] = o.swapped_for->base64();
                   },
                   [&](const plan::OpUpdatePeer& o) {
                       j["peer"] = {{"name", name_or_null(o.name)}, {"public_key", o.public_key.base64()}};
                       if (o.endpoint)
                           changes["endpoint"] = change(o.old_endpoint ? Json(o.old_endpoint->str()) : Json(nullptr), o.endpoint->str());
                       if (o.keepalive) changes["keepalive"] = change(o.old_keepalive.value_or(0), *o.keepalive);
                       if (o.allowed_ips)
                           changes["allowed_ips"] = {
                               {"added", prefixes(o.added)}, {"removed", prefixes(o.removed)}, {"new", prefixes(*o.allowed_ips)}};
                   },
                   [&](const plan::OpAddAddress& o) { j["address"] = o.addr.str(); },
                   [&](const plan::OpDelAddress& o) { j["address"] = o.addr.str(); },
                   [&](const plan::OpAddRoute& o) { j["route"] = route_json(o.route); },
                   [&](const plan::OpDelRoute& o) { j["route"] = route_json(o.route); },
                   [&](const plan::OpSetSysctl& o) {
                       j["sysctl"] = o.key;
                       j["restore"] = o.restore;
                       changes["value"] = change(o.old.empty() ? Json(nullptr) : Json(o.old), o.value);
                   },
                   [&](const plan::OpAddRule& o) {
                       j["rule"] = {{"id", o.rule.id}, {"description", plan::describe_rule(o.rule)}};
                   },
                   [&](const plan::OpDelRule& o) {
                       j["rule"] = {{"id", o.id}, {"description", o.old ? Json(plan::describe_rule(*o.old)) : Json(nullptr)}};
                   },
                   [&](const plan::OpRepairFirewall& o) { j["damage"] = plan::describe_damage(o.damage); },
                   [&](const plan::OpWriteFile& o) {
                       const bool secret = plan::is_secret(o.file);
                       j["file"] = {{"path", o.file.path},
                                    {"mode", fmt::format("{:04o}", o.file.mode)},
                                    {"exists", o.exists},
                                    {"secret", secret},
                                    {"bytes", o.file.content.size()},
                                    {"diff", secret ? Json(nullptr) : Json(file_body(o))}};
                   },
                   [&](const plan::OpRemoveFile& o) {
                       j["file"] = {{"path", o.path}};
                   },
                   [&](const plan::OpReload& o) {
                       j["reload"] = {{"command", o.command}, {"dir", o.dir}};
                   },
                   [&](const plan::OpAddForeignRule& o) { j["foreign_rule"] = foreign_rule_json(o.rule); },
                   [&](const plan::OpDelForeignRule& o) { j["foreign_rule"] = foreign_rule_json(o.rule); },
               },
               op);
    j["changes"] = std::move(changes);
}

}  // namespace

bool color_enabled(Color when, bool is_tty, const char* no_color, const char* term) {
    switch (when) {
        case Color::never: return false;
        case Color::always: return true;
        case Color::auto_: break;
    }
    if (no_color && *no_color) return false;
    if (term && std::string_view(term) == "dumb") return false;
    return is_tty;
}

const char* resource_of(const plan::Op& op) {
    return std::visit(overloaded{
                          [](const plan::OpAddPeer&) { return kResources[1]; },
                          [](const plan::OpRemovePeer&) { return kResources[1]; },
                          [](const plan::OpUpdatePeer&) { return kResources[1]; },
                          [](const plan::OpAddAddress&) { return kResources[2]; },
                          [](const plan::OpDelAddress&) { return kResources[2]; },
                          [](const plan::OpAddRoute&) { return kResources[3]; },
                          [](const plan::OpDelRoute&) { return kResources[3]; },
                          [](const plan::OpAddPolicyRule&) { return kResources[3]; },
                          [](const plan::OpDelPolicyRule&) { return kResources[3]; },
                          [](const plan::OpAddRule&) { return kResources[4]; },
                          [](const plan::OpDelRule&) { return kResources[4]; },
                          [](const plan::OpRepairFirewall&) { return kResources[4]; },
                          [](const plan::OpSetSysctl&) { return kResources[5]; },
                          [](const plan::OpWriteFile&) { return kResources[6]; },
                          [](const plan::OpRemoveFile&) { return kResources[6]; },
                          [](const plan::OpReload&) { return kResources[6]; },
                          [](const plan::OpAddForeignRule&) { return kResources[4]; },
                          [](const plan::OpDelForeignRule&) { return kResources[4]; },
                          [](const auto&) { return kResources[0]; },
                      },
                      op);
}

std::string mark_line(std::string_view line, bool color) {
    if (!color || line.empty() || !mark_colour(line[0])) return std::string(line);
    std::string out = paint(line.substr(0, 1), mark_colour(line[0]), true);
    std::string_view rest = line.substr(1);
    // The disruption label stands out: it is what an operator weighs before applying.
    if (auto at = rest.rfind("  [disrupts "); at != std::string_view::npos)
        return out + std::string(rest.substr(0, at)) + "  " + paint(rest.substr(at + 2), kBold, true);
    return out + std::string(rest);
}

std::string plan_text(const plan::Plan& plan, const PlanTextOptions& opts) {
    std::string out;
    for (const char* resource : kResources) {
        bool heading = false;
        for (const auto& op : plan.ops) {
            if (resource_of(op) != resource) continue;
            if (!heading) {
                out += (out.empty() ? "" : "\n") + paint(fmt::format("{}:", resource), kBold, opts.color) + "\n";
                heading = true;
            }
            out += mark_line(plan::describe(op), opts.color) + "\n";
            if (const auto* w = std::get_if<plan::OpWriteFile>(&op)) diff_lines(out, file_body(*w), opts.color);
        }
    }
    if (!out.empty()) out += "\n";
    for (const auto& c : plan.conflicts) out += paint(c, kRed, opts.color) + "\n";
    if (opts.notes) {
        for (const auto& p : plan.pending) out += fmt::format("pending: {} (no public key yet)\n", p);
        for (const auto& f : plan.foreign) out += fmt::format("foreign peer left alone: {} (exclusive: true removes it)\n", f);
        for (const auto& k : plan.kept) out += fmt::format("kept: {}\n", k);
    }
    out += paint(plan::summarize(plan), kBold, opts.color) + "\n";
    return out;
}

std::string plan_json(const std::string& node, const plan::Plan& plan, const std::vector<std::string>& warnings) {
    Json j;
    j["version"] = 1;
    j["node"] = node;
    Json ops = Json::array();
    size_t add = 0, change_count = 0, remove = 0;
    for (const auto& op : plan.ops) {
        const char mark = plan::mark(op);
        (mark == '+' ? add : mark == '-' ? remove : change_count)++;
        Json o{{"kind", plan::kind(op)},
               {"mark", std::string(1, mark)},
               {"disrupts", disruption_word(plan::disruption(op))},
               {"line", plan::describe(op)},
               {"resource", resource_of(op)}};
        const std::string ifname = plan::interface_of(op);
        o["interface"] = ifname.empty() ? Json(nullptr) : Json(ifname);
        op_detail(o, op);
        ops.push_back(std::move(o));
    }
    j["ops"] = std::move(ops);
    j["summary"] = plan::summarize(plan);
    j["counts"] = {{"add", add}, {"change", change_count}, {"remove", remove}, {"conflicts", plan.conflicts.size()}};
    j["pending"] = plan.pending;
    j["foreign"] = plan.foreign;
    j["kept"] = plan.kept;
    j["conflicts"] = plan.conflicts;
    j["warnings"] = warnings;
    // A file's text may hold bytes that are not UTF-8: replaced, not fatal.
    return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace wgf::output
