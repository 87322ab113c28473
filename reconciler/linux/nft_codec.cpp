// The nftables rule codec: building and decoding the rules of table `inet wg-fleet`. Pure; see
// nft_codec.hpp.
#include "linux/nft_codec.hpp"

#include <arpa/inet.h>
#include <endian.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <set>
#include <string_view>
#include <utility>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <fmt/format.h>

namespace wgf::linux_ {

using backend::Error;
using backend::Status;
using model::FwKind;
using model::FwRule;

namespace {

constexpr size_t kIfNameSize = 16;                            // IFNAMSIZ: nft compares interface names as 16 NUL-padded bytes
constexpr size_t kMaxIdLen = NFTNL_UDATA_COMMENT_MAXLEN - 1;  // nft refuses longer comments
constexpr uint32_t kCtStateEstablishedRelated = (1u << (0 + 1)) | (1u << (1 + 1));  // NF_CT_STATE_BIT
constexpr uint32_t kCtStatusDstNat = 1u << 5;                                       // IPS_DST_NAT: the connection was DNATed
constexpr uint32_t kNfprotoIpv4 = NFPROTO_IPV4, kNfprotoIpv6 = NFPROTO_IPV6;
// nft's datatype numbers (TYPE_IPADDR, TYPE_IP6ADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE) and
// how it numbers a concatenation of them, so that `nft list` prints the maps' types.
constexpr uint32_t kTypeIpAddr = 7, kTypeIp6Addr = 8, kTypeInetProto = 12, kTypeInetService = 13, kTypeBits = 6;
constexpr uint32_t concat_type(uint32_t a, uint32_t b) { return (a << kTypeBits) | b; }
// A concatenation puts each part in a 32-bit register of its own: the port after the
// protocol (key), after an IPv4 address, after an IPv6 address (data).
constexpr uint32_t kPortAfterProto = NFT_REG32_01, kPortAfterV4 = NFT_REG32_01, kPortAfterV6 = NFT_REG_2;
constexpr uint32_t kSlot = 4;

// The comments of the skeleton's own rules start with "wg-fleet:"; no FwRule id may.
bool valid_id(const std::string& id) { return !id.empty() && id.rfind("wg-fleet:", 0) != 0; }

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
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): buf is zeroed and at most kIfNameSize - 1 bytes are copied
    std::memcpy(buf, name.data(), std::min(name.size(), kIfNameSize - 1));
    add_meta_load(r, key);
    add_cmp(r, NFT_CMP_EQ, buf, sizeof buf);
}

void add_ifname_mismatch(nftnl_rule* r, uint32_t key, const std::string& name) {
    char buf[kIfNameSize] = {};
    // NOLINTNEXTLINE(bugprone-not-null-terminated-result): buf is zeroed and at most kIfNameSize - 1 bytes are copied
    std::memcpy(buf, name.data(), std::min(name.size(), kIfNameSize - 1));
    add_meta_load(r, key);
    add_cmp(r, NFT_CMP_NEQ, buf, sizeof buf);
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

// `ip saddr A` / `ip6 saddr A` in an inet chain: the family dependency, then the address.
void add_saddr_match(nftnl_rule* r, const model::IpAddr& a) {
    add_u8_match(r, NFT_META_NFPROTO, a.is_v4() ? NFPROTO_IPV4 : NFPROTO_IPV6);
    nftnl_expr* e = new_expr("payload");
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, a.is_v4() ? 12 : 8);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, a.is_v4() ? 4 : 16);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
    nftnl_rule_add_expr(r, e);
    add_cmp(r, NFT_CMP_EQ, a.bytes.data(), a.is_v4() ? 4 : 16);
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
    NlPtr<nftnl_udata_buf> buf(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
    if (!buf) throw std::bad_alloc();
    nftnl_udata_put_strz(buf.get(), NFTNL_UDATA_RULE_COMMENT, id.c_str());
    nftnl_rule_set_data(r, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(buf.get()), nftnl_udata_buf_len(buf.get()));
}

// Expressions are evaluated symbolically: each register remembers where its value came from, and
// each cmp becomes a fact about that source. Any expression or fact we never build makes the rule
// unknown, so a hand edit (a counter, a log, a different match) is never mistaken for ours.

struct RegValue {
    enum class From { meta, payload, ct, imm, lookup } from = From::meta;
    uint32_t key = 0, base = 0, offset = 0, len = 0;
    std::string data;     // imm: the bytes
    bool masked = false;  // ct: passed through bitwise
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
    std::optional<model::IpAddr> saddr;
    std::vector<std::string> not_oifnames;  // `oifname != X`, each once
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
        if (!src.masked || src.xor_ != 0 || op != NFT_CMP_NEQ || data != std::string(reinterpret_cast<const char*>(&zero), 4)) return false;
        if (src.key == NFT_CT_STATE && src.mask == kCtStateEstablishedRelated) return !std::exchange(f.established, true);
        if (src.key == NFT_CT_STATUS && src.mask == kCtStatusDstNat) return !std::exchange(f.dnat_status, true);
        return false;
    }
    if (op == NFT_CMP_NEQ && src.from == RegValue::From::meta && src.key == NFT_META_OIFNAME) {
        auto n = ifname_from(data);
        if (!n || std::find(f.not_oifnames.begin(), f.not_oifnames.end(), *n) != f.not_oifnames.end()) return false;
        f.not_oifnames.push_back(*n);
        return true;
    }
    if (op != NFT_CMP_EQ) return false;
    if (src.from == RegValue::From::meta) {
        switch (src.key) {
            case NFT_META_NFPROTO: return data.size() == 1 && once(f.nfproto, static_cast<uint8_t>(data[0]));
            case NFT_META_L4PROTO: return data.size() == 1 && once(f.l4proto, static_cast<uint8_t>(data[0]));
            case NFT_META_IIFNAME:
                if (auto n = ifname_from(data)) return once(f.iifname, *n);
                return false;
            case NFT_META_OIFNAME:
                if (auto n = ifname_from(data)) return once(f.oifname, *n);
                return false;
            default: return false;
        }
    }
    if (src.from == RegValue::From::payload && src.base == NFT_PAYLOAD_NETWORK_HEADER) {
        // A source address only means something after its family was matched.
        const bool v4 = f.nfproto == NFPROTO_IPV4, v6 = f.nfproto == NFPROTO_IPV6;
        if (!(v4 && src.offset == 12 && src.len == 4) && !(v6 && src.offset == 8 && src.len == 16)) return false;
        if (data.size() != src.len) return false;
        model::IpAddr a;
        a.family = v4 ? 4 : 6;
        std::memcpy(a.bytes.data(), data.data(), data.size());
        return once(f.saddr, a);
    }
    if (src.from == RegValue::From::payload) {
        // A port only means something after its protocol was matched.
        if (src.base != NFT_PAYLOAD_TRANSPORT_HEADER || src.offset != 2 || src.len != 2 || data.size() != 2 || !f.l4proto) return false;
        uint16_t be;
        std::memcpy(&be, data.data(), 2);
        return once(f.dport, ntohs(be));
    }
    return false;
}

