// The desired-state cache of one-shot runs: a hit only while every input is as it was when the
// entry was made (each invalidation below is a miss, and loading again gives the new result),
// never a file another user could have written, never a secret in it.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "inputs/desired_cache.hpp"
#include "system/desired_cache.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace wgf;

namespace {

struct Fixture {
    test::TempDir d{"wgf-dcache"};
    fs::path state = d.path / "state", keys = d.path / "keys", pub = keys / "mesh", config = d.path / "fleet.yaml",
             dropins = d.path / "fleet.d";
    model::SecretKey secret = model::SecretKey::generate();
    model::Key c1 = secret.public_key(), p1 = model::SecretKey::generate().public_key(), p2 = model::SecretKey::generate().public_key();
    system::FileDesiredCache store{state.string()};
    inputs::CacheContext ctx;

    Fixture() {
        fs::create_directories(state);
        fs::create_directories(pub);
        fs::create_directories(dropins);
        write(state / "mesh.key", secret.base64_for_storage() + "\n");
        fs::permissions(state / "mesh.key", fs::perms::owner_read | fs::perms::owner_write);
        write(config, fmt::format("state_dir: {}\nkeys_dir: {}\nfleets:\n  mesh:\n    controllers:\n"
                                  "      c1: {{ endpoint: \"vpn1.example.com\" }}\n    peers:\n      p1: {{ controller: c1 }}\n",
                                  state.string(), keys.string()));
        write(pub / "c1.pub", c1.base64() + "\n");
        write(pub / "p1.pub", p1.base64() + "\n");
        write(pub / "p2.pub", p2.base64() + "\n");
        ctx.build_id = "elf:test-build";
        ctx.node = "c1";
        ctx.options.config = config.string();
    }
    static void write(const fs::path& p, const std::string& text) {
        std::ofstream out(p, std::ios::trunc);
        out << text;
    }
    // What a miss does, and a verified apply after it: load, render, keep.
    inputs::CachedDesired keep() {
        auto l = inputs::load(ctx.options);
        INFO(config::render_all(l->diags, l->sources));
        REQUIRE(l->fleet);
        auto c = inputs::cache_entry(ctx, *l);
        c.desired = apply::render_desired(*l->fleet, ctx.node);
        REQUIRE(store.save(inputs::encode_cached(c)));
        return c;
    }
    std::optional<inputs::CachedDesired> lookup(std::string* why = nullptr) { return inputs::lookup_cached(store, ctx, why); }
    // The entry is no longer used, and loading again gives the changed result.
    void invalidated(const inputs::CachedDesired& before, bool desired_changes = true) {
        std::string why;
        CHECK_FALSE(lookup(&why));
        CHECK(why == "inputs changed");
        auto after = keep();
        CHECK(after.key != before.key);
        if (desired_changes) CHECK(after.desired != before.desired);
        auto hit = lookup();
        REQUIRE(hit);
        CHECK(*hit == after);
    }
    const model::WgInterface& mesh(const inputs::CachedDesired& c) { return c.desired.state.interfaces.at("mesh"); }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("desired cache: unchanged inputs hit, with the desired state as rendered", "[desired-cache]") {
    Fixture f;
    std::string why;
    CHECK_FALSE(f.lookup(&why));
    CHECK(why == "none kept");
    auto kept = f.keep();
    REQUIRE(f.mesh(kept).peers.count(f.p1));
    auto hit = f.lookup();
    REQUIRE(hit);
    CHECK(*hit == kept);
    CHECK(hit->desired.state_dir == f.state.string());
    struct stat st {};
    REQUIRE(stat(f.store.path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("desired cache: each input invalidates it", "[desired-cache]") {
    Fixture f;
    auto kept = f.keep();
    SECTION("the file's bytes") {
        Fixture::write(f.config, slurp(f.config) + "      p2: { controller: c1 }\n");
        f.invalidated(kept);
        CHECK(f.mesh(*f.lookup()).peers.count(f.p2));
    }
    SECTION("a drop-in added, changed, removed") {
        Fixture::write(f.dropins / "10-mtu.yaml", "fleets:\n  mesh:\n    mtu: 1380\n");
        Fixture::write(f.dropins / "README", "not a drop-in");
        kept = f.keep();  // whatever the drop-in means, the entry follows it
        Fixture::write(f.dropins / "10-mtu.yaml", "fleets:\n  mesh:\n    mtu: 1360\n");
        f.invalidated(kept, false);
        kept = *f.lookup();
        Fixture::write(f.dropins / "20-more.yaml", "# nothing\n");
        f.invalidated(kept, false);
        kept = *f.lookup();
        fs::remove(f.dropins / "20-more.yaml");
        f.invalidated(kept, false);
        kept = *f.lookup();
        Fixture::write(f.dropins / "README", "still not a drop-in");  // not read by the load: no effect
        CHECK(f.lookup());
    }
    SECTION("a published key") {
        auto other = model::SecretKey::generate().public_key();
        Fixture::write(f.pub / "p1.pub", other.base64() + "\n");
        f.invalidated(kept);
        CHECK(f.mesh(*f.lookup()).peers.count(other));
    }
    SECTION("a published key's link retargeted") {
        fs::remove(f.pub / "p1.pub");
        Fixture::write(f.d.path / "a.pub", f.p1.base64() + "\n");
        Fixture::write(f.d.path / "b.pub", f.p2.base64() + "\n");
        fs::create_symlink(f.d.path / "a.pub", f.pub / "p1.pub");
        kept = f.keep();
        CHECK(f.mesh(kept).peers.count(f.p1));
        fs::remove(f.pub / "p1.pub");
        fs::create_symlink(f.d.path / "b.pub", f.pub / "p1.pub");
        f.invalidated(kept);
        CHECK(f.mesh(*f.lookup()).peers.count(f.p2));
    }
    SECTION("the labels the engine needs beyond the state: Caddy's reload and foreign_accept") {
        Fixture::write(
            f.config, slurp(f.config) + "http_server: caddy\ncaddy_reload: caddy reload --config /x\nfirewall: { foreign_accept: true }\n");
        kept = f.keep();
        REQUIRE(kept.desired.labels.reload);
        CHECK(kept.desired.labels.reload->command == "caddy reload --config /x");
        CHECK(kept.desired.labels.foreign_accept);
        auto hit = f.lookup();
        REQUIRE(hit);
        CHECK(hit->desired.labels == kept.desired.labels);
    }
    SECTION("a published key that appears (a pending member)") {
        Fixture::write(f.config, slurp(f.config) + "      p3: { controller: c1 }\n");
        kept = f.keep();
        CHECK(kept.desired.labels.of("mesh").pending == std::vector<std::string>{"p3"});
        Fixture::write(f.pub / "p3.pub", model::SecretKey::generate().public_key().base64() + "\n");
        f.invalidated(kept);
    }
    SECTION("the node's key file") {
        // The load refuses a published key that is this node's private key: the key file counts.
        Fixture::write(f.state / "mesh.key", model::SecretKey::generate().base64_for_storage() + "\n");
        f.invalidated(kept, false);
    }
    SECTION("--node") {
        f.ctx.node = "p1";
        f.invalidated(kept);
    }
    SECTION("the options that change loading") {
        f.ctx.options.files_root = (f.d.path / "root").string();
        f.invalidated(kept, false);
        kept = *f.lookup();
        f.ctx.options.dropin_dir = (f.d.path / "elsewhere.d").string();
        f.invalidated(kept, false);
        kept = *f.lookup();
        f.ctx.options.keys_only_from = f.keys.string();
        f.invalidated(kept, false);
    }
    SECTION("the binary") {
        f.ctx.build_id = "elf:another-build";
        f.invalidated(kept, false);
        f.ctx.build_id.clear();
        std::string why;
        CHECK_FALSE(f.lookup(&why));
        CHECK(why == "this binary has no build id");
    }
}

TEST_CASE("desired cache: a corrupt, foreign or writable file is never trusted, and replaced", "[desired-cache]") {
    Fixture f;
    auto kept = f.keep();
    const std::string good = slurp(f.store.path());
    std::string why;
    SECTION("corrupt") {
        for (size_t cut : {size_t{0}, size_t{10}, good.size() / 2, good.size() - 1}) {
            Fixture::write(f.store.path(), good.substr(0, cut));
            CHECK_FALSE(f.lookup(&why));
        }
        Fixture::write(f.store.path(), good + "x");
        CHECK_FALSE(f.lookup(&why));
        CHECK(why == "not readable");
    }
    SECTION("another version of the format") {
        // Entries written before the key became BLAKE2b start "wg-fleet desired cache 1".
        const std::string magic = "wg-fleet desired cache ";
        REQUIRE(good.rfind(magic, 0) == 0);
        for (const char* version : {"1", "2", "3", "4", "6", "20"}) {
            Fixture::write(f.store.path(), magic + version + good.substr(good.find('\n')));
            CHECK_FALSE(f.lookup(&why));
            CHECK(why == "not readable");
        }
        Fixture::write(f.store.path(), good);
        CHECK(f.lookup(&why));
    }
    SECTION("writable by others") {
        fs::permissions(f.store.path(), fs::perms::others_write, fs::perm_options::add);
        CHECK_FALSE(f.lookup(&why));
        CHECK(why == "none kept");
        fs::permissions(f.store.path(), fs::perms::others_write, fs::perm_options::remove);
        fs::permissions(f.store.path(), fs::perms::group_write, fs::perm_options::add);
        CHECK_FALSE(f.lookup());
    }
    SECTION("owned by another user") {
        if (geteuid() != 0) return;  // chown needs root
        REQUIRE(chown(f.store.path().c_str(), 65534, 65534) == 0);
        CHECK_FALSE(f.lookup(&why));
        CHECK(why == "none kept");
    }
    SECTION("a link") {
        fs::rename(f.store.path(), f.d.path / "elsewhere");
        fs::create_symlink(f.d.path / "elsewhere", f.store.path());
        CHECK_FALSE(f.lookup());
    }
    auto again = f.keep();
    CHECK(again == kept);
    struct stat st {};
    REQUIRE(lstat(f.store.path().c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK(st.st_uid == geteuid());
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(f.lookup());
}

TEST_CASE("desired cache: never holds the node's private key", "[desired-cache][secrets]") {
    Fixture f;
    f.keep();
    const std::string bytes = slurp(f.store.path());
    const std::string b64 = f.secret.base64_for_storage();
    CHECK(bytes.find(b64) == std::string::npos);
    CHECK(bytes.find(std::string(reinterpret_cast<const char*>(f.secret.raw().data()), f.secret.raw().size())) == std::string::npos);
    CHECK(bytes.find(b64.substr(0, 16)) == std::string::npos);
    // Public keys are fine (they are published).
    CHECK(bytes.find(std::string(reinterpret_cast<const char*>(f.p1.bytes.data()), f.p1.bytes.size())) != std::string::npos);
}

TEST_CASE("desired cache: endpoint names stay unresolved in it", "[desired-cache]") {
    Fixture f;
    Fixture::write(f.config, slurp(f.config) + "      p2: { controller: c1, endpoint: \"p2.example.com:51000\" }\n");
    f.ctx.node = "p2";
    auto kept = f.keep();
    auto hit = f.lookup();
    REQUIRE(hit);
    const auto& c1peer = f.mesh(*hit).peers.at(f.c1);
    REQUIRE(c1peer.endpoint);
    CHECK(c1peer.endpoint->host == "vpn1.example.com");
}

TEST_CASE("desired cache: this binary has a build id", "[desired-cache]") {
    auto id = system::build_id();
    CHECK_FALSE(id.empty());
    CHECK(id == system::build_id());
}
