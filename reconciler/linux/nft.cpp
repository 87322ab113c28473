// The nftables exchange: reads table `inet wg-fleet` over nfnetlink dumps and changes it in one
// batch per apply. Rules are built and decoded by nft_codec.cpp. See nft.hpp for the table's
// layout and the ids read() reports.
#include "linux/nft.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <new>
#include <set>
#include <utility>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <fmt/format.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  // asm-generic/socket.h, Linux 5.14
#endif

namespace wgf::linux_ {

using backend::Error;
using backend::errno_error;
using backend::Result;
using backend::Status;
using model::FwRule;

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
    void add(nlmsghdr* nlh, std::string description) {
        last_ = buf.size();
        buf.insert(buf.end(), scratch_, scratch_ + nlh->nlmsg_len);
        what.emplace_back(nlh->nlmsg_seq, std::move(description));
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
    NlPtr<nftnl_table> t(nftnl_table_alloc());
    if (!t) throw std::bad_alloc();
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, backend::kNftTable);
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
    // Explicit zero flags wake a table someone made dormant.
    if (type == NFT_MSG_NEWTABLE) nftnl_table_set_u32(t.get(), NFTNL_TABLE_FLAGS, 0);
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), type, NFPROTO_INET, flags, b.seq());
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    b.add(nlh, fmt::format("{} table inet {}", type == NFT_MSG_NEWTABLE ? "create" : "delete", backend::kNftTable));
}

void add_chain_msg(Batch& b, uint16_t type, const std::string& name) {
    NlPtr<nftnl_chain> owner(nftnl_chain_alloc());
    nftnl_chain* c = owner.get();
    if (!c) throw std::bad_alloc();
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, backend::kNftTable);
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    if (type == NFT_MSG_NEWCHAIN) {
        const nft::BaseChainSpec* s = nft::base_chain_spec(name);
        nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, s->type);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, s->hook);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, s->priority);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    // NLM_F_CREATE without NLM_F_EXCL: an existing chain is updated (policy) instead of an error.
    uint16_t flags = type == NFT_MSG_NEWCHAIN ? NLM_F_CREATE : 0;
    nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), type, NFPROTO_INET, flags, b.seq());
    nftnl_chain_nlmsg_build_payload(nlh, c);
    b.add(nlh, fmt::format("{} chain inet {} {}", type == NFT_MSG_NEWCHAIN ? "create" : "delete", backend::kNftTable, name));
}

// handle 0: every rule of the chain.
void add_delrule_msg(Batch& b, const std::string& chain, uint64_t handle) {
    nft::RulePtr r = nft::new_rule(chain.c_str());
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
    NlPtr<nftnl_set> owner(nftnl_set_alloc());
    nftnl_set* s = owner.get();
    if (!s) throw std::bad_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, backend::kNftTable);
    nftnl_set_set_str(s, NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
    nlmsghdr* nlh = nftnl_set_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), NFT_MSG_DELSET, NFPROTO_INET, 0, b.seq());
    nftnl_set_nlmsg_build_payload(nlh, s);
    b.add(nlh, "delete set " + name);
}

void add_newset_msg(Batch& b, const nft::DnatMapSpec& m) {
    nft::SetPtr s = nft::build_dnat_map(m);
    nlmsghdr* nlh = nftnl_set_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE, b.seq());
    nftnl_set_nlmsg_build_payload(nlh, s.get());
    b.add(nlh, fmt::format("create map inet {} {}", backend::kNftTable, m.name));
}

// Elements go in messages of at most this many, each well inside the batch's scratch buffer.
constexpr size_t kElemsPerMsg = 64;

void add_elems_msg(Batch& b, uint16_t type, const nftnl_set* s, const std::string& what) {
    nlmsghdr* nlh = nftnl_set_elem_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), type, NFPROTO_INET,
                                                   type == NFT_MSG_NEWSETELEM ? NLM_F_CREATE : 0, b.seq());
    nftnl_set_elems_nlmsg_build_payload(nlh, const_cast<nftnl_set*>(s));
    b.add(nlh, what);
}

// One NEWSETELEM per chunk of forwards of map m.
void add_forward_msgs(Batch& b, const nft::DnatMapSpec& m, const std::vector<FwRule>& rules) {
    for (size_t i = 0; i < rules.size(); i += kElemsPerMsg) {
        std::vector<const FwRule*> chunk;
        for (size_t j = i; j < std::min(rules.size(), i + kElemsPerMsg); ++j) chunk.push_back(&rules[j]);
        nft::SetPtr s = nft::build_dnat_elements(m, chunk, true);
        add_elems_msg(b, NFT_MSG_NEWSETELEM, s.get(),
                      chunk.size() == 1 ? fmt::format("add forward '{}' to map inet {} {}", chunk[0]->id, backend::kNftTable, m.name)
                                        : fmt::format("add {} forwards ('{}' .. '{}') to map inet {} {}", chunk.size(), chunk.front()->id,
                                                      chunk.back()->id, backend::kNftTable, m.name));
    }
}

