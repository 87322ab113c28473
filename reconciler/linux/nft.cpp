// nftables backend: builds and decodes the rules of table `inet wg-fleet`, reads the table over
// nfnetlink dumps and changes it in one batch per apply. See nft.hpp for the table's layout and
// the ids read() reports.
#include "linux/nft.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <new>
#include <endian.h>
#include <set>
#include <utility>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <fmt/format.h>

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;
using model::FwKind;
using model::FwRule;

namespace {

struct BaseChainSpec {
    const char* name;
    const char* type;
    uint32_t hook;
    int32_t priority;
};

constexpr BaseChainSpec kBaseChains[] = {
    {"input", "filter", NF_INET_LOCAL_IN, 0},
    {"forward", "filter", NF_INET_FORWARD, 0},
    {"prerouting", "nat", NF_INET_PRE_ROUTING, -100},   // dstnat
    {"postrouting", "nat", NF_INET_POST_ROUTING, 100},  // srcnat
};

const BaseChainSpec* base_chain_spec(const std::string& name) {
    for (const auto& s : kBaseChains)
        if (name == s.name) return &s;
    return nullptr;
}

constexpr size_t kIfNameSize = 16;  // IFNAMSIZ: nft compares interface names as 16 NUL-padded bytes
constexpr size_t kMaxIdLen = NFTNL_UDATA_COMMENT_MAXLEN - 1;  // nft refuses longer comments
constexpr uint32_t kCtStateEstablishedRelated = (1u << (0 + 1)) | (1u << (1 + 1));  // NF_CT_STATE_BIT
constexpr uint32_t kCtStatusDstNat = 1u << 5;  // IPS_DST_NAT: the connection was DNATed
constexpr uint32_t kNfprotoIpv4 = NFPROTO_IPV4, kNfprotoIpv6 = NFPROTO_IPV6;

bool valid_id(const std::string& id) { return !id.empty() && id[0] != '?' && id != kEstablishedId; }

nftnl_expr* new_expr(const char* name) {
    nftnl_expr* e = nftnl_expr_alloc(name);
    if (!e) throw std::bad_alloc();
    return e;
}

void add_meta_load(nftnl_rule* r, uint32_t key) {
    nftnl_expr* e = new_expr("meta");
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
    nftnl_rule_add_expr(r, e);
}

void add_cmp(nftnl_rule* r, uint32_t op, const void* data, uint32_t len) {
    nftnl_expr* e = new_expr("cmp");
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    nftnl_rule_add_expr(r, e);
}

void add_ifname_match(nftnl_rule* r, uint32_t key, const std::string& name) {
    char buf[kIfNameSize] = {};
    std::memcpy(buf, name.data(), std::min(name.size(), kIfNameSize - 1));
    add_meta_load(r, key);
    add_cmp(r, NFT_CMP_EQ, buf, sizeof buf);
}

void add_u8_match(nftnl_rule* r, uint32_t meta_key, uint8_t value) {
    add_meta_load(r, meta_key);
    add_cmp(r, NFT_CMP_EQ, &value, 1);
}

// `tcp dport N` / `udp dport N` in an inet chain: the l4proto dependency, then the port.
void add_dport_match(nftnl_rule* r, model::Proto proto, uint16_t port) {
    add_u8_match(r, NFT_META_L4PROTO, proto == model::Proto::tcp ? IPPROTO_TCP : IPPROTO_UDP);
    nftnl_expr* e = new_expr("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, 2);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, 2);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
    nftnl_rule_add_expr(r, e);
    uint16_t be = htons(port);
    add_cmp(r, NFT_CMP_EQ, &be, sizeof be);
}

void add_immediate(nftnl_rule* r, uint32_t reg, const void* data, uint32_t len) {
    nftnl_expr* e = new_expr("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
    nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
    nftnl_rule_add_expr(r, e);
}

// `ct KEY & mask != 0`: any of the bits set (`ct state established,related`, `ct status dnat`).
void add_ct_bits_match(nftnl_rule* r, uint32_t key, uint32_t mask) {
    nftnl_expr* ct = new_expr("ct");
    nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    nftnl_rule_add_expr(r, ct);
    nftnl_expr* bw = new_expr("bitwise");
    uint32_t zero = 0;
    nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, 4);
    nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, &mask, 4);
    nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, &zero, 4);
    nftnl_rule_add_expr(r, bw);
    add_cmp(r, NFT_CMP_NEQ, &zero, 4);
}

void add_accept(nftnl_rule* r) {
    nftnl_expr* e = new_expr("immediate");
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
    nftnl_rule_add_expr(r, e);
}

void set_comment(nftnl_rule* r, const std::string& id) {
    nftnl_udata_buf* buf = nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN);
    if (!buf) throw std::bad_alloc();
    nftnl_udata_put_strz(buf, NFTNL_UDATA_RULE_COMMENT, id.c_str());
    nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(buf), nftnl_udata_buf_len(buf));
    nftnl_udata_buf_free(buf);
}

nft::RulePtr new_rule(const char* chain) {
    nft::RulePtr r(nftnl_rule_alloc());
    if (!r) throw std::bad_alloc();
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, backend::kNftTable);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
    return r;
}

// ---- decoding -------------------------------------------------------------------------------
// Expressions are evaluated symbolically: each register remembers where its value came from, and
// each cmp becomes a fact about that source. Any expression or fact we never build makes the rule
// unknown, so a hand edit (a counter, a log, a different match) is never mistaken for ours.

struct RegValue {
    enum class From { meta, payload, ct, imm } from = From::meta;
    uint32_t key = 0, base = 0, offset = 0, len = 0;
    std::string data;                  // imm: the bytes
    bool masked = false;               // ct: passed through bitwise
    uint32_t mask = 0, xor_ = 0;

    static RegValue of(From from, uint32_t key = 0) {
        RegValue v;
        v.from = from;
        v.key = key;
        return v;
    }
};

std::string expr_bytes(const nftnl_expr* e, uint16_t attr) {
    uint32_t len = 0;
    const void* p = nftnl_expr_get(e, attr, &len);
    return p ? std::string(static_cast<const char*>(p), len) : std::string();
}

// The kernel reports a range's max register as the min one when only min was given.
bool same_or_unset(const nftnl_expr* e, uint16_t max_attr, uint16_t min_attr) {
    if (!nftnl_expr_is_set(e, max_attr)) return true;
    return nftnl_expr_is_set(e, min_attr) && nftnl_expr_get_u32(e, max_attr) == nftnl_expr_get_u32(e, min_attr);
}