// One rule's expressions, fed in order. Each expression kind has a handler that says whether the
// expression is one we build (false makes the rule unknown) and records what it means: a load
// into a register, a fact (a cmp), or the terminal statement.
class RuleDecoder {
public:
    bool feed(const nftnl_expr* e);
    NftDecoded result() const;

private:
    bool meta(const nftnl_expr* e);
    bool payload(const nftnl_expr* e);
    bool ct(const nftnl_expr* e);
    bool bitwise(const nftnl_expr* e);
    bool immediate(const nftnl_expr* e);
    bool cmp(const nftnl_expr* e);
    bool nat(const nftnl_expr* e);
    bool masq(const nftnl_expr* e);
    bool lookup(const nftnl_expr* e);
    bool nat_from_map(const nftnl_expr* e, uint32_t family);
    // The register an immediate loaded `want` bytes into, as the nat expression names it.
    const RegValue* imm_reg(const nftnl_expr* e, uint16_t attr, size_t want) const;

    std::map<uint32_t, RegValue> regs_;
    Facts facts_;
    Terminal term_ = Terminal::none;
    FwRule dnat_;
    std::string lookup_set_;  // the map a lookup named
    bool from_map_ = false;   // the nat statement takes its address and port from the lookup
};

bool RuleDecoder::feed(const nftnl_expr* e) {
    using Handler = bool (RuleDecoder::*)(const nftnl_expr*);
    static constexpr std::pair<std::string_view, Handler> kHandlers[] = {
        {"meta", &RuleDecoder::meta},       {"payload", &RuleDecoder::payload},     {"ct", &RuleDecoder::ct},
        {"bitwise", &RuleDecoder::bitwise}, {"immediate", &RuleDecoder::immediate}, {"cmp", &RuleDecoder::cmp},
        {"nat", &RuleDecoder::nat},         {"masq", &RuleDecoder::masq},           {"lookup", &RuleDecoder::lookup},
    };
    if (term_ != Terminal::none) return false;  // nothing of ours follows the verdict or the nat statement
    const char* raw_name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
    const std::string_view name = raw_name ? raw_name : "";
    for (const auto& [kind, handler] : kHandlers)
        if (kind == name) return (this->*handler)(e);
    return false;
}

bool RuleDecoder::meta(const nftnl_expr* e) {
    if (!nftnl_expr_is_set(e, NFTNL_EXPR_META_DREG)) return false;  // a `meta set`
    regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG)] = RegValue::of(RegValue::From::meta, nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY));
    return true;
}

bool RuleDecoder::payload(const nftnl_expr* e) {
    if (!nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_DREG) || nftnl_expr_is_set(e, NFTNL_EXPR_PAYLOAD_SREG)) return false;
    RegValue v = RegValue::of(RegValue::From::payload);
    v.base = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
    v.offset = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
    v.len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
    regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG)] = v;
    return true;
}

bool RuleDecoder::ct(const nftnl_expr* e) {
    if (!nftnl_expr_is_set(e, NFTNL_EXPR_CT_DREG) || nftnl_expr_is_set(e, NFTNL_EXPR_CT_SREG) || nftnl_expr_is_set(e, NFTNL_EXPR_CT_DIR))
        return false;
    regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_CT_DREG)] = RegValue::of(RegValue::From::ct, nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY));
    return true;
}

bool RuleDecoder::bitwise(const nftnl_expr* e) {
    auto src = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG));
    // Operation 0 is mask-and-xor (NFT_BITWISE_BOOL in older headers).
    if (src == regs_.end() || src->second.from != RegValue::From::ct || src->second.masked ||
        (nftnl_expr_is_set(e, NFTNL_EXPR_BITWISE_OP) && nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_OP) != 0) ||
        nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_LEN) != 4)
        return false;
    std::string mask = expr_bytes(e, NFTNL_EXPR_BITWISE_MASK), x = expr_bytes(e, NFTNL_EXPR_BITWISE_XOR);
    if (mask.size() != 4 || x.size() != 4) return false;
    RegValue v = src->second;
    v.masked = true;
    std::memcpy(&v.mask, mask.data(), 4);
    std::memcpy(&v.xor_, x.data(), 4);
    regs_[nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG)] = v;
    return true;
}