// One DELSETELEM per chunk of keys of map m.
void del_key_msgs(Batch& b, const nft::DnatMapSpec& m, const std::set<std::string>& keys) {
    std::vector<const std::string*> all;
    all.reserve(keys.size());
    for (const auto& k : keys) all.push_back(&k);
    for (size_t i = 0; i < all.size(); i += kElemsPerMsg) {
        std::vector<const std::string*> chunk(all.begin() + static_cast<long>(i),
                                              all.begin() + static_cast<long>(std::min(all.size(), i + kElemsPerMsg)));
        nft::SetPtr s = nft::build_dnat_keys(m, chunk);
        add_elems_msg(
            b, NFT_MSG_DELSETELEM, s.get(),
            fmt::format("delete {} element{} from map inet {} {}", chunk.size(), chunk.size() == 1 ? "" : "s", backend::kNftTable, m.name));
    }
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

Nft::Nft() {
    nl_.reset(mnl_socket_open(NETLINK_NETFILTER));
    if (!nl_) {
        open_error_ = errno_error(errno, "open netfilter netlink socket");
        return;
    }
    if (mnl_socket_bind(nl_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
        open_error_ = errno_error(errno, "bind netfilter netlink socket");
        nl_.reset();
        return;
    }
    portid_ = mnl_socket_get_portid(nl_.get());
    // The namespace the socket acts in: a snapshot read in another one is not this one's. Its
    // cookie, unlike its inode number, is never reused by a later namespace; without one (a
    // kernel before 5.14) no snapshot is shared.
    uint64_t cookie = 0;
    socklen_t cookie_len = sizeof cookie;
    if (getsockopt(mnl_socket_get_fd(nl_.get()), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &cookie_len) == 0) netns_ = cookie;
    seq_ = static_cast<uint32_t>(time(nullptr));
    // Errors then carry only the header of the failed message, so many fit in the receive buffer.
    int one = 1;
    setsockopt(mnl_socket_get_fd(nl_.get()), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
}

Nft::~Nft() = default;

Result<uint32_t> Nft::read_genid() {
    char buf[256] = {};
    nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, NLM_F_ACK, next_seq());
    std::optional<uint32_t> id;
    Exchange x{[&](const nlmsghdr* m) {
        if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWGEN) return;
        NlPtr<nftnl_gen> g(nftnl_gen_alloc());
        if (g && nftnl_gen_nlmsg_parse(m, g.get()) == 0) id = nftnl_gen_get_u32(g.get(), NFTNL_GEN_ID);
    }};
    if (auto s = request(nl_.get(), portid_, nlh, "read nftables generation", x); !s) return s.error();
    if (!id) return Error{0, "read nftables generation: no answer"};
    return *id;
}

Status Nft::read_table_head(NftTableLive& live) {
    const std::string table = backend::kNftTable;
    char buf[512] = {};
    NlPtr<nftnl_table> t(nftnl_table_alloc());
    if (!t) throw std::bad_alloc();
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nlmsghdr* nlh = nftnl_table_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, next_seq());
    nftnl_table_nlmsg_build_payload(nlh, t.get());
    Exchange x{[&](const nlmsghdr* m) {
        if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWTABLE) return;
        NlPtr<nftnl_table> got(nftnl_table_alloc());
        if (got && nftnl_table_nlmsg_parse(m, got.get()) == 0) {
            live.exists = true;
            live.flags = nftnl_table_get_u32(got.get(), NFTNL_TABLE_FLAGS);
            live.handle = nftnl_table_is_set(got.get(), NFTNL_TABLE_HANDLE) ? nftnl_table_get_u64(got.get(), NFTNL_TABLE_HANDLE) : 0;
        }
    }};
    Status s = request(nl_.get(), portid_, nlh, "read table inet " + table, x);
    if (!s && s.error().code != ENOENT) return s.error();
    return Status::ok();
}

namespace {

// This boot's id (/proc/sys/kernel/random/boot_id); empty when it cannot be read.
const std::string& boot_id() {
    static const std::string id = [] {
        std::ifstream in("/proc/sys/kernel/random/boot_id");
        std::string line;
        std::getline(in, line);
        return line.size() == 36 ? line : std::string();
    }();
    return id;
}

}  // namespace

std::string Nft::generation_of(const NftTableLive& live) const {
    if (!netns_ || boot_id().empty()) return {};
    return fmt::format("{} {} {} {}", boot_id(), netns_, live.genid, live.exists ? std::to_string(live.handle) : std::string("-"));
}