std::optional<std::string> ifname_from(const std::string& data) {
    if (data.size() != kIfNameSize) return std::nullopt;
    size_t nul = data.find('\0');
    if (nul == 0 || nul == std::string::npos) return std::nullopt;
    if (data.find_first_not_of('\0', nul) != std::string::npos) return std::nullopt;
    return data.substr(0, nul);
}

struct Facts {
    std::optional<uint8_t> nfproto, l4proto;
    std::optional<uint16_t> dport;
    std::optional<std::string> iifname, oifname;
    bool established = false;
    bool dnat_status = false;
    int count = 0;
};

enum class Terminal { none, accept, dnat, masquerade };

// Applies one cmp to the facts; false when it is not a match we build or it repeats one.
bool add_fact(Facts& f, const RegValue& src, uint32_t op, const std::string& data) {
    auto once = [](auto& slot, auto value) {
        if (slot) return false;
        slot = value;
        return true;
    };
    ++f.count;
    if (src.from == RegValue::From::ct) {
        uint32_t zero = 0;
        if (!src.masked || src.xor_ != 0 || op != NFT_CMP_NEQ || data != std::string(reinterpret_cast<const char*>(&zero), 4))
            return false;
        if (src.key == NFT_CT_STATE && src.mask == kCtStateEstablishedRelated) return !std::exchange(f.established, true);
        if (src.key == NFT_CT_STATUS && src.mask == kCtStatusDstNat) return !std::exchange(f.dnat_status, true);
        return false;
    }
    if (op != NFT_CMP_EQ) return false;
    if (src.from == RegValue::From::meta) {
        switch (src.key) {
            case NFT_META_NFPROTO:
                return data.size() == 1 && once(f.nfproto, static_cast<uint8_t>(data[0]));
            case NFT_META_L4PROTO:
                return data.size() == 1 && once(f.l4proto, static_cast<uint8_t>(data[0]));
            case NFT_META_IIFNAME:
                if (auto n = ifname_from(data)) return once(f.iifname, *n);
                return false;
            case NFT_META_OIFNAME:
                if (auto n = ifname_from(data)) return once(f.oifname, *n);
                return false;
            default:
                return false;
        }
    }
    if (src.from == RegValue::From::payload) {
        // A port only means something after its protocol was matched.
        if (src.base != NFT_PAYLOAD_TRANSPORT_HEADER || src.offset != 2 || src.len != 2 || data.size() != 2 ||
            !f.l4proto)
            return false;
        uint16_t be;
        std::memcpy(&be, data.data(), 2);
        return once(f.dport, ntohs(be));
    }
    return false;
}

}  // namespace