bool RuleDecoder::immediate(const nftnl_expr* e) {
    uint32_t dreg = nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_DREG);
    if (dreg == NFT_REG_VERDICT) {
        term_ = Terminal::accept;
        return nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT) && !nftnl_expr_is_set(e, NFTNL_EXPR_IMM_CHAIN) &&
               static_cast<int32_t>(nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT)) == NF_ACCEPT;
    }
    RegValue v = RegValue::of(RegValue::From::imm);
    v.data = expr_bytes(e, NFTNL_EXPR_IMM_DATA);
    regs_[dreg] = v;
    return true;
}

bool RuleDecoder::cmp(const nftnl_expr* e) {
    auto src = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG));
    return src != regs_.end() &&
           add_fact(facts_, src->second, nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP), expr_bytes(e, NFTNL_EXPR_CMP_DATA));
}

const RegValue* RuleDecoder::imm_reg(const nftnl_expr* e, uint16_t attr, size_t want) const {
    auto reg = regs_.find(nftnl_expr_get_u32(e, attr));
    if (reg == regs_.end() || reg->second.from != RegValue::From::imm || reg->second.data.size() != want) return nullptr;
    return &reg->second;
}

// `meta l4proto . th dport` looked up in a named map, its value left in NFT_REG_1 onwards.
bool RuleDecoder::lookup(const nftnl_expr* e) {
    auto proto = regs_.find(NFT_REG_1);
    auto port = regs_.find(kPortAfterProto);
    const char* set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
    if (!lookup_set_.empty() || !set || !nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG) ||
        nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG) != NFT_REG_1 || nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG) != NFT_REG_1 ||
        (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) && nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) != 0) || proto == regs_.end() ||
        port == regs_.end())
        return false;
    const RegValue& pr = proto->second;
    const RegValue& po = port->second;
    if (pr.from != RegValue::From::meta || pr.key != NFT_META_L4PROTO || po.from != RegValue::From::payload ||
        po.base != NFT_PAYLOAD_TRANSPORT_HEADER || po.offset != 2 || po.len != 2)
        return false;
    lookup_set_ = set;
    regs_.clear();
    RegValue v = RegValue::of(RegValue::From::lookup);
    v.data = lookup_set_;
    regs_[NFT_REG_1] = v;
    return true;
}

bool RuleDecoder::nat_from_map(const nftnl_expr* e, uint32_t family) {
    auto addr = regs_.find(nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN));
    if (addr == regs_.end() || addr->second.from != RegValue::From::lookup || addr->first != NFT_REG_1 ||
        !nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_PROTO_MIN) ||
        nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN) != (family == kNfprotoIpv4 ? kPortAfterV4 : kPortAfterV6))
        return false;
    from_map_ = true;
    return true;
}

bool RuleDecoder::nat(const nftnl_expr* e) {
    term_ = Terminal::dnat;
    uint32_t family = nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FAMILY);
    uint32_t flags = nftnl_expr_is_set(e, NFTNL_EXPR_NAT_FLAGS) ? nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_FLAGS) : 0;
    // The kernel reports the two flags implied by the registers it was given.
    if (nftnl_expr_get_u32(e, NFTNL_EXPR_NAT_TYPE) != NFT_NAT_DNAT || (family != kNfprotoIpv4 && family != kNfprotoIpv6) ||
        (flags & ~uint32_t(NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED)) != 0 ||
        !nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_ADDR_MIN) || !same_or_unset(e, NFTNL_EXPR_NAT_REG_ADDR_MAX, NFTNL_EXPR_NAT_REG_ADDR_MIN) ||
        !same_or_unset(e, NFTNL_EXPR_NAT_REG_PROTO_MAX, NFTNL_EXPR_NAT_REG_PROTO_MIN))
        return false;
    if (!lookup_set_.empty()) return nat_from_map(e, family);
    const size_t want = family == kNfprotoIpv4 ? 4 : 16;
    const RegValue* addr = imm_reg(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, want);
    if (!addr) return false;
    model::IpAddr a;
    a.family = family == kNfprotoIpv4 ? 4 : 6;
    std::memcpy(a.bytes.data(), addr->data.data(), want);
    dnat_.to = a;
    if (!nftnl_expr_is_set(e, NFTNL_EXPR_NAT_REG_PROTO_MIN)) return true;
    const RegValue* port = imm_reg(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, 2);
    if (!port) return false;
    uint16_t be;
    std::memcpy(&be, port->data.data(), 2);
    dnat_.to_port = ntohs(be);
    return dnat_.to_port != 0;
}

bool RuleDecoder::masq(const nftnl_expr* e) {
    term_ = Terminal::masquerade;
    return (!nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_FLAGS) || nftnl_expr_get_u32(e, NFTNL_EXPR_MASQ_FLAGS) == 0) &&
           !nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_REG_PROTO_MIN) && !nftnl_expr_is_set(e, NFTNL_EXPR_MASQ_REG_PROTO_MAX);
}