Result<NftTableLive> Nft::read_table_once(bool* consistent) {
    const std::string table = backend::kNftTable;
    NftTableLive live;
    auto gen = read_genid();
    if (!gen) return gen.error();
    live.genid = *gen;
    bool interrupted = false;

    if (auto s = read_table_head(live); !s) return s.error();

    if (live.exists) {
        char buf[512] = {};
        nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_DUMP, next_seq());
        Exchange x{[&](const nlmsghdr* m) {
            if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWCHAIN) return;
            NlPtr<nftnl_chain> owner(nftnl_chain_alloc());
            nftnl_chain* c = owner.get();
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
        }};
        if (auto s = request(nl_.get(), portid_, nlh, "list chains of table inet " + table, x); !s) return s.error();
        interrupted |= x.interrupted;
    }

    if (live.exists) {
        char buf[512] = {};
        NlPtr<nftnl_set> s(nftnl_set_alloc());
        if (!s) throw std::bad_alloc();
        nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
        nlmsghdr* nlh = nftnl_set_nlmsg_build_hdr(buf, NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP, next_seq());
        nftnl_set_nlmsg_build_payload(nlh, s.get());
        Exchange x{[&](const nlmsghdr* m) {
            if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWSET) return;
            NlPtr<nftnl_set> owner(nftnl_set_alloc());
            nftnl_set* got = owner.get();
            // Anonymous sets belong to the rule that uses them and go away with it.
            if (!got || nftnl_set_nlmsg_parse(m, got) != 0 || table != or_empty(nftnl_set_get_str(got, NFTNL_SET_TABLE)) ||
                (nftnl_set_get_u32(got, NFTNL_SET_FLAGS) & NFT_SET_ANONYMOUS))
                return;
            NftSetLive sl{.name = or_empty(nftnl_set_get_str(got, NFTNL_SET_NAME)),
                          .flags = nftnl_set_get_u32(got, NFTNL_SET_FLAGS),
                          .key_type = nftnl_set_get_u32(got, NFTNL_SET_KEY_TYPE),
                          .key_len = nftnl_set_get_u32(got, NFTNL_SET_KEY_LEN),
                          .data_type = nftnl_set_get_u32(got, NFTNL_SET_DATA_TYPE),
                          .data_len = nftnl_set_get_u32(got, NFTNL_SET_DATA_LEN),
                          .extra = false};
            for (uint16_t attr : {NFTNL_SET_TIMEOUT, NFTNL_SET_GC_INTERVAL, NFTNL_SET_DESC_SIZE, NFTNL_SET_OBJ_TYPE, NFTNL_SET_DESC_CONCAT,
                                  NFTNL_SET_EXPR, NFTNL_SET_EXPRESSIONS})
                sl.extra |= nftnl_set_is_set(got, attr);
            live.sets.push_back(std::move(sl));
        }};
        Status st = request(nl_.get(), portid_, nlh, "list sets of table inet " + table, x);
        // ENOENT: the table went away since it was read; the generation check below notices.
        if (!st && st.error().code != ENOENT) return st.error();
        interrupted |= x.interrupted;
    }

    // The elements of our maps only: another set is deleted whole, whatever it holds.
    for (const auto& set : live.sets) {
        if (!nft::set_ours(set)) continue;
        char buf[512] = {};
        NlPtr<nftnl_set> s(nftnl_set_alloc());
        if (!s) throw std::bad_alloc();
        nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, table.c_str());
        nftnl_set_set_str(s.get(), NFTNL_SET_NAME, set.name.c_str());
        nlmsghdr* nlh = nftnl_set_elem_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, next_seq());
        nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
        Exchange x{[&](const nlmsghdr* m) {
            for (auto& e : nft::parse_elem_message(m, table, set.name)) live.elements.push_back(std::move(e));
        }};
        Status st = request(nl_.get(), portid_, nlh, fmt::format("list elements of map inet {} {}", table, set.name), x);
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
        Status st = request(nl_.get(), portid_, nlh, "list rules of table inet " + table, x);
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

namespace {

// The families whose input and forward hooks see the fleet's routed traffic.
const char* family_name(uint32_t family) {
    switch (family) {
        case NFPROTO_IPV4: return "ip";
        case NFPROTO_IPV6: return "ip6";
        case NFPROTO_INET: return "inet";
        default: return nullptr;
    }
}

// The iptables-legacy tables this network namespace has loaded: their rules live outside
// nftables, where no nftables read sees them.
std::vector<std::string> legacy_tables() {
    std::vector<std::string> out;
    for (const auto& [file, family] : {std::pair{"/proc/net/ip_tables_names", "ip"}, std::pair{"/proc/net/ip6_tables_names", "ip6"}}) {
        std::ifstream in(file);
        std::string name;
        while (in >> name) out.push_back(fmt::format("{} {}", family, name));
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

Result<std::vector<model::ForeignDrop>> Nft::read_foreign_drops() {
    char buf[512] = {};
    nlmsghdr* nlh = nftnl_chain_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN, NFPROTO_UNSPEC, NLM_F_DUMP, next_seq());
    std::vector<model::ForeignDrop> out;
    Exchange x{[&](const nlmsghdr* m) {
        if (NFNL_MSG_TYPE(m->nlmsg_type) != NFT_MSG_NEWCHAIN) return;
        NlPtr<nftnl_chain> owner(nftnl_chain_alloc());
        nftnl_chain* c = owner.get();
        if (!c || nftnl_chain_nlmsg_parse(m, c) != 0 || !nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) ||
            !nftnl_chain_is_set(c, NFTNL_CHAIN_POLICY) || nftnl_chain_get_u32(c, NFTNL_CHAIN_POLICY) != NF_DROP)
            return;
        const uint32_t family = nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY);
        const char* fam = family_name(family);
        const std::string table = or_empty(nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE));
        if (!fam || (family == NFPROTO_INET && table == backend::kNftTable)) return;
        const uint32_t hook = nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
        if (hook != NF_INET_LOCAL_IN && hook != NF_INET_FORWARD) return;
        out.push_back(model::ForeignDrop{.family = fam,
                                         .table = table,
                                         .chain = or_empty(nftnl_chain_get_str(c, NFTNL_CHAIN_NAME)),
                                         .hook = hook == NF_INET_LOCAL_IN ? "input" : "forward",
                                         .priority = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO)});
    }};
    if (auto st = request(nl_.get(), portid_, nlh, "list the chains of every nftables table", x); !st) return st.error();
    std::sort(out.begin(), out.end());
    return out;
}