namespace nft {

void RuleDeleter::operator()(nftnl_rule* r) const { nftnl_rule_free(r); }

const char* chain_for(FwKind kind) {
    switch (kind) {
        case FwKind::accept_udp: return "input";
        case FwKind::forward: return "forward";
        case FwKind::dnat: return "prerouting";
        case FwKind::masquerade: return "postrouting";
    }
    return "input";
}

FwRule canonical(const FwRule& r) {
    FwRule c;
    c.id = r.id;
    c.kind = r.kind;
    switch (r.kind) {
        case FwKind::accept_udp:
            c.port = r.port;
            break;
        case FwKind::forward:
            c.iif = r.iif;
            c.oif = r.oif;
            break;
        case FwKind::dnat:
            // The outgoing interface of a forward is not known in prerouting; the rule cannot
            // express it, so it is not part of the rule.
            c.proto = r.proto;
            c.port = r.port;
            c.to = r.to;
            c.to_port = r.to_port;
            break;
        case FwKind::masquerade:
            c.oif = r.oif;
            break;
    }
    return c;
}

Status check_rule(const FwRule& r) {
    auto bad = [&](const std::string& why) { return Error{EINVAL, fmt::format("firewall rule '{}': {}", r.id, why)}; };
    if (!valid_id(r.id)) return bad("the id must be non-empty, not start with '?' and not be " + std::string(kEstablishedId));
    if (r.id.size() > kMaxIdLen) return bad(fmt::format("the id is {} bytes long; nft comments hold at most {}", r.id.size(), kMaxIdLen));
    if (r.id.find('\0') != std::string::npos) return bad("the id contains a NUL byte");
    auto ifname_ok = [](const std::string& n) { return !n.empty() && n.size() < kIfNameSize && n.find('\0') == std::string::npos; };
    switch (r.kind) {
        case FwKind::accept_udp:
            if (r.port == 0) return bad("accept_udp needs a port 1..65535");
            break;
        case FwKind::forward:
            if (!ifname_ok(r.iif)) return bad(fmt::format("forward needs an input interface name of 1..15 bytes, got '{}'", r.iif));
            if (!r.oif.empty() && !ifname_ok(r.oif)) return bad(fmt::format("output interface '{}' is not 1..15 bytes", r.oif));
            break;
        case FwKind::dnat:
            if (r.port == 0) return bad("dnat needs a port 1..65535");
            if (!r.to || (!r.to->is_v4() && !r.to->is_v6())) return bad("dnat needs an IPv4 or IPv6 target address");
            break;
        case FwKind::masquerade:
            if (!ifname_ok(r.oif)) return bad(fmt::format("masquerade needs an output interface name of 1..15 bytes, got '{}'", r.oif));
            break;
    }
    return Status::ok();
}

RulePtr build_rule(const FwRule& r) {
    RulePtr rule = new_rule(chain_for(r.kind));
    nftnl_rule* p = rule.get();
    switch (r.kind) {
        case FwKind::accept_udp:
            add_dport_match(p, model::Proto::udp, r.port);
            add_accept(p);
            break;
        case FwKind::forward:
            add_ifname_match(p, NFT_META_IIFNAME, r.iif);
            if (!r.oif.empty()) add_ifname_match(p, NFT_META_OIFNAME, r.oif);
            add_accept(p);
            break;
        case FwKind::dnat: {
            bool v4 = r.to && r.to->is_v4();
            // Without the family match the rule would also match the other family's packets,
            // where the nat expression of this family does nothing.
            add_u8_match(p, NFT_META_NFPROTO, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
            add_dport_match(p, r.proto, r.port);
            add_immediate(p, NFT_REG_1, r.to->bytes.data(), v4 ? 4 : 16);
            if (r.to_port) {
                uint16_t be = htons(r.to_port);
                add_immediate(p, NFT_REG_2, &be, sizeof be);
            }
            nftnl_expr* e = new_expr("nat");
            nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
            nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, v4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
            nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
            if (r.to_port) {
                nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
                nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
            }
            nftnl_rule_add_expr(p, e);
            break;
        }
        case FwKind::masquerade:
            // Only connections a forward DNATed: they come from outside the fleet, and the
            // member answers through the tunnel only if they seem to come from this node. Other
            // traffic leaving through the interface (members talking to members, relayed by
            // this controller) keeps its source address.
            add_ifname_match(p, NFT_META_OIFNAME, r.oif);
            add_ct_bits_match(p, NFT_CT_STATUS, kCtStatusDstNat);
            nftnl_rule_add_expr(p, new_expr("masq"));
            break;
    }
    set_comment(p, r.id);
    return rule;
}

RulePtr build_established_rule() {
    RulePtr rule = new_rule("forward");
    nftnl_rule* p = rule.get();
    add_ct_bits_match(p, NFT_CT_STATE, kCtStateEstablishedRelated);
    add_accept(p);
    set_comment(p, kEstablishedId);
    return rule;
}

NftDecoded decode_rule(const nftnl_rule* r) {
    NftDecoded out;
    std::map<uint32_t, RegValue> regs;
    Facts facts;
    Terminal term = Terminal::none;
    FwRule dnat;

    nftnl_expr_iter* it = nftnl_expr_iter_create(r);
    if (!it) throw std::bad_alloc();
    bool ok = true;
    for (nftnl_expr* e = nftnl_expr_iter_next(it); e && ok; e = nftnl_expr_iter_next(it)) {
        const char* raw_name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        std::string name = raw_name ? raw_name : "";
        if (term != Terminal::none) {
            ok = false;  // nothing of ours follows the verdict or the nat statement
        } else if (name == "meta") {
            ok = nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG);  // not a `meta set`
            if (ok) regs[nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG)] = RegValue::of(RegValue::From::meta, nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY));
        } else if (name == "payload") {
            ok = nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_DREG) && !nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_SREG);
            if (ok) {
                RegValue v = RegValue::of(RegValue::From::payload);
                v.base = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
                v.offset = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
                v.len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
                regs[nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG)] = v;
            }
        } else if (name == "ct") {
            ok = nftnl_expr_is_set(e, NFTNL_EXPR_CT_DREG) && !nftnl_expr_is_set(e, NFTNL_EXPR_CT_SREG) &&
                 !nftnl_expr_is_set(e, NFTNL_EXPR_CT_DIR);
            if (ok) regs[nftnl_expr_get_u32(e, NFTNL_EXPR_CT_DREG)] = RegValue::of(RegValue::From::ct, nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY));
        } else if (name == "bitwise") {
            auto src = regs.find(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG));
            // Operation 0 is mask-and-xor (NFT_BITWISE_BOOL in older headers).
            ok = src != regs.end() && src->second.from == RegValue::From::ct && !src->second.masked &&
                 (!nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_OP) || nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_OP) == 0) &&
                 nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_LEN) == 4;
            std::string mask = expr_bytes(e, NFTNL_EXPR_BITWISE_MASK), x = expr_bytes(e, NFTNL_EXPR_BITWISE_XOR);
            ok = ok && mask.size() == 4 && x.size() == 4;
            if (ok) {
                RegValue v = src->second;
                v.masked = true;
                std::memcpy(&v.mask, mask.data(), 4);
                std::memcpy(&v.xor_, x.data(), 4);
                regs[nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG)] = v;
            }
        } else if (name == "immediate") {
            uint32_t dreg = nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG);
            if (dreg == NFT_REG_VERDICT) {
                ok = nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT) && !nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN) &&
                     static_cast<int32_t>(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT)) == NF_ACCEPT;
                term = Terminal::accept;
            } else {
                RegValue v = RegValue::of(RegValue::From::imm);
                v.data = expr_bytes(e, NFTNL_EXPR_IMM_DATA);
                regs[dreg] = v;
            }
        } else if (name == "cmp") {
            auto src = regs.find(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG));
            ok = src != regs.end() &&
                 add_fact(facts, src->second, nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP), expr_bytes(e, NFTNL_EXPR_CMP_DATA));
        } else if (name == "nat") {
            uint32_t family = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FAMILY);
            uint32_t flags = nftnl_expr_is_set(e, NFTNL_EXPR_NAT_FLAGS) ? nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FLAGS) : 0;
            // The kernel reports the two flags implied by the registers it was given.
            ok = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE) == NFT_NAT_DNAT &&
                 (family == kNfprotoIpv4 || family == kNfprotoIpv6) &&
                 (flags & ~uint32_t(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED)) == 0 &&
                 nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_ADDR_MIN) &&
                 same_or_unset(e, NFTNL_EXPR_NAT_REG_ADDR_MAX, NFTNL_EXPR_NAT_REG_ADDR_MIN) &&
                 same_or_unset(e, NFTNL_EXPR_NAT_REG_PROTO_MAX, NFTNL_EXPR_NAT_REG_PROTO_MIN);
            if (ok) {
                auto addr = regs.find(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN));
                size_t want = family == kNfprotoIpv4 ? 4 : 16;
                ok = addr != regs.end() && addr->second.from == RegValue::From::imm && addr->second.data.size() == want;
                if (ok) {
                    model::IpAddr a;
                    a.family = family == kNfprotoIpv4 ? 4 : 6;
                    std::memcpy(a.bytes.data(), addr->second.data.data(), want);
                    dnat.to = a;
                }
            }
            if (ok && nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_PROTO_MIN)) {
                auto port = regs.find(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN));
                ok = port != regs.end() && port->second.from == RegValue::From::imm && port->second.data.size() == 2;
                if (ok) {
                    uint16_t be;
                    std::memcpy(&be, port->second.data.data(), 2);
                    dnat.to_port = ntohs(be);
                    ok = dnat.to_port != 0;
                }
            }
            term = Terminal::dnat;
        } else if (name == "masq") {
            ok = (!nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_FLAGS) || nftnl_expr_get_u32(e, NFTNL_EXPR_MASQ_FLAGS) == 0) &&
                 !nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_REG_PROTO_MIN) && !nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_REG_PROTO_MAX);
            term = Terminal::masquerade;
        } else {
            ok = false;
        }
    }
    nftnl_expr_iter_destroy(it);
    if (!ok) return out;

    const Facts& f = facts;
    auto only = [&](int n) { return f.count == n; };
    if (term == Terminal::accept) {
        if (f.established && !f.dnat_status && only(1)) {
            out.what = NftDecoded::What::established;
        } else if (f.l4proto == IPPROTO_UDP && f.dport && only(2)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::accept_udp;
            out.rule.port = *f.dport;
        } else if (f.iifname && only(f.oifname ? 2 : 1)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::forward;
            out.rule.iif = *f.iifname;
            out.rule.oif = f.oifname.value_or("");
        }
    } else if (term == Terminal::dnat) {
        uint8_t want_nfproto = dnat.to->is_v4() ? NFPROTO_IPV4 : NFPROTO_IPV6;
        if (f.nfproto == want_nfproto && (f.l4proto == IPPROTO_TCP || f.l4proto == IPPROTO_UDP) && f.dport && only(3)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::dnat;
            out.rule.proto = f.l4proto == IPPROTO_TCP ? model::Proto::tcp : model::Proto::udp;
            out.rule.port = *f.dport;
            out.rule.to = dnat.to;
            out.rule.to_port = dnat.to_port;
        }
    } else if (term == Terminal::masquerade) {
        if (f.oifname && f.dnat_status && !f.established && only(2)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::masquerade;
            out.rule.oif = *f.oifname;
        }
    }
    if (out.what == NftDecoded::What::fw_rule && out.rule.port == 0 && out.rule.kind != FwKind::forward &&
        out.rule.kind != FwKind::masquerade)
        out.what = NftDecoded::What::unknown;  // port 0 is never one we build
    return out;
}

