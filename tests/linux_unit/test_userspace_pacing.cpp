// The pacing of address changes on userspace WireGuard devices, on the in-memory Links fake with
// a scripted probe: a pause every chunk and a liveness check after every change on a userspace
// device, nothing on a kernel one, and a process that died stops the apply at that change with
// the error that names it. (On a real wireguard-go device: tests/netns/test_rtnl.cpp.)
#include <catch2/catch.hpp>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "apply/execute.hpp"
#include "backend/fake.hpp"
#include "linux/userspace_pacing.hpp"

using namespace wgf;

namespace {

model::Prefix P(const std::string& s) { return *model::Prefix::parse(s); }

std::vector<model::Prefix> addresses(int n) {
    std::vector<model::Prefix> out;
    for (int i = 1; i <= n; ++i) out.push_back(P(fmt::format("fd00:c::{:x}/64", i)));
    return out;
}

// wg-u is served by a userspace process that dies after `lives` liveness checks; wg-k is the kernel's.
struct Probe {
    int lives = 1000;
    std::vector<std::string> checked;
    int pauses = 0;

    linux_::UserspaceProbe probe() {
        return linux_::UserspaceProbe{
            .is_userspace = [](const std::string& ifname) { return ifname == "wg-u"; },
            .alive =
                [this](const std::string& ifname) {
                    checked.push_back(ifname);
                    return static_cast<int>(checked.size()) <= lives;
                },
        };
    }
    linux_::PacingOptions options(size_t chunk) {
        return linux_::PacingOptions{.chunk = chunk, .pause = [this] { ++pauses; }};
    }
};

}  // namespace

TEST_CASE("pacing: address changes on a userspace device pause every chunk and are checked after each", "[pacing]") {
    backend::FakeLinks fake;
    Probe probe;
    linux_::UserspacePacing links(fake, probe.probe(), probe.options(4));
    for (const auto& a : addresses(10)) REQUIRE(links.add_address("wg-u", a));
    CHECK(probe.pauses == 2);  // after the 4th and the 8th change
    CHECK(probe.checked.size() == 10);
    REQUIRE(links.del_address("wg-u", addresses(1)[0]));
    CHECK(probe.checked.size() == 11);
    REQUIRE(links.del_address("wg-u", addresses(2)[1]));
    CHECK(probe.pauses == 3);  // removals count too: the 12th change
    CHECK(fake.addresses["wg-u"].size() == 8);
}

TEST_CASE("pacing: kernel devices and everything but address changes pass straight through", "[pacing]") {
    backend::FakeLinks fake;
    Probe probe;
    probe.lives = 0;  // would fail any check
    linux_::UserspacePacing links(fake, probe.probe(), probe.options(1));
    fake.links["wg-u"].name = "wg-u";
    for (const auto& a : addresses(5)) REQUIRE(links.add_address("wg-k", a));
    REQUIRE(links.set_mtu("wg-u", 1420));
    REQUIRE(links.set_up("wg-u", true));
    REQUIRE(links.add_route(model::Route{.dst = P("fd00:d::/64"), .dev = "wg-u"}));
    CHECK(probe.checked.empty());
    CHECK(probe.pauses == 0);
    CHECK(fake.calls.size() == 8);
    // A change the kernel refuses is that error, not a liveness question.
    probe.lives = 1000;
    REQUIRE(links.add_address("wg-u", P("fd00:e::1/64")));
    auto again = links.add_address("wg-u", P("fd00:e::1/64"));
    REQUIRE_FALSE(again);
    CHECK(again.error().code == EEXIST);
    CHECK(probe.checked.size() == 1);
}

TEST_CASE("pacing: a userspace process that dies under a burst of address changes stops the apply there", "[pacing]") {
    backend::FakeWireGuard wg;
    backend::FakeLinks fake;
    backend::FakeSysctls sysctls;
    backend::FakeFirewall firewall;
    backend::FakeFiles files;
    Probe probe;
    probe.lives = 6;
    linux_::UserspacePacing links(fake, probe.probe(), probe.options(4));
    apply::Backends b{wg, links, sysctls, firewall, files};

    plan::Plan p;
    for (const auto& a : addresses(10)) p.ops.push_back(plan::OpAddAddress{"wg-u", a});
    p.ops.push_back(plan::OpAddRoute{model::Route{.dst = P("fd00:d::/64"), .dev = "wg-u"}});
    backend::FakeKeyStore keys;
    backend::FakeJournal journal;
    auto r = apply::apply_plan(b, p, keys, &journal);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error->code == EIO);
    CHECK(r.error->message == "the userspace WireGuard process of wg-u exited during address changes");
    // The 7th change was made, but its check failed: it and everything after it are not done.
    CHECK(r.done.size() == 6);
    CHECK(r.not_done.size() == 5);
    CHECK(fake.addresses["wg-u"].size() == 7);
    CHECK(fake.routes.empty());
    REQUIRE(journal.lines.size() == 7);
    CHECK(journal.lines[5].starts_with("ok "));
    CHECK(journal.lines[6].starts_with("error "));
    CHECK(journal.lines[6].ends_with(": the userspace WireGuard process of wg-u exited during address changes"));
}