namespace {

// The snapshot of the last read() and its view (without the rules read() handed out: apply
// compares with the live rules and elements the view points to), for the next apply() in the
// same network namespace. One per process: a run may read through one Nft and apply through
// another (apply's guessed read ahead of the file). The kernel's generation check makes a stale
// one harmless. Moving it keeps its vectors' buffers, so the view's pointers stay valid.
struct Snapshot {
    uint64_t netns = 0;
    NftTableLive table;
    nft::View view;
};
std::mutex snapshot_mutex;
std::optional<Snapshot> last_snapshot;

// What the last apply() changed when its batch changed map elements only, for the next read()
// in the same network namespace (under snapshot_mutex, like the snapshot). The batch was
// committed against the generation of a whole read (the kernel refuses it otherwise), so while
// the generation is the one that commit made, the table is that read with these elements
// changed: read() then reads back only them (each added element as it is now, each deleted key
// absent) instead of dumping every element again.
struct Applied {
    uint64_t netns = 0;
    uint32_t genid = 0;                                        // the generation the commit made
    NftTableLive table;                                        // the read the batch was made from, with its element changes
    std::vector<std::pair<std::string, std::string>> deleted;  // (map, key): gone
    std::vector<NftElemLive> added;                            // as the kernel holds them now
};
std::optional<Applied> last_applied;

// Takes what `slot` (last_snapshot or last_applied) holds for network namespace `netns`, under
// snapshot_mutex; the slot is emptied either way, so each is used once.
template <class T>
std::optional<T> take_for(std::optional<T>& slot, uint64_t netns) {
    std::lock_guard lock(snapshot_mutex);
    std::optional<T> out = std::exchange(slot, std::nullopt);
    if (out && (!netns || out->netns != netns)) out.reset();
    return out;
}

// At most this many changed elements are read back one by one; more are read with the table.
constexpr size_t kMaxReadBack = 256;

// The generation a commit on top of `genid` makes (the kernel skips 0).
uint32_t next_genid(uint32_t genid) { return genid + 1 == 0 ? 1 : genid + 1; }

// Keeps `table` (the read a batch of element changes was made from) with those changes made,
// for the next read() in network namespace `netns`. Nothing when there are too many to read
// back one by one.
template <class Change>
void remember_applied(NftTableLive table, const Change& changed, uint64_t netns) {
    size_t count = 0;
    for (const auto& [map, keys] : changed.deleted) count += keys.size();
    for (const auto& [map, list] : changed.added) count += list.size();
    if (count == 0 || count > kMaxReadBack) return;
    Applied a{.netns = netns, .genid = next_genid(table.genid), .table = {}, .deleted = {}, .added = {}};
    for (const auto& [map, list] : changed.added)
        for (const FwRule& r : list) {
            FwRule decoded = r;
            decoded.id.clear();
            a.added.push_back(NftElemLive{.set = map, .key = nft::dnat_key(r), .comment = r.id, .decoded = std::move(decoded)});
        }
    // The elements deleted and those an added one replaces (the same key) leave the table; a key
    // deleted and added again is read back as added.
    std::set<std::pair<std::string, std::string>> gone;
    for (const auto& e : a.added) gone.emplace(e.set, e.key);
    for (const auto& [map, keys] : changed.deleted)
        for (const auto& k : keys)
            if (gone.emplace(map, k).second) a.deleted.emplace_back(map, k);
    std::erase_if(table.elements, [&](const NftElemLive& e) { return gone.count(std::pair{e.set, e.key}) > 0; });
    table.elements.insert(table.elements.end(), a.added.begin(), a.added.end());
    table.genid = a.genid;
    a.table = std::move(table);
    std::lock_guard lock(snapshot_mutex);
    last_applied = std::move(a);
}

// The family of a ForeignDrop's name; 0 for one read_foreign_drops never reports.
uint16_t family_number(const std::string& name) {
    if (name == "ip") return NFPROTO_IPV4;
    if (name == "ip6") return NFPROTO_IPV6;
    if (name == "inet") return NFPROTO_INET;
    return 0;
}

}  // namespace