namespace {

// The attributes in [begin, begin + len), as libmnl bounds them.
template <class F>
void for_each_attr(const void* begin, size_t len, F&& f) {
    auto* a = static_cast<const nlattr*>(begin);
    int left = static_cast<int>(len);
    while (mnl_attr_ok(a, left)) {
        f(a);
        left -= static_cast<int>(MNL_ALIGN(a->nla_len));
        a = reinterpret_cast<const nlattr*>(reinterpret_cast<const char*>(a) + MNL_ALIGN(a->nla_len));
    }
}

// libnftnl trusts the kernel's layout of a rule message: it exit()s the process ("kernel ABI is
// broken") on an attribute of a known type with the wrong size, and reads an expression's name
// without checking that there is one. So a message is checked here first, against the layout
// the kernel uses, and only rules made of the expressions wg-fleet builds, each attribute checked,
// are handed to libnftnl; any other rule cannot be one of ours and is read as an unknown rule
// (its handle and chain only), which view() reports as damage for apply to delete.
enum class AttrKind : uint8_t { u8, u32, u64, string, nested, binary, data };

bool attr_valid(const nlattr* a, AttrKind kind);

// NFTA_DATA_*: a value, or a verdict (code, chain, chain id).
bool data_valid(const nlattr* nest) {
    bool ok = true;
    for_each_attr(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest), [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
            case NFTA_DATA_VALUE: ok &= attr_valid(a, AttrKind::binary) && mnl_attr_get_payload_len(a) <= NFT_DATA_VALUE_MAXLEN; break;
            case NFTA_DATA_VERDICT:
                ok &= attr_valid(a, AttrKind::nested);
                if (!ok) break;
                for_each_attr(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a), [&](const nlattr* v) {
                    switch (mnl_attr_get_type(v)) {
                        case NFTA_VERDICT_CODE:
                        case NFTA_VERDICT_CHAIN_ID: ok &= attr_valid(v, AttrKind::u32); break;
                        case NFTA_VERDICT_CHAIN: ok &= attr_valid(v, AttrKind::string); break;
                        default: ok = false;
                    }
                });
                break;
            default: ok = false;
        }
    });
    return ok;
}

bool attr_valid(const nlattr* a, AttrKind kind) {
    switch (kind) {
        case AttrKind::u8: return mnl_attr_validate(a, MNL_TYPE_U8) >= 0;
        case AttrKind::u32: return mnl_attr_validate(a, MNL_TYPE_U32) >= 0;
        case AttrKind::u64: return mnl_attr_validate(a, MNL_TYPE_U64) >= 0;
        case AttrKind::string: return mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0;
        case AttrKind::nested: return mnl_attr_validate(a, MNL_TYPE_NESTED) >= 0;
        case AttrKind::binary: return mnl_attr_validate(a, MNL_TYPE_BINARY) >= 0;
        case AttrKind::data: return mnl_attr_validate(a, MNL_TYPE_NESTED) >= 0 && data_valid(a);
    }
    return false;
}

// The attributes of the expressions wg-fleet builds, by type, as the kernel sends them.
struct ExprLayout {
    std::string_view name;
    std::vector<std::pair<uint16_t, AttrKind>> attrs;
};
const std::vector<ExprLayout>& expr_layouts() {
    using K = AttrKind;
    static const std::vector<ExprLayout> layouts = {
        {"meta", {{NFTA_META_KEY, K::u32}, {NFTA_META_DREG, K::u32}, {NFTA_META_SREG, K::u32}}},
        {"cmp", {{NFTA_CMP_SREG, K::u32}, {NFTA_CMP_OP, K::u32}, {NFTA_CMP_DATA, K::data}}},
        {"payload", {{NFTA_PAYLOAD_DREG, K::u32}, {NFTA_PAYLOAD_BASE, K::u32}, {NFTA_PAYLOAD_OFFSET, K::u32},
                     {NFTA_PAYLOAD_LEN, K::u32}, {NFTA_PAYLOAD_SREG, K::u32}, {NFTA_PAYLOAD_CSUM_TYPE, K::u32},
                     {NFTA_PAYLOAD_CSUM_OFFSET, K::u32}, {NFTA_PAYLOAD_CSUM_FLAGS, K::u32}}},
        {"immediate", {{NFTA_IMMEDIATE_DREG, K::u32}, {NFTA_IMMEDIATE_DATA, K::data}}},
        {"nat", {{NFTA_NAT_TYPE, K::u32}, {NFTA_NAT_FAMILY, K::u32}, {NFTA_NAT_REG_ADDR_MIN, K::u32},
                 {NFTA_NAT_REG_ADDR_MAX, K::u32}, {NFTA_NAT_REG_PROTO_MIN, K::u32}, {NFTA_NAT_REG_PROTO_MAX, K::u32},
                 {NFTA_NAT_FLAGS, K::u32}}},
        {"masq", {{NFTA_MASQ_FLAGS, K::u32}, {NFTA_MASQ_REG_PROTO_MIN, K::u32}, {NFTA_MASQ_REG_PROTO_MAX, K::u32}}},
        {"ct", {{NFTA_CT_KEY, K::u32}, {NFTA_CT_DREG, K::u32}, {NFTA_CT_DIRECTION, K::u8}, {NFTA_CT_SREG, K::u32}}},
        {"bitwise", {{NFTA_BITWISE_SREG, K::u32}, {NFTA_BITWISE_DREG, K::u32}, {NFTA_BITWISE_LEN, K::u32},
                     {NFTA_BITWISE_MASK, K::data}, {NFTA_BITWISE_XOR, K::data}, {NFTA_BITWISE_OP, K::u32},
                     {NFTA_BITWISE_DATA, K::data}}},
    };
    return layouts;
}

