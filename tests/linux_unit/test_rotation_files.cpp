// The published next keys are read as safely as the public keys (a regular file of at most 256
// bytes, no secret of this node, nothing inside state_dir), parsed strictly, and listed per
// fleet; the key store moves a next key into place only when it is a 0600 regular file, and
// publishing an unchanged key leaves its file (and its age) alone.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "inputs/rotation.hpp"
#include "key_dirs.hpp"
#include "plan/rotation.hpp"
#include "system/keys.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace wgf;

namespace {

struct RotFiles : test::KeyDirs {
    const backend::NextKeyFile* find(const std::vector<backend::NextKeyFile>& all, const std::string& node) {
        for (const auto& f : all)
            if (f.node == node) return &f;
        return nullptr;
    }
};

}  // namespace

TEST_CASE("rotation files: next keys are listed per fleet, parsed, and refused with the reason and never the content", "[rotation]") {
    RotFiles f;
    const model::Key good = model::SecretKey::generate().public_key();
    std::ofstream(f.pub / "alice.next.pub") << plan::format_next_key({.key = good, .switch_at = 1796092200});
    std::ofstream(f.pub / "alice.pub") << good.base64() << "\n";  // not a next key: not listed
    std::ofstream(f.pub / "bob.next.pub") << "public_key: " << good.base64() << "\nswitch_at: soon\n";
    std::ofstream(f.pub / "carol.next.pub") << "public_key: " << f.secret.base64_for_storage() << "\nswitch_at: 2026-12-01T02:30:00Z\n";
    std::ofstream(f.pub / "dave.next.pub") << std::string(300, 'x');
    fs::create_directory(f.pub / "erin.next.pub");
    fs::create_symlink(f.state / "mesh.key", f.pub / "frank.next.pub");

    inputs::FileNextKeys reader(f.cfg);
    auto all = reader.read(f.keys.string(), "mesh");
    REQUIRE(all.size() == 6);
    const auto* alice = f.find(all, "alice");
    REQUIRE(alice);
    CHECK(alice->key == good);
    CHECK(alice->switch_at == 1796092200);
    CHECK(alice->refused.empty());
    const std::string secret_text = f.secret.base64_for_storage();
    auto refused = [&](const std::string& node, const std::string& why) {
        const auto* n = f.find(all, node);
        REQUIRE(n);
        INFO(n->refused);
        CHECK_FALSE(n->key);
        CHECK(n->refused.find(why) != std::string::npos);
        CHECK(n->refused.find(secret_text.substr(0, 20)) == std::string::npos);
    };
    refused("bob", "line 2, column 12: 'soon' is not an RFC 3339 time");
    refused("carol", "holds one of this node's private keys");
    refused("dave", "larger than 256 bytes");
    refused("erin", "not a regular file");
    refused("frank", "one of this node's secret files");
    CHECK(reader.read(f.keys.string(), "other").empty());  // no directory: none
}

TEST_CASE("rotation files: the key store moves a 0600 next key into place, and leaves an unchanged published key alone", "[rotation]") {
    RotFiles f;
    system::FileKeyStore store;
    const std::string key_file = (f.state / "mesh.key").string(), next_file = key_file + ".next";
    const model::SecretKey next = model::SecretKey::generate();
    REQUIRE(store.install(next_file, next).value());
    REQUIRE(store.promote(next_file, key_file));
    CHECK_FALSE(fs::exists(next_file));
    CHECK(store.load(key_file).value() == next);
    CHECK((fs::status(key_file).permissions() & fs::perms::all) == (fs::perms::owner_read | fs::perms::owner_write));

    // A next key readable by others is not moved: the key file stays as it was.
    std::ofstream(next_file) << model::SecretKey::generate().base64_for_storage() << "\n";
    fs::permissions(next_file, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
    auto loose = store.promote(next_file, key_file);
    CHECK_FALSE(loose);
    CHECK(store.load(key_file).value() == next);

    const std::string published = (f.pub / "alice.pub").string();
    REQUIRE(store.publish(published, next.public_key()));
    struct stat before {};
    REQUIRE(stat(published.c_str(), &before) == 0);
    REQUIRE(store.publish(published, next.public_key()));
    struct stat after {};
    REQUIRE(stat(published.c_str(), &after) == 0);
    CHECK(after.st_ino == before.st_ino);  // not replaced
    REQUIRE(store.publish(published, model::SecretKey::generate().public_key()));
    struct stat changed {};
    REQUIRE(stat(published.c_str(), &changed) == 0);
    CHECK(changed.st_ino != before.st_ino);
    REQUIRE(store.unpublish(published));
    CHECK_FALSE(fs::exists(published));
    CHECK(store.unpublish(published));  // gone already: fine
}