Result<std::map<std::string, model::ForeignRule>> Nft::read_foreign_rules() {
    char buf[512] = {};
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_UNSPEC, NLM_F_DUMP, next_seq());
    std::map<std::string, model::ForeignRule> out;
    Exchange x{[&](const nlmsghdr* m) {
        auto rl = nft::parse_foreign_rule_message(m, backend::kNftTable);
        const char* fam = rl ? family_name(rl->family) : nullptr;
        if (!fam) return;
        model::ForeignRule r{.family = fam, .table = rl->table, .chain = rl->chain, .id = rl->id, .as_built = rl->as_built};
        // Two rules with one comment: the next apply deletes both and inserts one.
        auto [it, fresh] = out.emplace(r.key(), r);
        if (!fresh) it->second.as_built = false;
    }};
    if (auto st = request(nl_.get(), portid_, nlh, "list the rules of every nftables table", x); !st) return st.error();
    return out;
}

Result<std::vector<nft::ForeignRuleLive>> Nft::read_foreign_chain(const model::ForeignRule& where) {
    char buf[1024] = {};
    NlPtr<nftnl_rule> filter(nftnl_rule_alloc());
    if (!filter) throw std::bad_alloc();
    nftnl_rule_set_str(filter.get(), NFTNL_RULE_TABLE, where.table.c_str());
    nftnl_rule_set_str(filter.get(), NFTNL_RULE_CHAIN, where.chain.c_str());
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, family_number(where.family), NLM_F_DUMP, next_seq());
    nftnl_rule_nlmsg_build_payload(nlh, filter.get());
    std::vector<nft::ForeignRuleLive> out;
    Exchange x{[&](const nlmsghdr* m) {
        if (auto rl = nft::parse_foreign_rule_message(m, backend::kNftTable); rl && rl->table == where.table && rl->chain == where.chain)
            out.push_back(std::move(*rl));
    }};
    Status st = request(nl_.get(), portid_, nlh, fmt::format("list rules of chain {} {} {}", where.family, where.table, where.chain), x);
    if (!st && st.error().code != ENOENT) return st.error();
    return out;
}

Status Nft::add_foreign(const model::ForeignRule& r) {
    if (open_error_) return *open_error_;
    const uint16_t family = family_number(r.family);
    nft::RulePtr rule = family ? nft::build_foreign_rule(r, family) : nullptr;
    if (!rule) return Error{EINVAL, fmt::format("rule '{}' in table {} {}: not a rule wg-fleet builds", r.id, r.family, r.table)};
    Batch b(seq_);
    b.marker(NFNL_MSG_BATCH_BEGIN, 0);
    // Without NLM_F_APPEND (and without a position) the kernel inserts the rule at the head of
    // the chain, before the rules that would drop the traffic.
    nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), NFT_MSG_NEWRULE, family, NLM_F_CREATE, b.seq());
    nftnl_rule_nlmsg_build_payload(nlh, rule.get());
    b.add(nlh, fmt::format("insert rule '{}{}' into chain {} {} {}", model::kForeignRuleMark, r.id, r.family, r.table, r.chain));
    uint32_t ack_seq = b.ack_last();
    b.marker(NFNL_MSG_BATCH_END, 0);
    return send_batch(b.buf, b.what, ack_seq);
}

Status Nft::remove_foreign(const model::ForeignRule& r) {
    if (open_error_) return *open_error_;
    const uint16_t family = family_number(r.family);
    if (!family) return Status::ok();
    auto live = read_foreign_chain(r);
    if (!live) return live.error();
    Batch b(seq_);
    b.marker(NFNL_MSG_BATCH_BEGIN, 0);
    for (const auto& rl : *live) {
        if (rl.id != r.id) continue;  // only the rules carrying this comment
        NlPtr<nftnl_rule> del(nftnl_rule_alloc());
        if (!del) throw std::bad_alloc();
        nftnl_rule_set_str(del.get(), NFTNL_RULE_TABLE, r.table.c_str());
        nftnl_rule_set_str(del.get(), NFTNL_RULE_CHAIN, r.chain.c_str());
        nftnl_rule_set_u64(del.get(), NFTNL_RULE_HANDLE, rl.handle);
        nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(reinterpret_cast<char*>(b.start()), NFT_MSG_DELRULE, family, 0, b.seq());
        nftnl_rule_nlmsg_build_payload(nlh, del.get());
        b.add(nlh, fmt::format("delete rule '{}{}' (handle {}) from chain {} {} {}", model::kForeignRuleMark, r.id, rl.handle, r.family,
                               r.table, r.chain));
    }
    if (b.count() == 1) return Status::ok();  // none there
    uint32_t ack_seq = b.ack_last();
    b.marker(NFNL_MSG_BATCH_END, 0);
    return send_batch(b.buf, b.what, ack_seq);
}