// Which of our rules the facts and the terminal statement make, when exactly those facts.
NftDecoded RuleDecoder::result() const {
    NftDecoded out;
    const Facts& f = facts_;
    auto only = [&](int n) { return f.count == n; };
    if (term_ == Terminal::accept) {
        if (f.established && !f.dnat_status && only(1)) {
            out.what = NftDecoded::What::established;
        } else if (f.l4proto == IPPROTO_UDP && f.dport && only(2)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::accept_udp;
            out.rule.port = *f.dport;
        } else if (f.iifname && f.saddr && !f.oifname && f.not_oifnames.empty() && only(3)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::exit_forward;
            out.rule.iif = *f.iifname;
            out.rule.from = f.saddr;
        } else if (f.iifname && only(f.oifname ? 2 : 1)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::forward;
            out.rule.iif = *f.iifname;
            out.rule.oif = f.oifname.value_or("");
        }
    } else if (term_ == Terminal::dnat && from_map_) {
        const nft::DnatMapSpec* m = nft::dnat_map_spec(lookup_set_);
        if (m && f.nfproto == m->nfproto && !f.l4proto && only(1)) {
            out.what = NftDecoded::What::dnat_map;
            out.map = lookup_set_;
        }
    } else if (term_ == Terminal::dnat) {
        uint8_t want_nfproto = dnat_.to->is_v4() ? NFPROTO_IPV4 : NFPROTO_IPV6;
        // NOLINTNEXTLINE(misc-redundant-expression): IPPROTO_TCP and IPPROTO_UDP are distinct enumerators clang-tidy 14 folds
        if (f.nfproto == want_nfproto && (f.l4proto == IPPROTO_TCP || f.l4proto == IPPROTO_UDP) && f.dport && only(3)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::dnat;
            out.rule.proto = f.l4proto == IPPROTO_TCP ? model::Proto::tcp : model::Proto::udp;
            out.rule.port = *f.dport;
            out.rule.to = dnat_.to;
            out.rule.to_port = dnat_.to_port;
        }
    } else if (term_ == Terminal::masquerade) {
        if (f.oifname && f.dnat_status && !f.established && only(2)) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::masquerade;
            out.rule.oif = *f.oifname;
        } else if (f.saddr && !f.not_oifnames.empty() && !f.oifname && !f.iifname && !f.dnat_status && !f.established &&
                   only(2 + static_cast<int>(f.not_oifnames.size()))) {
            out.what = NftDecoded::What::fw_rule;
            out.rule.kind = FwKind::exit_masquerade;
            out.rule.from = f.saddr;
            out.rule.not_oif = f.not_oifnames;
            std::sort(out.rule.not_oif.begin(), out.rule.not_oif.end());
        }
    }
    if (out.what == NftDecoded::What::fw_rule && out.rule.port == 0 && out.rule.kind != FwKind::forward &&
        out.rule.kind != FwKind::masquerade && out.rule.kind != FwKind::exit_forward && out.rule.kind != FwKind::exit_masquerade)
        out.what = NftDecoded::What::unknown;  // port 0 is never one we build
    return out;
}

}  // namespace

namespace nft {


const std::vector<BaseChainSpec>& base_chains() {
    static const std::vector<BaseChainSpec> chains = {
        {"input", "filter", NF_INET_LOCAL_IN, 0},
        {"forward", "filter", NF_INET_FORWARD, 0},
        {"prerouting", "nat", NF_INET_PRE_ROUTING, -100},   // dstnat
        {"postrouting", "nat", NF_INET_POST_ROUTING, 100},  // srcnat
    };
    return chains;
}

const BaseChainSpec* base_chain_spec(const std::string& name) {
    for (const auto& s : base_chains())
        if (name == s.name) return &s;
    return nullptr;
}

const std::vector<DnatMapSpec>& dnat_maps() {
    static const std::vector<DnatMapSpec> maps = {{"fwd4", NFPROTO_IPV4, 4}, {"fwd6", NFPROTO_IPV6, 16}};
    return maps;
}

const DnatMapSpec* dnat_map_spec(const std::string& name) {
    for (const auto& m : dnat_maps())
        if (name == m.name) return &m;
    return nullptr;
}

const DnatMapSpec& dnat_map_for(const FwRule& r) { return dnat_maps()[r.to && r.to->is_v4() ? 0 : 1]; }

namespace {
uint32_t map_data_type(const DnatMapSpec& m) {
    return concat_type(m.nfproto == NFPROTO_IPV4 ? kTypeIpAddr : kTypeIp6Addr, kTypeInetService);
}
}  // namespace

bool set_ours(const NftSetLive& s) {
    const DnatMapSpec* m = dnat_map_spec(s.name);
    return m && !s.extra && s.flags == NFT_SET_MAP && s.key_type == concat_type(kTypeInetProto, kTypeInetService) &&
           s.key_len == 2 * kSlot && s.data_type == map_data_type(*m) && s.data_len == m->addr_len + kSlot;
}

namespace {
SetPtr new_set(const DnatMapSpec& m) {
    SetPtr set(nftnl_set_alloc());
    if (!set) throw std::bad_alloc();
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, backend::kNftTable);
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, m.name);
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    return set;
}

nftnl_set_elem* new_elem(nftnl_set* set, const std::string& key) {
    nftnl_set_elem* e = nftnl_set_elem_alloc();
    if (!e) throw std::bad_alloc();
    nftnl_set_elem_add(set, e);  // the set owns it from here
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key.data(), static_cast<uint32_t>(key.size()));
    return e;
}
}  // namespace

SetPtr build_dnat_map(const DnatMapSpec& m) {
    SetPtr set = new_set(m);
    nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, NFT_SET_MAP);
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, concat_type(kTypeInetProto, kTypeInetService));
    nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, 2 * kSlot);
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_TYPE, map_data_type(m));
    nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_LEN, m.addr_len + kSlot);
    // Identifies the set to the lookup rule of the same batch before the kernel names it.
    nftnl_set_set_u32(set.get(), NFTNL_SET_ID, m.nfproto);
    return set;
}

RulePtr build_dnat_map_rule(const DnatMapSpec& m) {
    RulePtr rule = new_rule("prerouting");
    nftnl_rule* p = rule.get();
    add_u8_match(p, NFT_META_NFPROTO, m.nfproto);
    add_meta_load(p, NFT_META_L4PROTO);
    nftnl_expr* th = new_expr("payload");
    nftnl_expr_set_u32(th, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
    nftnl_expr_set_u32(th, NFTNL_EXPR_PAYLOAD_OFFSET, 2);
    nftnl_expr_set_u32(th, NFTNL_EXPR_PAYLOAD_LEN, 2);
    nftnl_expr_set_u32(th, NFTNL_EXPR_PAYLOAD_DREG, kPortAfterProto);
    nftnl_rule_add_expr(p, th);
    nftnl_expr* lk = new_expr("lookup");
    nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
    nftnl_expr_set_str(lk, NFTNL_EXPR_LOOKUP_SET, m.name);
    nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_SET_ID, m.nfproto);
    nftnl_rule_add_expr(p, lk);
    nftnl_expr* nat = new_expr("nat");
    nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
    nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FAMILY, m.nfproto);
    nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
    nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_REG_PROTO_MIN, m.nfproto == NFPROTO_IPV4 ? kPortAfterV4 : kPortAfterV6);
    nftnl_expr_set_u32(nat, NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED);
    nftnl_rule_add_expr(p, nat);
    set_comment(p, dnat_map_rule_comment(m));
    return rule;
}