// One NFTA_LIST_ELEM: an expression of a kind wg-fleet builds, every attribute as the kernel
// lays it out.
bool expr_ours(const nlattr* elem) {
    if (mnl_attr_validate(elem, MNL_TYPE_NESTED) < 0) return false;
    const nlattr* name = nullptr;
    const nlattr* data = nullptr;
    bool ok = true;
    for_each_attr(mnl_attr_get_payload(elem), mnl_attr_get_payload_len(elem), [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
            case NFTA_EXPR_NAME: name = a; break;
            case NFTA_EXPR_DATA: data = a; break;
            default: ok = false;
        }
    });
    if (!ok || !name || !attr_valid(name, AttrKind::string) || (data && !attr_valid(data, AttrKind::nested))) return false;
    const std::string_view n = mnl_attr_get_str(name);
    auto layout = std::find_if(expr_layouts().begin(), expr_layouts().end(), [&](const ExprLayout& l) { return l.name == n; });
    if (layout == expr_layouts().end()) return false;
    if (!data) return true;
    for_each_attr(mnl_attr_get_payload(data), mnl_attr_get_payload_len(data), [&](const nlattr* a) {
        auto spec = std::find_if(layout->attrs.begin(), layout->attrs.end(),
                                 [&](const auto& p) { return p.first == mnl_attr_get_type(a); });
        ok &= spec != layout->attrs.end() && attr_valid(a, spec->second);
    });
    return ok;
}

// What the message holds, read without libnftnl.
struct RuleEnvelope {
    bool valid = true;
    bool ours_shape = true;          // every expression is one wg-fleet builds, well formed
    std::string table, chain;
    uint64_t handle = 0;
};

RuleEnvelope read_envelope(const nlmsghdr* nlh) {
    RuleEnvelope env;
    if (nlh->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg))) {
        env.valid = false;
        return env;
    }
    const nlattr* exprs = nullptr;  // libnftnl uses the last one
    // Up to the aligned end of the message, as libmnl walks it.
    const auto* first = static_cast<const char*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
    const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for_each_attr(first, static_cast<size_t>(tail - first), [&](const nlattr* a) {
                      switch (mnl_attr_get_type(a)) {
                          case NFTA_RULE_TABLE:
                              env.valid &= attr_valid(a, AttrKind::string);
                              if (env.valid) env.table = mnl_attr_get_str(a);
                              break;
                          case NFTA_RULE_CHAIN:
                              env.valid &= attr_valid(a, AttrKind::string);
                              if (env.valid) env.chain = mnl_attr_get_str(a);
                              break;
                          case NFTA_RULE_HANDLE:
                              env.valid &= attr_valid(a, AttrKind::u64);
                              if (env.valid) env.handle = be64toh(mnl_attr_get_u64(a));
                              break;
                          case NFTA_RULE_POSITION: env.valid &= attr_valid(a, AttrKind::u64); break;
                          case NFTA_RULE_COMPAT:  // iptables-nft's; libnftnl checks inside it too
                              env.valid &= attr_valid(a, AttrKind::nested);
                              env.ours_shape = false;
                              break;
                          case NFTA_RULE_USERDATA: env.valid &= attr_valid(a, AttrKind::binary); break;
                          case NFTA_RULE_ID:
                          case NFTA_RULE_POSITION_ID:
                          case NFTA_RULE_CHAIN_ID: env.valid &= attr_valid(a, AttrKind::u32); break;
                          case NFTA_RULE_EXPRESSIONS:
                              env.valid &= attr_valid(a, AttrKind::nested);
                              exprs = a;
                              break;
                          default: break;  // padding, or newer than this code: libnftnl skips them too
                      }
                  });
    if (env.valid && exprs)
        for_each_attr(mnl_attr_get_payload(exprs), mnl_attr_get_payload_len(exprs), [&](const nlattr* elem) {
            env.ours_shape &= mnl_attr_get_type(elem) == NFTA_LIST_ELEM && expr_ours(elem);
        });
    return env;
}

}  // namespace

std::optional<NftRuleLive> parse_rule_message(const nlmsghdr* nlh, const std::string& table) {
    if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWRULE) return std::nullopt;
    const RuleEnvelope env = read_envelope(nlh);
    if (!env.valid || env.table != table) return std::nullopt;
    NftRuleLive rl;
    rl.handle = env.handle;
    rl.chain = env.chain;
    if (!env.ours_shape) return rl;  // decoded as unknown
    RulePtr r(nftnl_rule_alloc());
    if (!r) throw std::bad_alloc();
    if (nftnl_rule_nlmsg_parse(nlh, r.get()) != 0) return rl;
    rl.comment = rule_comment(r.get());
    rl.decoded = decode_rule(r.get());
    return rl;
}

std::optional<std::string> rule_comment(const nftnl_rule* r) {
    if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)) return std::nullopt;
    uint32_t len = 0;
    const auto* p = static_cast<const uint8_t*>(nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len));
    // The TLVs nft writes (type, length, value: one byte, one byte, length bytes), walked here
    // because libnftnl's walker trusts each length to stay inside the buffer.
    std::optional<std::string> out;
    for (uint32_t i = 0; i < len;) {
        if (len - i < 2 || len - i - 2 < p[i + 1]) return std::nullopt;  // a TLV cut short
        const uint8_t type = p[i], n = p[i + 1];
        const char* v = reinterpret_cast<const char*>(p + i + 2);
        if (type == NFTNL_UDATA_RULE_COMMENT) {
            if (n == 0 || v[n - 1] != '\0' || std::strlen(v) != size_t(n - 1)) return std::nullopt;
            out = std::string(v, n - 1);
        }
        i += 2u + n;
    }
    return out;
}

// A chain the next apply deletes with all its rules: a base chain whose type, hook or priority
// differ (they cannot be updated in place), or a chain that is not ours.
static std::set<std::string> chains_to_recreate(const NftTableLive& t) {
    std::set<std::string> out;
    for (const auto& c : t.chains) {
        const BaseChainSpec* s = base_chain_spec(c.name);
        if (!s || !c.base || c.type != s->type || c.hooknum != s->hook || c.priority != s->priority) out.insert(c.name);
    }
    return out;
}