Result<std::optional<NftTableLive>> Nft::read_back_applied() {
    std::optional<Applied> a = take_for(last_applied, netns_);
    if (!a) return std::optional<NftTableLive>();
    auto gen = read_genid();
    if (!gen) return gen.error();
    if (*gen != a->genid) return std::optional<NftTableLive>();  // another commit since: read it all
    const std::string table = backend::kNftTable;
    // One request per map for the added elements (the kernel answers each with the element as
    // it holds it), one per deleted key (the kernel answers ENOENT when it is gone).
    std::map<std::string, std::vector<const NftElemLive*>> added;
    for (const auto& e : a->added) added[e.set].push_back(&e);
    auto get = [&](const std::string& map, const std::vector<const std::string*>& keys, std::vector<NftElemLive>& got) -> Status {
        std::vector<char> buf(8192 + keys.size() * 64);
        nft::SetPtr s = nft::build_dnat_keys(*nft::dnat_map_spec(map), keys);
        nlmsghdr* nlh = nftnl_set_elem_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_ACK, next_seq());
        nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
        Exchange x{[&](const nlmsghdr* m) {
            for (auto& e : nft::parse_elem_message(m, table, map)) got.push_back(std::move(e));
        }};
        return request(nl_.get(), portid_, nlh, fmt::format("read back elements of map inet {} {}", table, map), x);
    };
    auto same = [](const NftElemLive& x, const NftElemLive& y) {
        return x.set == y.set && x.key == y.key && x.comment == y.comment && x.decoded == y.decoded;
    };
    for (const auto& [map, want] : added) {
        std::vector<const std::string*> keys;
        for (const NftElemLive* e : want) keys.push_back(&e->key);
        std::vector<NftElemLive> got;
        // One missing (ENOENT), or a kernel that does not answer a get of single elements: read it all.
        if (!get(map, keys, got) || got.size() != want.size()) return std::optional<NftTableLive>();
        for (size_t i = 0; i < got.size(); ++i)
            if (!same(got[i], *want[i])) return std::optional<NftTableLive>();
    }
    for (const auto& [map, key] : a->deleted) {
        std::vector<NftElemLive> got;
        Status st = get(map, {&key}, got);
        if (st || st.error().code != ENOENT) return std::optional<NftTableLive>();  // still there, or unreadable: read it all
    }
    // Nothing committed while the elements were read back.
    auto gen2 = read_genid();
    if (!gen2) return gen2.error();
    if (*gen2 != a->genid) return std::optional<NftTableLive>();
    last_read_back_ = a->added.size() + a->deleted.size();
    return std::optional<NftTableLive>(std::move(a->table));
}

Status Nft::read_foreign(backend::FirewallLive& out) {
    auto foreign = read_foreign_drops();
    if (!foreign) return foreign.error();
    auto marked = read_foreign_rules();
    if (!marked) return marked.error();
    out.foreign_drops = std::move(*foreign);
    out.legacy_tables = legacy_tables();
    out.foreign_rules = std::move(*marked);
    return Status::ok();
}

Result<std::string> Nft::current_generation() {
    // The generation, the table's handle, and the generation again: nothing committed between.
    NftTableLive head;
    auto gen = read_genid();
    if (!gen) return gen.error();
    head.genid = *gen;
    if (auto s = read_table_head(head); !s) return s.error();
    auto gen2 = read_genid();
    if (!gen2) return gen2.error();
    if (*gen2 != *gen) return std::string();
    return generation_of(head);
}

Result<std::optional<NftTableLive>> Nft::snapshot_unchanged() {
    std::optional<Snapshot> snap = take_for(last_snapshot, netns_);
    if (!snap) return std::optional<NftTableLive>();
    const std::string then = generation_of(snap->table);
    auto now = current_generation();
    if (!now) return now.error();
    if (then.empty() || *now != then) return std::optional<NftTableLive>();
    return std::optional<NftTableLive>(std::move(snap->table));
}

Result<backend::FirewallLive> Nft::read_if_changed(const std::string& generation) {
    if (open_error_) return *open_error_;
    if (generation.empty()) return read();
    auto now = current_generation();
    if (!now) return now.error();
    if (now->empty() || *now != generation) return read();
    last_read_back_ = 0;
    last_read_kept_ = false;
    backend::FirewallLive out;
    out.generation = std::move(*now);
    out.table_unchanged = true;
    if (auto s = read_foreign(out); !s) return s.error();
    return out;
}

Result<backend::FirewallLive> Nft::read() {
    last_read_back_ = 0;
    last_read_kept_ = false;
    auto back = read_back_applied();
    if (!back) return back.error();
    if (!*back) {
        // Not after an apply: the last read's table, while nothing committed since it was read.
        back = snapshot_unchanged();
        if (!back) return back.error();
        last_read_kept_ = back->has_value();
    }
    auto live = *back ? Result<NftTableLive>(std::move(**back)) : read_table();
    if (!live) return live.error();
    backend::FirewallLive out;
    if (auto s = read_foreign(out); !s) return s.error();
    out.generation = generation_of(*live);
    Snapshot snap{.netns = netns_, .table = std::move(*live), .view = {}};
    snap.view = nft::view(snap.table);
    out.rules = std::move(snap.view.rules);
    out.damage = snap.view.damage;
    snap.view.rules.clear();
    std::lock_guard lock(snapshot_mutex);
    if (netns_) last_snapshot = std::move(snap);
    else last_snapshot.reset();
    return out;
}