std::string dnat_map_rule_comment(const DnatMapSpec& m) { return fmt::format("wg-fleet:{}", m.name); }

std::string dnat_key(const FwRule& r) {
    std::string key(2 * kSlot, '\0');
    key[0] = static_cast<char>(r.proto == model::Proto::tcp ? IPPROTO_TCP : IPPROTO_UDP);
    const uint16_t be = htons(r.port);
    std::memcpy(key.data() + kSlot, &be, sizeof be);
    return key;
}

SetPtr build_dnat_elements(const DnatMapSpec& m, const std::vector<const FwRule*>& rules, bool with_data) {
    SetPtr set = new_set(m);
    for (const FwRule* r : rules) {
        nftnl_set_elem* e = new_elem(set.get(), dnat_key(*r));
        if (!with_data) continue;
        std::string data(m.addr_len + kSlot, '\0');
        std::memcpy(data.data(), r->to->bytes.data(), m.addr_len);
        const uint16_t be = htons(r->to_port ? r->to_port : r->port);
        std::memcpy(data.data() + m.addr_len, &be, sizeof be);
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, data.data(), static_cast<uint32_t>(data.size()));
        NlPtr<nftnl_udata_buf> buf(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
        if (!buf) throw std::bad_alloc();
        nftnl_udata_put_strz(buf.get(), NFTNL_UDATA_SET_ELEM_COMMENT, r->id.c_str());
        nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(buf.get()), nftnl_udata_buf_len(buf.get()));
    }
    return set;
}

SetPtr build_dnat_keys(const DnatMapSpec& m, const std::vector<const std::string*>& keys) {
    SetPtr set = new_set(m);
    for (const std::string* k : keys) new_elem(set.get(), *k);
    return set;
}

RulePtr new_rule(const char* chain) {
    RulePtr r(nftnl_rule_alloc());
    if (!r) throw std::bad_alloc();
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, backend::kNftTable);
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
    return r;
}


const char* chain_for(FwKind kind) {
    switch (kind) {
        case FwKind::accept_udp: return "input";
        case FwKind::forward: return "forward";
        case FwKind::dnat: return "prerouting";
        case FwKind::masquerade:
        case FwKind::exit_masquerade: return "postrouting";
        case FwKind::exit_forward: return "forward";
    }
    return "input";
}

FwRule canonical(const FwRule& r) {
    FwRule c;
    c.id = r.id;
    c.kind = r.kind;
    switch (r.kind) {
        case FwKind::accept_udp: c.port = r.port; break;
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
            // The map's value always carries a port: keeping the port is translating to it.
            c.to_port = r.to_port ? r.to_port : r.port;
            break;
        case FwKind::masquerade: c.oif = r.oif; break;
        case FwKind::exit_forward:
            c.iif = r.iif;
            c.from = r.from;
            break;
        case FwKind::exit_masquerade:
            c.from = r.from;
            c.not_oif = r.not_oif;
            std::sort(c.not_oif.begin(), c.not_oif.end());
            c.not_oif.erase(std::unique(c.not_oif.begin(), c.not_oif.end()), c.not_oif.end());
            break;
    }
    return c;
}