View view(const NftTableLive& t) {
    View v;
    if (!t.exists) return v;
    auto damage = [&](const std::string& id) {
        FwRule r;
        r.id = id;
        v.rules.emplace(id, r);
        v.source.emplace(id, nullptr);
    };
    std::set<std::string> recreate = chains_to_recreate(t);
    for (const auto& s : kBaseChains) {
        auto c = std::find_if(t.chains.begin(), t.chains.end(), [&](const NftChainLive& x) { return x.name == s.name; });
        if (c == t.chains.end() || recreate.count(s.name) || c->policy != NF_ACCEPT) damage(std::string("?chain-") + s.name);
    }
    for (const auto& c : t.chains)
        if (!base_chain_spec(c.name)) damage("?chain-" + c.name);
    for (const auto& s : t.sets) damage("?set-" + s);
    if (t.flags != 0) damage("?table-flags");

    bool established = false;
    for (const auto& r : t.rules) {
        bool ours = base_chain_spec(r.chain) && !recreate.count(r.chain);
        if (ours && !established && r.chain == "forward" && r.decoded.what == NftDecoded::What::established &&
            r.comment == kEstablishedId) {
            established = true;
            continue;
        }
        const FwRule& d = r.decoded.rule;
        if (ours && r.decoded.what == NftDecoded::What::fw_rule && r.chain == chain_for(d.kind) && r.comment &&
            valid_id(*r.comment) && !v.rules.count(*r.comment)) {
            FwRule out = d;
            out.id = *r.comment;
            v.rules.emplace(out.id, out);
            v.source.emplace(out.id, &r);
            continue;
        }
        std::string id = fmt::format("?handle-{}", r.handle);
        FwRule out = r.decoded.what == NftDecoded::What::fw_rule ? d : FwRule{};
        out.id = id;
        v.rules.emplace(id, out);
        v.source.emplace(id, &r);
    }
    if (!established) damage("?established");
    return v;
}

}  // namespace nft

// ---- netlink --------------------------------------------------------------------------------

namespace {

// Messages of one batch, appended to one buffer that goes to the kernel in one sendto(): the
// kernel commits everything between BEGIN and END or nothing.
class Batch {
public:
    explicit Batch(uint32_t& seq) : seq_(seq) {}

    nlmsghdr* start() {
        std::memset(scratch_, 0, sizeof scratch_);
        return reinterpret_cast<nlmsghdr*>(scratch_);
    }
    uint32_t seq() { return seq_; }
    void add(nlmsghdr* nlh, std::string what) {
        last_ = buf.size();
        buf.insert(buf.end(), scratch_, scratch_ + nlh->nlmsg_len);
        this->what.emplace_back(nlh->nlmsg_seq, std::move(what));
        ++seq_;
    }
    void marker(uint16_t type, uint32_t genid) {
        nlmsghdr* nlh = mnl_nlmsg_put_header(start());
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST;
        nlh->nlmsg_seq = seq_;
        auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
        g->nfgen_family = AF_UNSPEC;
        g->version = NFNETLINK_V0;
        g->res_id = htons(NFNL_SUBSYS_NFTABLES);
        // The kernel refuses the batch (ERESTART) when the ruleset changed since this generation.
        if (genid) mnl_attr_put_u32(nlh, NFNL_BATCH_GENID, htonl(genid));
        add(nlh, type == NFNL_MSG_BATCH_BEGIN ? "commit nftables batch" : "end nftables batch");
    }
    // Asks for an acknowledgement of the last message added; returns its sequence number.
    uint32_t ack_last() {
        auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data() + last_);
        nlh->nlmsg_flags |= NLM_F_ACK;
        return nlh->nlmsg_seq;
    }
    size_t count() const { return what.size(); }

    std::vector<char> buf;
    std::vector<std::pair<uint32_t, std::string>> what;

private:
    uint32_t& seq_;
    size_t last_ = 0;
    alignas(8) char scratch_[16384];
};

void add_table_msg(Batch& b, uint16_t type, uint16_t flags) {
    nftnl_table* t = nftnl_table_alloc();
    if (!t) throw std::bad_alloc();
    nftnl_table_set_str(t, NFTNL_TABLE_NAME, backend::kNftTable);
    nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
    // Explicit zero flags wake a table someone made dormant.
    if (type == NFT_MSG_NEWTABLE) nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), type, NFPROTO_INET, flags, b.seq());
    nftnl_table_nlmsg_build_payload(nlh, t);
    nftnl_table_free(t);
    b.add(nlh, fmt::format("{} table inet {}", type == NFT_MSG_NEWTABLE ? "create" : "delete", backend::kNftTable));
}

void add_chain_msg(Batch& b, uint16_t type, const std::string& name) {
    nftnl_chain* c = nftnl_chain_alloc();
    if (!c) throw std::bad_alloc();
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, backend::kNftTable);
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    if (type == NFT_MSG_NEWCHAIN) {
        const BaseChainSpec* s = base_chain_spec(name);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, s->type);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, s->hook);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, s->priority);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    // NLM_F_CREATE without NLM_F_EXCL: an existing chain is updated (policy) instead of an error.
    uint16_t flags = type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0;
    nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), type, NFPROTO_INET, flags, b.seq());
    nftnl_chain_nlmsg_build_payload(nlh, c);
    nftnl_chain_free(c);
    b.add(nlh, fmt::format("{} chain inet {} {}", type == NFT_MSG_NEWCHAIN ? "create" : "delete", backend::kNftTable, name));
}

// handle 0: every rule of the chain.
void add_delrule_msg(Batch& b, const std::string& chain, uint64_t handle) {
    nft::RulePtr r = new_rule(chain.c_str());
    if (handle) nftnl_rule_set_u64(r.get(), NFTNL_RULE_HANDLE, handle);
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), NFT_MSG_DELRULE, NFPROTO_INET, 0, b.seq());
    nftnl_rule_nlmsg_build_payload(nlh, r.get());
    b.add(nlh, handle ? fmt::format("delete rule handle {} from chain {}", handle, chain) : fmt::format("flush chain {}", chain));
}

void add_newrule_msg(Batch& b, nftnl_rule* r, bool append, const std::string& what) {
    uint16_t flags = NLM_F_CREATE | (append ? NLM_F_APPEND : 0);
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), NFT_MSG_NEWRULE, NFPROTO_INET, flags, b.seq());
    nftnl_rule_nlmsg_build_payload(nlh, r);
    b.add(nlh, what);
}

void add_delset_msg(Batch& b, const std::string& name) {
    nftnl_set* s = nftnl_set_alloc();
    if (!s) throw std::bad_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, backend::kNftTable);
    nftnl_set_set_str(s, NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
    nlmsghdr* nlh = nftnl_set_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), NFT_MSG_DELSET, NFPROTO_INET, 0, b.seq());
    nftnl_set_nlmsg_build_payload(nlh, s);
    nftnl_set_free(s);
    b.add(nlh, "delete set " + name);
}

std::string or_empty(const char* s) { return s ? s : ""; }

std::string describe(const FwRule& r) {
    return fmt::format("add rule '{}' to chain inet {} {}", r.id, backend::kNftTable, nft::chain_for(r.kind));
}

// One request and its replies, each handed to fn (a dump ends with NLMSG_DONE, a get with the
// acknowledgement it asked for).
struct Exchange {
    std::function<void(const nlmsghdr*)> fn;
    bool interrupted = false;
};