Status Nft::send_batch(std::vector<char>& buf, const std::vector<std::pair<uint32_t, std::string>>& what, uint32_t ack_seq) {
    int fd = mnl_socket_get_fd(nl_.get());
    // The whole batch must fit in one message: the kernel only commits what arrives together.
    int need = static_cast<int>(buf.size()) + (1 << 16);
    int have = 0;
    socklen_t len = sizeof have;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have < need &&
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &need, sizeof need) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &need, sizeof need);
    if (mnl_socket_sendto(nl_.get(), buf.data(), buf.size()) < 0)
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

Status Nft::apply_once(const backend::FirewallChange& change, const NftTableLive& live, const nft::View& v, ElemChange& changed) {
    std::set<std::string> flush = nft::chains_to_recreate(live);

    // Rules that go: those the change removes, those an add replaces, and every damaged rule.
    // Rules in chains that are flushed go with their chain.
    std::vector<const NftRuleLive*> del;
    std::set<uint64_t> deleting;
    auto delete_rule = [&](const NftRuleLive* r) {
        if (r && !flush.count(r->chain) && deleting.insert(r->handle).second) del.push_back(r);
    };
    // Elements that go, by map and key, in the same way; those of a map deleted go with it.
    std::map<std::string, std::set<std::string>> del_keys;
    auto delete_elem = [&](const NftElemLive* e) {
        if (e && !v.bad_sets.count(e->set)) del_keys[e->set].insert(e->key);
    };
    auto elem_deleted = [&](const NftElemLive* e) {
        auto it = del_keys.find(e->set);
        return it != del_keys.end() && it->second.count(e->key);
    };
    for (const auto& id : change.remove) {
        if (auto it = v.source.find(id); it != v.source.end()) delete_rule(it->second);
        if (auto it = v.elem_source.find(id); it != v.elem_source.end()) delete_elem(it->second);
    }
    for (const NftRuleLive* r : v.damaged_rules) delete_rule(r);
    for (const NftElemLive* e : v.damaged_elements) delete_elem(e);
    // The live elements holding the keys of added forwards: an added forward takes its key from
    // whatever holds it. One pass over the elements, looking up the (few) keys added.
    std::map<std::pair<std::string, std::string>, const NftElemLive*> by_key;
    for (const auto& r : change.add)
        if (r.kind == model::FwKind::dnat && r.to) by_key.emplace(std::pair{nft::dnat_map_for(r).name, nft::dnat_key(r)}, nullptr);
    if (!by_key.empty())
        for (const auto& e : live.elements)
            if (auto k = by_key.find(std::pair{e.set, e.key}); k != by_key.end() && !v.bad_sets.count(e.set)) k->second = &e;

    // A live rule or element (decoded, without its id) is the canonical desired one c.
    auto same = [](FwRule live_rule, const FwRule& c) {
        live_rule.id = c.id;
        return live_rule == c;
    };
    std::vector<FwRule> adds;
    std::map<std::string, std::vector<FwRule>> forwards;  // by map
    std::set<std::string> add_ids;
    std::set<std::pair<std::string, std::string>> add_keys;
    for (const auto& r : change.add) {
        if (auto s = nft::check_rule(r); !s) return s;
        if (!add_ids.insert(r.id).second) return Error{EINVAL, fmt::format("firewall change adds rule '{}' twice", r.id)};
        FwRule c = nft::canonical(r);
        auto rule = v.source.find(r.id);
        auto elem = v.elem_source.find(r.id);
        if (c.kind == model::FwKind::dnat) {
            const nft::DnatMapSpec& m = nft::dnat_map_for(c);
            std::string key = nft::dnat_key(c);
            if (!add_keys.insert({m.name, key}).second)
                return Error{EINVAL, fmt::format("firewall change adds two forwards of {} port {} to map {} ('{}' is the second)",
                                                 model::to_string(c.proto), c.port, m.name, c.id)};
            if (rule != v.source.end()) delete_rule(rule->second);
            if (elem != v.elem_source.end()) {
                if (!elem_deleted(elem->second) && same(*elem->second->decoded, c)) continue;  // already there as it should be
                delete_elem(elem->second);
            }
            if (auto k = by_key.find({m.name, key}); k != by_key.end()) delete_elem(k->second);
            forwards[m.name].push_back(std::move(c));
            continue;
        }
        if (elem != v.elem_source.end()) delete_elem(elem->second);
        if (rule != v.source.end() && rule->second) {
            bool kept = !deleting.count(rule->second->handle) && !flush.count(rule->second->chain);
            if (kept && same(rule->second->decoded.rule, c)) continue;  // already there as it should be
            delete_rule(rule->second);
        }
        adds.push_back(std::move(c));
    }
    // By id, so a table rebuilt from scratch lists the same whatever order the change had.
    auto by_id = [](const FwRule& a, const FwRule& b) { return a.id < b.id; };
    std::sort(adds.begin(), adds.end(), by_id);
    for (auto& [name, list] : forwards) std::sort(list.begin(), list.end(), by_id);

    using What = model::FwDamage::What;
    const bool skeleton_ok = live.exists && std::all_of(v.damage.begin(), v.damage.end(), [](const model::FwDamage& d) {
                                 return d.what == What::rule || d.what == What::element;
                             });
    const bool nothing_else = del.empty() && del_keys.empty() && adds.empty() && forwards.empty();
    if (skeleton_ok && nothing_else) return Status::ok();
    if (!live.exists && adds.empty() && forwards.empty()) return Status::ok();  // no table and nothing to put in it
    const bool established_damaged = std::any_of(v.damage.begin(), v.damage.end(),
                                                 [](const model::FwDamage& d) { return d.what == What::established; });
    bool add_established = !live.exists || established_damaged || flush.count("forward");
    std::set<std::string> new_maps = v.missing_maps, new_map_rules = v.missing_map_rules;
    for (const auto& m : nft::dnat_maps())
        if (!live.exists || flush.count("prerouting")) {
            if (!live.exists) new_maps.insert(m.name);
            new_map_rules.insert(m.name);
        }

    // A change of elements alone needs nothing else: the generation check stands for the
    // table and its skeleton being as read.
    Batch b(seq_);
    b.marker(NFNL_MSG_BATCH_BEGIN, live.genid);
    if (!skeleton_ok) add_table_msg(b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
    for (const NftRuleLive* r : del) add_delrule_msg(b, r->chain, r->handle);
    for (const auto& c : flush) add_delrule_msg(b, c, 0);
    for (const auto& [name, keys] : del_keys) del_key_msgs(b, *nft::dnat_map_spec(name), keys);
    for (const auto& s : v.bad_sets) add_delset_msg(b, s);
    for (const auto& c : flush) add_chain_msg(b, NFT_MSG_DELCHAIN, c);
    if (!skeleton_ok)
        for (const auto& s : nft::base_chains()) add_chain_msg(b, NFT_MSG_NEWCHAIN, s.name);
    for (const auto& m : nft::dnat_maps())
        if (new_maps.count(m.name)) add_newset_msg(b, m);
    if (add_established) {
        // Not appended: at the head of forward, ahead of every per-interface rule.
        nft::RulePtr r = nft::build_established_rule();
        add_newrule_msg(b, r.get(), false, "add the ct state established,related rule to chain forward");
    }
    for (const auto& m : nft::dnat_maps())
        if (new_map_rules.count(m.name)) {
            nft::RulePtr r = nft::build_dnat_map_rule(m);
            add_newrule_msg(b, r.get(), true, fmt::format("add the dnat rule of map {} to chain prerouting", m.name));
        }
    for (const auto& a : adds) {
        nft::RulePtr r = nft::build_rule(a);
        add_newrule_msg(b, r.get(), true, describe(a));
    }
    for (const auto& [name, list] : forwards) add_forward_msgs(b, *nft::dnat_map_spec(name), list);
    uint32_t ack_seq = b.ack_last();
    b.marker(NFNL_MSG_BATCH_END, 0);
    last_batch_.clear();
    for (const auto& [seq, what] : b.what) last_batch_.push_back(what);
    Status sent = send_batch(b.buf, b.what, ack_seq);
    if (sent && skeleton_ok && del.empty() && adds.empty() && flush.empty() && v.bad_sets.empty() && !add_established && new_maps.empty() &&
        new_map_rules.empty())
        changed = ElemChange{.only_elements = true, .deleted = std::move(del_keys), .added = std::move(forwards)};
    return sent;
}

Status Nft::apply(const backend::FirewallChange& change) {
    if (open_error_) return *open_error_;
    {
        std::lock_guard lock(snapshot_mutex);
        last_applied.reset();
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
        std::optional<NftTableLive> live;
        std::optional<nft::View> view;
        if (attempt == 0)
            if (auto snap = take_for(last_snapshot, netns_)) {
                live = std::move(snap->table);
                view = std::move(snap->view);
            }
        if (!live || attempt > 0) {
            auto fresh = read_table();
            if (!fresh) return fresh.error();
            live = std::move(*fresh);
            view = nft::view(*live);
        }
        ElemChange changed;
        Status s = apply_once(change, *live, *view, changed);
        // ERESTART: the ruleset changed after the snapshot was taken; handles may be stale.
        if (!s && s.error().code == ERESTART) continue;
        if (s && changed.only_elements && netns_ && live->genid) remember_applied(std::move(*live), changed, netns_);
        return s;
    }
    return errno_error(ERESTART, fmt::format("apply change to table inet {}: the ruleset kept changing", backend::kNftTable));
}

Status Nft::remove_all() {
    if (open_error_) return *open_error_;
    {
        std::lock_guard lock(snapshot_mutex);
        last_snapshot.reset();
        last_applied.reset();
    }
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