Status check_rule(const FwRule& r) {
    auto bad = [&](const std::string& why) { return Error{EINVAL, fmt::format("firewall rule '{}': {}", r.id, why)}; };
    if (!valid_id(r.id)) return bad("the id must be non-empty and not start with 'wg-fleet:'");
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
        case FwKind::exit_forward:
        case FwKind::exit_masquerade:
            if (!r.from || (!r.from->is_v4() && !r.from->is_v6())) return bad("an exit node's rule needs an IPv4 or IPv6 source address");
            if (r.kind == FwKind::exit_forward && !ifname_ok(r.iif))
                return bad(fmt::format("forward needs an input interface name of 1..15 bytes, got '{}'", r.iif));
            if (r.kind == FwKind::exit_masquerade && r.not_oif.empty()) return bad("masquerade needs the fleet's interfaces to exclude");
            for (const auto& i : r.not_oif)
                if (!ifname_ok(i)) return bad(fmt::format("output interface '{}' is not 1..15 bytes", i));
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
        case FwKind::exit_forward:
            add_saddr_match(p, *r.from);
            add_ifname_match(p, NFT_META_IIFNAME, r.iif);
            add_accept(p);
            break;
        case FwKind::exit_masquerade:
            // Out of the fleet only: forwarded on to another member, a packet keeps its source.
            add_saddr_match(p, *r.from);
            for (const auto& i : r.not_oif) add_ifname_mismatch(p, NFT_META_OIFNAME, i);
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
    NlPtr<nftnl_expr_iter> it(nftnl_expr_iter_create(r));
    if (!it) throw std::bad_alloc();
    RuleDecoder decoder;
    bool ok = true;
    for (const nftnl_expr* e = nftnl_expr_iter_next(it.get()); e && ok; e = nftnl_expr_iter_next(it.get())) ok = decoder.feed(e);
    return ok ? decoder.result() : NftDecoded{};
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
        {"payload",
         {{NFTA_PAYLOAD_DREG, K::u32},
          {NFTA_PAYLOAD_BASE, K::u32},
          {NFTA_PAYLOAD_OFFSET, K::u32},
          {NFTA_PAYLOAD_LEN, K::u32},
          {NFTA_PAYLOAD_SREG, K::u32},
          {NFTA_PAYLOAD_CSUM_TYPE, K::u32},
          {NFTA_PAYLOAD_CSUM_OFFSET, K::u32},
          {NFTA_PAYLOAD_CSUM_FLAGS, K::u32}}},
        {"immediate", {{NFTA_IMMEDIATE_DREG, K::u32}, {NFTA_IMMEDIATE_DATA, K::data}}},
        {"nat",
         {{NFTA_NAT_TYPE, K::u32},
          {NFTA_NAT_FAMILY, K::u32},
          {NFTA_NAT_REG_ADDR_MIN, K::u32},
          {NFTA_NAT_REG_ADDR_MAX, K::u32},
          {NFTA_NAT_REG_PROTO_MIN, K::u32},
          {NFTA_NAT_REG_PROTO_MAX, K::u32},
          {NFTA_NAT_FLAGS, K::u32}}},
        {"lookup",
         {{NFTA_LOOKUP_SET, K::string},
          {NFTA_LOOKUP_SREG, K::u32},
          {NFTA_LOOKUP_DREG, K::u32},
          {NFTA_LOOKUP_SET_ID, K::u32},
          {NFTA_LOOKUP_FLAGS, K::u32}}},
        {"masq", {{NFTA_MASQ_FLAGS, K::u32}, {NFTA_MASQ_REG_PROTO_MIN, K::u32}, {NFTA_MASQ_REG_PROTO_MAX, K::u32}}},
        {"ct", {{NFTA_CT_KEY, K::u32}, {NFTA_CT_DREG, K::u32}, {NFTA_CT_DIRECTION, K::u8}, {NFTA_CT_SREG, K::u32}}},
        {"bitwise",
         {{NFTA_BITWISE_SREG, K::u32},
          {NFTA_BITWISE_DREG, K::u32},
          {NFTA_BITWISE_LEN, K::u32},
          {NFTA_BITWISE_MASK, K::data},
          {NFTA_BITWISE_XOR, K::data},
          {NFTA_BITWISE_OP, K::u32},
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
    bool ours_shape = true;  // every expression is one wg-fleet builds, well formed
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
        for_each_attr(mnl_attr_get_payload(exprs), mnl_attr_get_payload_len(exprs),
                      [&](const nlattr* elem) { env.ours_shape &= mnl_attr_get_type(elem) == NFTA_LIST_ELEM && expr_ours(elem); });
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

namespace {

// The comment among the TLVs nft writes into userdata (type, length, value: one byte, one byte,
// length bytes), walked here because libnftnl's walker trusts each length to stay inside the
// buffer.
std::optional<std::string> udata_comment(const uint8_t* p, uint32_t len, uint8_t comment_type) {
    std::optional<std::string> out;
    for (uint32_t i = 0; i < len;) {
        if (len - i < 2 || len - i - 2 < p[i + 1]) return std::nullopt;  // a TLV cut short
        const uint8_t type = p[i], n = p[i + 1];
        const char* v = reinterpret_cast<const char*>(p + i + 2);
        if (type == comment_type) {
            if (n == 0 || v[n - 1] != '\0' || std::strlen(v) != size_t(n - 1)) return std::nullopt;
            out = std::string(v, n - 1);
        }
        i += 2u + n;
    }
    return out;
}

// NFTA_DATA_VALUE inside an NFTA_SET_ELEM_KEY / _DATA nest; nothing when anything else is there.
std::optional<std::string> data_value(const nlattr* nest) {
    if (!attr_valid(nest, AttrKind::nested)) return std::nullopt;
    std::optional<std::string> out;
    bool ok = true;
    for_each_attr(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest), [&](const nlattr* a) {
        if (mnl_attr_get_type(a) != NFTA_DATA_VALUE || out) ok = false;
        else out = std::string(static_cast<const char*>(mnl_attr_get_payload(a)), mnl_attr_get_payload_len(a));
    });
    return ok ? out : std::nullopt;
}

// The forward an element of map m holds, when it is one build_dnat_elements makes.
std::optional<FwRule> decode_elem(const DnatMapSpec& m, const std::string& key, const std::string& data) {
    auto zero = [](const std::string& b, size_t from, size_t to) {
        return std::all_of(b.begin() + static_cast<long>(from), b.begin() + static_cast<long>(to), [](char c) { return c == 0; });
    };
    if (key.size() != 2 * kSlot || data.size() != m.addr_len + kSlot || !zero(key, 1, kSlot) || !zero(key, kSlot + 2, 2 * kSlot) ||
        !zero(data, m.addr_len + 2, data.size()))
        return std::nullopt;
    const auto l4 = static_cast<uint8_t>(key[0]);
    if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP) return std::nullopt;
    uint16_t port = 0, to_port = 0;
    std::memcpy(&port, key.data() + kSlot, 2);
    std::memcpy(&to_port, data.data() + m.addr_len, 2);
    FwRule r;
    r.kind = FwKind::dnat;
    r.proto = l4 == IPPROTO_TCP ? model::Proto::tcp : model::Proto::udp;
    r.port = ntohs(port);
    r.to_port = ntohs(to_port);
    model::IpAddr a;
    a.family = m.nfproto == NFPROTO_IPV4 ? 4 : 6;
    std::memcpy(a.bytes.data(), data.data(), m.addr_len);
    r.to = a;
    if (r.port == 0 || r.to_port == 0) return std::nullopt;
    return r;
}

NftElemLive parse_elem(const DnatMapSpec& m, const nlattr* elem) {
    NftElemLive out;
    out.set = m.name;
    std::optional<std::string> key, data;
    bool ours = attr_valid(elem, AttrKind::nested);
    if (ours)
        for_each_attr(mnl_attr_get_payload(elem), mnl_attr_get_payload_len(elem), [&](const nlattr* a) {
            switch (mnl_attr_get_type(a)) {
                case NFTA_SET_ELEM_KEY: key = data_value(a); break;
                case NFTA_SET_ELEM_DATA: data = data_value(a); break;
                case NFTA_SET_ELEM_FLAGS: ours &= attr_valid(a, AttrKind::u32) && mnl_attr_get_u32(a) == 0; break;
                case NFTA_SET_ELEM_USERDATA:
                    if (attr_valid(a, AttrKind::binary))
                        out.comment = udata_comment(static_cast<const uint8_t*>(mnl_attr_get_payload(a)), mnl_attr_get_payload_len(a),
                                                    NFTNL_UDATA_SET_ELEM_COMMENT);
                    break;
                case NFTA_SET_ELEM_PAD: break;
                default: ours = false;  // a timeout, a counter, ...: nothing we build
            }
        });
    if (key) out.key = *key;
    if (ours && key && data) out.decoded = decode_elem(m, *key, *data);
    return out;
}

}  // namespace

std::vector<NftElemLive> parse_elem_message(const nlmsghdr* nlh, const std::string& table, const std::string& set) {
    std::vector<NftElemLive> out;
    const DnatMapSpec* m = dnat_map_spec(set);
    if (!m || NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWSETELEM || nlh->nlmsg_len < MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(nfgenmsg)))
        return out;
    const auto* first = static_cast<const char*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
    const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    std::string got_table, got_set;
    const nlattr* elems = nullptr;
    for_each_attr(first, static_cast<size_t>(tail - first), [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
            case NFTA_SET_ELEM_LIST_TABLE:
                if (attr_valid(a, AttrKind::string)) got_table = mnl_attr_get_str(a);
                break;
            case NFTA_SET_ELEM_LIST_SET:
                if (attr_valid(a, AttrKind::string)) got_set = mnl_attr_get_str(a);
                break;
            case NFTA_SET_ELEM_LIST_ELEMENTS:
                if (attr_valid(a, AttrKind::nested)) elems = a;
                break;
            default: break;
        }
    });
    if (got_table != table || got_set != set || !elems) return out;
    // The kernel types each NFTA_LIST_ELEM; libnftnl numbers them 1, 2, ...: both are a list.
    for_each_attr(mnl_attr_get_payload(elems), mnl_attr_get_payload_len(elems), [&](const nlattr* e) { out.push_back(parse_elem(*m, e)); });
    return out;
}