int exchange_cb(const nlmsghdr* nlh, void* data) {
    auto* x = static_cast<Exchange*>(data);
    if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) x->interrupted = true;
    x->fn(nlh);
    return MNL_CB_OK;
}

Status request(mnl_socket* nl, uint32_t portid, nlmsghdr* nlh, const std::string& what, Exchange& x) {
    if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return errno_error(errno, what);
    std::vector<char> buf(1 << 16);
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno_error(errno, what);
        }
        int ret = mnl_cb_run(buf.data(), n, nlh->nlmsg_seq, portid, exchange_cb, &x);
        if (ret < 0) return errno_error(errno, what);
        if (ret == MNL_CB_STOP) return Status::ok();
    }
}

}  // namespace

// ---- Nft ------------------------------------------------------------------------------------

Nft::Nft() {
    nl_ = mnl_socket_open(NETLINK_NETFILTER);
    if (!nl_) {
        open_error_ = errno_error(errno, "open netfilter netlink socket");
        return;
    }
    if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
        open_error_ = errno_error(errno, "bind netfilter netlink socket");
        mnl_socket_close(nl_);
        nl_ = nullptr;
        return;
    }
    portid_ = mnl_socket_get_portid(nl_);
    seq_ = static_cast<uint32_t>(time(nullptr));
    // Errors then carry only the header of the failed message, so many fit in the receive buffer.
    int one = 1;
    setsockopt(mnl_socket_get_fd(nl_), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
}

Nft::~Nft() {
    if (nl_) mnl_socket_close(nl_);
}

Result<uint32_t> Nft::read_genid() {
    char buf[256] = {};
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, next_seq());
    std::optional<uint32_t> id;
    Exchange x{[&](const nlmsghdr* m) {
        if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWGEN) return;
        nftnl_gen* g = nftnl_gen_alloc();
        if (g && nftnl_gen_nlmsg_parse(m, g) == 0) id = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
        if (g) nftnl_gen_free(g);
    }};
    if (auto s = request(nl_, portid_, nlh, "read nftables generation", x); !s) return s.error();
    if (!id) return Error{0, "read nftables generation: no answer"};
    return *id;
}

Result<NftTableLive> Nft::read_table_once(bool* consistent) {
    const std::string table = backend::kNftTable;
    NftTableLive live;
    auto gen = read_genid();
    if (!gen) return gen.error();
    live.genid = *gen;
    bool interrupted = false;

    {
        char buf[512] = {};
        nftnl_table* t = nftnl_table_alloc();
        if (!t) throw std::bad_alloc();
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, table.c_str());
        nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, next_seq());
        nftnl_table_nlmsg_build_payload(nlh, t);
        nftnl_table_free(t);
        Exchange x{[&](const nlmsghdr* m) {
            if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWTABLE) return;
            nftnl_table* got = nftnl_table_alloc();
            if (got && nftnl_table_nlmsg_parse(m, got) == 0) {
                live.exists = true;
                live.flags = nftnl_table_get_u32(got, NFTNL_TABLE_FLAGS);
            }
            if (got) nftnl_table_free(got);
        }};
        Status s = request(nl_, portid_, nlh, "read table inet " + table, x);
        if (!s && s.error().code != ENOENT) return s.error();
    }

    if (live.exists) {
        char buf[512] = {};
        nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_DUMP, next_seq());
        Exchange x{[&](const nlmsghdr* m) {
            if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWCHAIN) return;
            nftnl_chain* c = nftnl_chain_alloc();
            if (c && nftnl_chain_nlmsg_parse(m, c) == 0 && table == or_empty(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE))) {
                NftChainLive cl;
                cl.name = or_empty(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME));
                cl.base = nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM);
                if (cl.base) {
                    cl.type = nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) ? nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE) : "";
                    cl.hooknum = nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
                    cl.priority = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
                    cl.policy = nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY);
                }
                live.chains.push_back(cl);
            }
            if (c) nftnl_chain_free(c);
        }};
        if (auto s = request(nl_, portid_, nlh, "list chains of table inet " + table, x); !s) return s.error();
        interrupted |= x.interrupted;
    }

    if (live.exists) {
        char buf[512] = {};
        nftnl_set* s = nftnl_set_alloc();
        if (!s) throw std::bad_alloc();
        nftnl_set_set_str(s, NFTNL_SET_TABLE, table.c_str());
        nlmsghdr* nlh = nftnl_set_nlmsg_build_hdr(buf, NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP, next_seq());
        nftnl_set_nlmsg_build_payload(nlh, s);
        nftnl_set_free(s);
        Exchange x{[&](const nlmsghdr* m) {
            if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWSET) return;
            nftnl_set* got = nftnl_set_alloc();
            // Anonymous sets belong to the rule that uses them and go away with it.
            if (got && nftnl_set_nlmsg_parse(m, got) == 0 && table == or_empty(nftnl_set_get_str(got, NFTNL_SET_TABLE)) &&
                !(nftnl_set_get_u32(got, NFTNL_SET_FLAGS) & NFT_SET_ANONYMOUS))
                live.sets.push_back(or_empty(nftnl_set_get_str(got, NFTNL_SET_NAME)));
            if (got) nftnl_set_free(got);
        }};
        Status st = request(nl_, portid_, nlh, "list sets of table inet " + table, x);
        // ENOENT: the table went away since it was read; the generation check below notices.
        if (!st && st.error().code != ENOENT) return st.error();
        interrupted |= x.interrupted;
    }

    if (live.exists) {
        char buf[512] = {};
        nft::RulePtr filter(nftnl_rule_alloc());
        if (!filter) throw std::bad_alloc();
        nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, table.c_str());
        nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, next_seq());
        nftnl_rule_nlmsg_build_payload(nlh, filter.get());
        Exchange x{[&](const nlmsghdr* m) {
            if (auto rl = nft::parse_rule_message(m, table)) live.rules.push_back(std::move(*rl));
        }};
        Status st = request(nl_, portid_, nlh, "list rules of table inet " + table, x);
        if (!st && st.error().code != ENOENT) return st.error();
        interrupted |= x.interrupted;
    }

    auto gen2 = read_genid();
    if (!gen2) return gen2.error();
    *consistent = !interrupted && *gen2 == live.genid;
    return live;
}

Result<NftTableLive> Nft::read_table() {
    if (open_error_) return *open_error_;
    // Several dumps make one snapshot only if no commit happened in between.
    for (int attempt = 0; attempt < 10; ++attempt) {
        bool consistent = false;
        auto live = read_table_once(&consistent);
        if (!live || consistent) return live;
    }
    return errno_error(EAGAIN, fmt::format("read table inet {}: the ruleset kept changing while it was read", backend::kNftTable));
}

