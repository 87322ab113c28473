// Writes the seed corpora of the netlink fuzzers (corpus-genl/, corpus-nft/) from real messages:
// GET_DEVICE dump replies laid out as the kernel sends them and as build_set_device() chunks a
// large peer, and every kind of rule nft::build_rule() makes, serialized as NFT_MSG_NEWRULE, with
// the DNAT maps' rules and elements (NFT_MSG_NEWSETELEM).
// Run by hand when the message layouts change: fuzz_make_seeds <tests/fuzz>.
#include <netinet/in.h>
#include <sys/socket.h>

#include <linux/genetlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/time_types.h>

#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "linux/nft_codec.hpp"
#include "linux/wg_genl_msg.hpp"

using namespace wgf;
using linux_::NlMsgPtr;

namespace {

constexpr int kFamily = 0x1d;

model::Key key_of(uint8_t seed) {
    model::Key k;
    for (size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<uint8_t>(seed * 7 + i);
    return k;
}

void write(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::printf("%s (%zu bytes)\n", path.c_str(), bytes.size());
}

void append(std::vector<char>& out, const nlmsghdr* nlh) {
    const char* p = reinterpret_cast<const char*>(nlh);
    out.insert(out.end(), p, p + NLMSG_ALIGN(nlh->nlmsg_len));
}

// One GET_DEVICE reply as the kernel lays it out (device attributes in the first message only).
NlMsgPtr dump_reply(bool first, bool private_only, const std::vector<std::pair<model::Key, int>>& peers) {
    NlMsgPtr msg{nlmsg_alloc_size(65536)};
    genlmsg_put(msg.get(), 1234, 9, kFamily, 0, NLM_F_MULTI, WG_CMD_GET_DEVICE, WG_GENL_VERSION);
    nla_put_u32(msg.get(), WGDEVICE_A_IFINDEX, 7);
    nla_put_string(msg.get(), WGDEVICE_A_IFNAME, "wg-mesh");
    if (first) {
        uint8_t secret[32];
        for (int i = 0; i < 32; ++i) secret[i] = static_cast<uint8_t>(0xa0 + i);  // a test pattern, no one's key
        nla_put(msg.get(), WGDEVICE_A_PRIVATE_KEY, 32, secret);
        if (!private_only) nla_put(msg.get(), WGDEVICE_A_PUBLIC_KEY, 32, key_of(0).bytes.data());
        nla_put_u16(msg.get(), WGDEVICE_A_LISTEN_PORT, 51820);
        nla_put_u32(msg.get(), WGDEVICE_A_FWMARK, 0x57);
    }
    nlattr* list = nla_nest_start(msg.get(), NLA_F_NESTED | WGDEVICE_A_PEERS);
    for (const auto& [key, n] : peers) {
        nlattr* peer = nla_nest_start(msg.get(), NLA_F_NESTED);
        nla_put(msg.get(), WGPEER_A_PUBLIC_KEY, 32, key.bytes.data());
        uint8_t psk[32] = {};
        nla_put(msg.get(), WGPEER_A_PRESHARED_KEY, 32, psk);
        __kernel_timespec ts{1700000000, 5};
        nla_put(msg.get(), WGPEER_A_LAST_HANDSHAKE_TIME, sizeof ts, &ts);
        nla_put_u16(msg.get(), WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25);
        nla_put_u64(msg.get(), WGPEER_A_RX_BYTES, 1000);
        nla_put_u64(msg.get(), WGPEER_A_TX_BYTES, 2000);
        nla_put_u32(msg.get(), WGPEER_A_PROTOCOL_VERSION, 1);
        if (key.bytes[0] & 1) {
            sockaddr_in6 sa{};
            sa.sin6_family = AF_INET6;
            sa.sin6_port = htons(51820);
            sa.sin6_addr.s6_addr[0] = 0x20;
            sa.sin6_addr.s6_addr[1] = 0x01;
            sa.sin6_addr.s6_addr[15] = key.bytes[0];
            nla_put(msg.get(), WGPEER_A_ENDPOINT, sizeof sa, &sa);
        } else {
            sockaddr_in sa{};
            sa.sin_family = AF_INET;
            sa.sin_port = htons(51821);
            sa.sin_addr.s_addr = htonl(0xc0000200u | key.bytes[0]);
            nla_put(msg.get(), WGPEER_A_ENDPOINT, sizeof sa, &sa);
        }
        nlattr* ips = nla_nest_start(msg.get(), NLA_F_NESTED | WGPEER_A_ALLOWEDIPS);
        for (int i = 0; i < n; ++i) {
            nlattr* e = nla_nest_start(msg.get(), NLA_F_NESTED);
            if (i % 2) {
                uint8_t a6[16] = {0xfd, 0, 0, 1};
                a6[15] = static_cast<uint8_t>(i);
                nla_put_u16(msg.get(), WGALLOWEDIP_A_FAMILY, AF_INET6);
                nla_put(msg.get(), WGALLOWEDIP_A_IPADDR, 16, a6);
                nla_put_u8(msg.get(), WGALLOWEDIP_A_CIDR_MASK, 128);
            } else {
                uint8_t a4[4] = {10, 0, static_cast<uint8_t>(i), 0};
                nla_put_u16(msg.get(), WGALLOWEDIP_A_FAMILY, AF_INET);
                nla_put(msg.get(), WGALLOWEDIP_A_IPADDR, 4, a4);
                nla_put_u8(msg.get(), WGALLOWEDIP_A_CIDR_MASK, 24);
            }
            nla_nest_end(msg.get(), e);
        }
        nla_nest_end(msg.get(), ips);
        nla_nest_end(msg.get(), peer);
    }
    nla_nest_end(msg.get(), list);
    return msg;
}

void genl_seeds(const std::string& dir) {
    {
        std::vector<char> out;
        append(out, nlmsg_hdr(dump_reply(true, false, {}).get()));
        write(dir + "/empty-device", out);
    }
    {
        std::vector<char> out;
        append(out, nlmsg_hdr(dump_reply(true, false, {{key_of(1), 3}, {key_of(2), 1}, {key_of(3), 0}}).get()));
        write(dir + "/three-peers", out);
    }
    {
        // The kernel continues a peer whose allowed IPs did not fit in the next message.
        std::vector<char> out;
        append(out, nlmsg_hdr(dump_reply(true, true, {{key_of(1), 2}, {key_of(2), 4}}).get()));
        append(out, nlmsg_hdr(dump_reply(false, false, {{key_of(2), 3}, {key_of(4), 1}}).get()));
        write(dir + "/continued-peer-private-key-only", out);
    }
    {
        // The SET and GET layouts agree: a chunked SET read back as a dump.
        backend::WgDeviceChange c;
        c.ifname = "wg0";
        backend::WgPeerChange p;
        p.public_key = key_of(9);
        p.endpoint = model::Endpoint{"2001:db8::9", 9};
        p.keepalive = 9;
        for (int i = 0; i < 300; ++i) p.allowed_ips.push_back(*model::Prefix::parse("fd00:9:" + std::to_string(i) + "::/64"));
        c.peers = {p};
        auto msgs = linux_::build_set_device(c, kFamily, 1024);
        std::vector<char> out;
        for (auto& m : *msgs) {
            static_cast<genlmsghdr*>(nlmsg_data(nlmsg_hdr(m.get())))->cmd = WG_CMD_GET_DEVICE;
            append(out, nlmsg_hdr(m.get()));
        }
        write(dir + "/chunked-set-as-dump", out);
    }
}

void nft_seeds(const std::string& dir) {
    using model::FwKind;
    using model::FwRule;
    std::vector<FwRule> rules;
    FwRule a;
    a.id = "udp:51820";
    a.kind = FwKind::accept_udp;
    a.port = 51820;
    rules.push_back(a);
    FwRule f;
    f.id = "forward:wg-mesh:eth0";
    f.kind = FwKind::forward;
    f.iif = "wg-mesh";
    f.oif = "eth0";
    rules.push_back(f);
    FwRule d4;
    d4.id = "dnat:tcp:8080";
    d4.kind = FwKind::dnat;
    d4.proto = model::Proto::tcp;
    d4.port = 8080;
    d4.to = model::IpAddr::parse("10.0.0.2");
    d4.to_port = 80;
    rules.push_back(d4);
    FwRule d6 = d4;
    d6.id = "dnat:udp:5353";
    d6.proto = model::Proto::udp;
    d6.port = 5353;
    d6.to = model::IpAddr::parse("fd00::53");
    d6.to_port = 53;
    rules.push_back(d6);
    FwRule m;
    m.id = "masquerade:eth0";
    m.kind = FwKind::masquerade;
    m.oif = "eth0";
    rules.push_back(m);

    std::vector<char> all;
    auto serialize = [](const nftnl_rule* r, uint64_t handle, std::vector<char>& out) {
        std::vector<char> buf(16384);
        nftnl_rule_set_u64(const_cast<nftnl_rule*>(r), NFTNL_RULE_HANDLE, handle);
        nlmsghdr* nlh = nftnl_rule_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWRULE, NFPROTO_INET, NLM_F_MULTI, 1);
        nftnl_rule_nlmsg_build_payload(nlh, const_cast<nftnl_rule*>(r));
        append(out, nlh);
    };
    uint64_t handle = 1;
    {
        std::vector<char> out;
        auto r = linux_::nft::build_established_rule();
        serialize(r.get(), handle, out);
        serialize(r.get(), handle++, all);
        write(dir + "/established", out);
    }
    for (const auto& rule : rules) {
        std::vector<char> out;
        auto r = linux_::nft::build_rule(rule);
        serialize(r.get(), handle, out);
        serialize(r.get(), handle++, all);
        std::string name = rule.id;
        for (char& c : name)
            if (c == ':') c = '-';
        write(dir + "/" + name, out);
    }
    for (const auto& map : linux_::nft::dnat_maps()) {
        std::vector<char> out;
        auto r = linux_::nft::build_dnat_map_rule(map);
        serialize(r.get(), handle, out);
        serialize(r.get(), handle++, all);
        write(dir + "/map-rule-" + map.name, out);
    }
    // The maps' elements as a dump sends them: d4 in fwd4, d6 in fwd6.
    for (const FwRule* d : {&d4, &d6}) {
        const auto& map = linux_::nft::dnat_map_for(*d);
        auto set = linux_::nft::build_dnat_elements(map, {d}, true);
        std::vector<char> buf(16384), out;
        nlmsghdr* nlh = nftnl_set_elem_nlmsg_build_hdr(buf.data(), NFT_MSG_NEWSETELEM, NFPROTO_INET, NLM_F_MULTI, 1);
        nftnl_set_elems_nlmsg_build_payload(nlh, set.get());
        append(out, nlh);
        append(all, nlh);
        write(dir + "/elements-" + map.name, out);
    }
    write(dir + "/table", all);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s TESTS_FUZZ_DIR\n", argv[0]);
        return 2;
    }
    std::string base = argv[1];
    genl_seeds(base + "/corpus-genl");
    nft_seeds(base + "/corpus-nft");
    return 0;
}