std::optional<std::string> rule_comment(const nftnl_rule* r) {
    if (!nftnl_rule_is_set(r, NFTNL_RULE_USERDATA)) return std::nullopt;
    uint32_t len = 0;
    const auto* p = static_cast<const uint8_t*>(nftnl_rule_get_data(r, NFTNL_RULE_USERDATA, &len));
    return udata_comment(p, len, NFTNL_UDATA_RULE_COMMENT);
}

std::set<std::string> chains_to_recreate(const NftTableLive& t) {
    std::set<std::string> out;
    for (const auto& c : t.chains) {
        const BaseChainSpec* s = base_chain_spec(c.name);
        if (!s || !c.base || c.type != s->type || c.hooknum != s->hook || c.priority != s->priority) out.insert(c.name);
    }
    return out;
}

View view(const NftTableLive& t) {
    using What = model::FwDamage::What;
    View v;
    if (!t.exists) return v;
    auto damage = [&](What what, const std::string& name = {}) {
        v.damage.push_back(model::FwDamage{.what = what, .handle = 0, .name = name, .decoded = std::nullopt});
    };
    std::set<std::string> recreate = chains_to_recreate(t);
    for (const auto& s : base_chains()) {
        auto c = std::find_if(t.chains.begin(), t.chains.end(), [&](const NftChainLive& x) { return x.name == s.name; });
        if (c == t.chains.end() || recreate.count(s.name) || c->policy != NF_ACCEPT) damage(What::chain, s.name);
    }
    for (const auto& c : t.chains)
        if (!base_chain_spec(c.name)) damage(What::chain, c.name);
    std::set<std::string> good_maps, map_damage;
    for (const auto& s : t.sets) {
        if (set_ours(s)) {
            good_maps.insert(s.name);
            continue;
        }
        v.bad_sets.insert(s.name);
        if (dnat_map_spec(s.name)) map_damage.insert(s.name);
        else damage(What::set, s.name);
    }
    for (const auto& m : dnat_maps())
        if (!good_maps.count(m.name)) {
            v.missing_maps.insert(m.name);
            map_damage.insert(m.name);
        }
    if (t.flags != 0) damage(What::table_flags);

    bool established = false;
    std::set<std::string> map_rules;
    for (const auto& r : t.rules) {
        bool ours = base_chain_spec(r.chain) && !recreate.count(r.chain);
        if (ours && !established && r.chain == "forward" && r.decoded.what == NftDecoded::What::established &&
            r.comment == kEstablishedId) {
            established = true;
            continue;
        }
        if (ours && r.chain == "prerouting" && r.decoded.what == NftDecoded::What::dnat_map && good_maps.count(r.decoded.map) &&
            r.comment == dnat_map_rule_comment(*dnat_map_spec(r.decoded.map)) && map_rules.insert(r.decoded.map).second)
            continue;
        const FwRule& d = r.decoded.rule;
        // A forward as a rule of its own is how earlier versions built it: it belongs in a map.
        if (ours && r.decoded.what == NftDecoded::What::fw_rule && d.kind != FwKind::dnat && r.chain == chain_for(d.kind) && r.comment &&
            valid_id(*r.comment) && !v.rules.count(*r.comment)) {
            FwRule out = d;
            out.id = *r.comment;
            v.rules.emplace(out.id, out);
            v.source.emplace(out.id, &r);
            continue;
        }
        const bool decoded = r.decoded.what == NftDecoded::What::fw_rule;
        v.damage.push_back(model::FwDamage{
            .what = What::rule, .handle = r.handle, .name = {}, .decoded = decoded ? std::optional<FwRule>(d) : std::nullopt});
        v.damaged_rules.push_back(&r);
    }
    if (!established) damage(What::established);
    for (const auto& m : dnat_maps())
        if (!map_rules.count(m.name)) {
            v.missing_map_rules.insert(m.name);
            map_damage.insert(m.name);
        }
    for (const auto& name : map_damage) damage(What::map, name);

    // 10,000 forwards are 10,000 elements: one lookup and one copy each.
    v.elem_source.reserve(t.elements.size());
    for (const auto& e : t.elements) {
        if (!good_maps.count(e.set)) continue;
        if (e.decoded && e.comment && valid_id(*e.comment)) {
            if (auto [it, fresh] = v.rules.try_emplace(*e.comment, *e.decoded); fresh) {
                it->second.id = it->first;
                v.elem_source.emplace(it->first, &e);
                continue;
            }
        }
        v.damage.push_back(model::FwDamage{.what = What::element, .handle = 0, .name = e.set, .decoded = e.decoded});
        v.damaged_elements.push_back(&e);
    }
    std::sort(v.damage.begin(), v.damage.end());
    return v;
}