Result<std::map<std::string, FwRule>> Nft::read() {
    auto live = read_table();
    if (!live) return live.error();
    cache_ = *live;
    return nft::view(*cache_).rules;
}

Status Nft::send_batch(std::vector<char>& buf, const std::vector<std::pair<uint32_t, std::string>>& what, uint32_t ack_seq) {
    int fd = mnl_socket_get_fd(nl_);
    // The whole batch must fit in one message: the kernel only commits what arrives together.
    int need = static_cast<int>(buf.size()) + (1 << 16);
    int have = 0;
    socklen_t len = sizeof have;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have < need &&
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &need, sizeof need) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &need, sizeof need);
    if (mnl_socket_sendto(nl_, buf.data(), buf.size()) < 0)
        return errno_error(errno, fmt::format("send nftables batch of {} messages ({} bytes)", what.size(), buf.size()));

    // The kernel processed the batch inside sendto(): every answer is queued already.
    auto describe_seq = [&](uint32_t seq) {
        for (const auto& [s, w] : what)
            if (s == seq) return w;
        return fmt::format("nftables batch message {}", seq);
    };
    std::vector<char> rbuf(1 << 16);
    std::optional<Error> first;
    bool acked = false;
    for (;;) {
        ssize_t n = recv(fd, rbuf.data(), rbuf.size(), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            // ENOBUFS: more errors than the receive buffer holds; the batch failed either way.
            if (errno != EAGAIN && errno != EWOULDBLOCK && !first) first = errno_error(errno, "read nftables batch answers");
            break;
        }
        int left = static_cast<int>(n);
        for (auto* nlh = reinterpret_cast<const nlmsghdr*>(rbuf.data()); mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
            if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_pid != portid_) continue;
            const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
            if (err->error == 0) {
                if (nlh->nlmsg_seq == ack_seq) acked = true;
            } else if (!first) {
                first = errno_error(-err->error, describe_seq(nlh->nlmsg_seq));
            }
        }
    }
    if (first) return *first;
    if (!acked) return Error{0, fmt::format("nftables batch of {} messages: the kernel did not acknowledge it", what.size())};
    return Status::ok();
}

Status Nft::apply_once(const backend::FirewallChange& change, const NftTableLive& live) {
    nft::View v = nft::view(live);
    std::set<std::string> flush = nft::chains_to_recreate(live);

    // Rules that go: those the change removes, those an add replaces, and anything read() could
    // only report under a "?" id. Rules in chains that are flushed go with their chain.
    std::vector<const NftRuleLive*> del;
    std::set<uint64_t> deleting;
    auto delete_rule = [&](const NftRuleLive* r) {
        if (r && !flush.count(r->chain) && deleting.insert(r->handle).second) del.push_back(r);
    };
    for (const auto& id : change.remove)
        if (auto it = v.source.find(id); it != v.source.end()) delete_rule(it->second);
    for (const auto& [id, src] : v.source)
        if (id[0] == '?') delete_rule(src);

    std::vector<FwRule> adds;
    std::set<std::string> add_ids;
    for (const auto& r : change.add) {
        if (auto s = nft::check_rule(r); !s) return s;
        if (!add_ids.insert(r.id).second)
            return Error{EINVAL, fmt::format("firewall change adds rule '{}' twice", r.id)};
        FwRule c = nft::canonical(r);
        auto it = v.source.find(r.id);
        if (it != v.source.end() && it->second) {
            bool kept = !deleting.count(it->second->handle) && !flush.count(it->second->chain);
            if (kept && v.rules.at(r.id) == c) continue;  // already there as it should be
            delete_rule(it->second);
        }
        adds.push_back(std::move(c));
    }
    // By id, so a table rebuilt from scratch lists the same whatever order the change had.
    std::sort(adds.begin(), adds.end(), [](const FwRule& a, const FwRule& b) { return a.id < b.id; });

    bool skeleton_ok = live.exists;
    for (const auto& [id, src] : v.source)
        if (id[0] == '?' && !src) skeleton_ok = false;
    if (skeleton_ok && del.empty() && adds.empty()) return Status::ok();
    if (!live.exists && adds.empty()) return Status::ok();  // no table and nothing to put in it
    bool add_established = !live.exists || v.rules.count("?established") || flush.count("forward");

    Batch b(seq_);
    b.marker(NFNL_MSG_BATCH_BEGIN, live.genid);
    add_table_msg(b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
    for (const NftRuleLive* r : del) add_delrule_msg(b, r->chain, r->handle);
    for (const auto& c : flush) add_delrule_msg(b, c, 0);
    for (const auto& s : live.sets) add_delset_msg(b, s);
    for (const auto& c : flush) add_chain_msg(b, NFT_MSG_DELCHAIN, c);
    for (const auto& s : kBaseChains) add_chain_msg(b, NFT_MSG_NEWCHAIN, s.name);
    if (add_established) {
        // Not appended: at the head of forward, ahead of every per-interface rule.
        nft::RulePtr r = nft::build_established_rule();
        add_newrule_msg(b, r.get(), false, "add the ct state established,related rule to chain forward");
    }
    for (const auto& a : adds) {
        nft::RulePtr r = nft::build_rule(a);
        add_newrule_msg(b, r.get(), true, describe(a));
    }
    uint32_t ack_seq = b.ack_last();
    b.marker(NFNL_MSG_BATCH_END, 0);
    return send_batch(b.buf, b.what, ack_seq);
}

Status Nft::apply(const backend::FirewallChange& change) {
    if (open_error_) return *open_error_;
    for (int attempt = 0; attempt < 5; ++attempt) {
        std::optional<NftTableLive> live;
        live.swap(cache_);
        if (!live || attempt > 0) {
            auto fresh = read_table();
            if (!fresh) return fresh.error();
            live = std::move(*fresh);
        }
        Status s = apply_once(change, *live);
        // ERESTART: the ruleset changed after the snapshot was taken; handles may be stale.
        if (!s && s.error().code == ERESTART) continue;
        return s;
    }
    return errno_error(ERESTART, fmt::format("apply change to table inet {}: the ruleset kept changing", backend::kNftTable));
}

Status Nft::remove_all() {
    if (open_error_) return *open_error_;
    cache_.reset();
    Batch b(seq_);
    b.marker(NFNL_MSG_BATCH_BEGIN, 0);
    add_table_msg(b, NFT_MSG_DELTABLE, 0);
    uint32_t ack_seq = b.ack_last();
    b.marker(NFNL_MSG_BATCH_END, 0);
    Status s = send_batch(b.buf, b.what, ack_seq);
    if (!s && s.error().code == ENOENT) return Status::ok();
    return s;
}

}  // namespace wgf::linux_