namespace {

// The expressions as libnftnl prints them: two rules with the same text match the same packets.
std::string expressions_text(nftnl_rule* r) {
    std::string out;
    nftnl_expr_foreach(
        r,
        [](nftnl_expr* e, void* data) {
            char buf[512];
            nftnl_expr_snprintf(buf, sizeof buf, e, NFTNL_OUTPUT_DEFAULT, 0);
            *static_cast<std::string*>(data) += std::string(buf) + ";";
            return 0;
        },
        &out);
    return out;
}

}  // namespace

RulePtr build_foreign_rule(const model::ForeignRule& r, uint32_t family) {
    std::string_view id = r.id;
    RulePtr rule(nftnl_rule_alloc());
    if (!rule) throw std::bad_alloc();
    nftnl_rule* p = rule.get();
    nftnl_rule_set_str(p, NFTNL_RULE_TABLE, r.table.c_str());
    nftnl_rule_set_str(p, NFTNL_RULE_CHAIN, r.chain.c_str());
    nftnl_rule_set_u32(p, NFTNL_RULE_FAMILY, family);
    auto ifname = [&](std::string_view prefix) {
        std::string name(id.substr(prefix.size()));
        return id.starts_with(prefix) && !name.empty() && name.size() < kIfNameSize ? name : std::string();
    };
    if (id.starts_with("udp-dport-")) {
        unsigned port = 0;
        std::string_view digits = id.substr(10);
        for (char c : digits) port = c >= '0' && c <= '9' && port <= 65535 ? port * 10 + unsigned(c - '0') : 65536;
        if (digits.empty() || port == 0 || port > 65535) return nullptr;
        add_dport_match(p, model::Proto::udp, static_cast<uint16_t>(port));
    } else if (auto in = ifname("iif-"); !in.empty()) {
        add_ifname_match(p, NFT_META_IIFNAME, in);
    } else if (auto out = ifname("oif-"); !out.empty()) {
        add_ifname_match(p, NFT_META_OIFNAME, out);
    } else {
        return nullptr;
    }
    add_accept(p);
    set_comment(p, model::kForeignRuleMark + r.id);
    return rule;
}

std::optional<ForeignRuleLive> parse_foreign_rule_message(const nlmsghdr* nlh, const std::string& ours) {
    if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWRULE) return std::nullopt;
    const RuleEnvelope env = read_envelope(nlh);
    if (!env.valid) return std::nullopt;
    const uint32_t family = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh))->nfgen_family;
    if (family == NFPROTO_INET && env.table == ours) return std::nullopt;
    // The comment straight from the attribute: a rule of another shape (a marked rule edited by
    // hand) is still ours, without handing its expressions to libnftnl.
    std::optional<std::string> comment;
    const auto* first = static_cast<const char*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
    const auto* tail = static_cast<const char*>(mnl_nlmsg_get_payload_tail(nlh));
    for_each_attr(first, static_cast<size_t>(tail - first), [&](const nlattr* a) {
        if (mnl_attr_get_type(a) != NFTA_RULE_USERDATA) return;
        RulePtr only_userdata(nftnl_rule_alloc());
        if (!only_userdata) throw std::bad_alloc();
        nftnl_rule_set_data(only_userdata.get(), NFTNL_RULE_USERDATA, mnl_attr_get_payload(a), mnl_attr_get_payload_len(a));
        comment = rule_comment(only_userdata.get());
    });
    const std::string_view mark = model::kForeignRuleMark;
    if (!comment || !comment->starts_with(mark)) return std::nullopt;
    ForeignRuleLive out{.family = family,
                        .table = env.table,
                        .chain = env.chain,
                        .handle = env.handle,
                        .id = comment->substr(mark.size()),
                        .as_built = false};
    if (!env.ours_shape) return out;
    RulePtr r(nftnl_rule_alloc());
    if (!r) throw std::bad_alloc();
    if (nftnl_rule_nlmsg_parse(nlh, r.get()) != 0) return out;
    RulePtr want = build_foreign_rule(
        model::ForeignRule{.family = {}, .table = out.table, .chain = out.chain, .id = out.id, .as_built = true}, family);
    out.as_built = want && expressions_text(want.get()) == expressions_text(r.get());
    return out;
}

}  // namespace nft

}  // namespace wgf::linux_
