// keys_dir is read safely: no file there may bring a secret of this node in as a peer's public
// key, and no refusal echoes a file's content.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "config/parse.hpp"
#include "inputs/published_keys.hpp"
#include "key_dirs.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace wgf;

namespace {

struct Fixture : test::KeyDirs {
    Fixture() { std::ofstream(state / "state.json") << "{}\n"; }
    inputs::PublishedKey read(const std::string& name) {
        return inputs::read_published_key((pub / name).string(), inputs::load_secrets(cfg));
    }
};

void refused(const inputs::PublishedKey& r, const std::string& why, const std::string& secret_text) {
    INFO(r.refused);
    CHECK_FALSE(r.key);
    CHECK(r.refused.find(why) != std::string::npos);
    if (!secret_text.empty()) CHECK(r.refused.find(secret_text) == std::string::npos);
}

}  // namespace

TEST_CASE("keys_dir is read safely: the node's key file is refused as a link, a hard link or a copy", "[published]") {
    Fixture f;
    const std::string text = f.secret.base64_for_storage();
    fs::create_symlink(f.state / "mesh.key", f.pub / "erin.pub");
    refused(f.read("erin.pub"), "one of this node's secret files", text);
    fs::create_hard_link(f.state / "mesh.key", f.pub / "hard.pub");
    refused(f.read("hard.pub"), "one of this node's secret files", text);
    std::ofstream(f.pub / "copy.pub") << text << "\n";
    refused(f.read("copy.pub"), "holds one of this node's private keys", text);
    fs::create_symlink(f.state / "state.json", f.pub / "state.pub");
    refused(f.read("state.pub"), "resolves inside state_dir", "");
    fs::create_symlink(f.state / "other.key", f.pub / "dangling-into-state.pub");
    CHECK(f.read("dangling-into-state.pub").missing);  // nothing there: the member is pending
}

TEST_CASE("keys_dir is read safely: only small regular files, never echoed", "[published]") {
    Fixture f;
    REQUIRE(mkfifo((f.pub / "fifo.pub").c_str(), 0644) == 0);
    refused(f.read("fifo.pub"), "not a regular file", "");  // and the read did not block
    fs::create_directories(f.pub / "dir.pub");
    refused(f.read("dir.pub"), "not a regular file", "");
    std::ofstream(f.pub / "shadow.pub") << "root:$6$secrethash$abcdefghijklmnop:19000:0:99999:7:::\n" << std::string(200, 'x') << "\n";
    refused(f.read("shadow.pub"), "larger than 128 bytes", "secrethash");
    std::ofstream(f.pub / "token.pub") << "hunter2-api-token\n";
    refused(f.read("token.pub"), "does not hold a base64 WireGuard public key (content not shown)", "hunter2");
    // A file whose size says 0 but that holds more (procfs) is cut at 129 bytes and refused.
    fs::create_symlink("/proc/self/status", f.pub / "proc.pub");
    refused(f.read("proc.pub"), "larger than 128 bytes", "");
}

TEST_CASE("keys_dir is read safely: a good key, also through a link outside state_dir, is used", "[published]") {
    Fixture f;
    const model::Key other = model::SecretKey::generate().public_key();
    std::ofstream(f.pub / "bob.pub") << other.base64() << "\n";
    auto r = f.read("bob.pub");
    REQUIRE(r.key);
    CHECK(*r.key == other);
    fs::create_directories(f.d.path / "store");
    std::ofstream(f.d.path / "store" / "carol") << other.base64() << "\r\n";
    fs::create_symlink(f.d.path / "store" / "carol", f.pub / "carol.pub");
    auto c = f.read("carol.pub");
    REQUIRE(c.key);
    CHECK(*c.key == other);
    CHECK(f.read("nobody.pub").missing);
}

TEST_CASE("keys_dir is read safely: a refusal is a config error at keys_dir naming the file, without its content", "[published]") {
    Fixture f;
    fs::create_symlink(f.state / "mesh.key", f.pub / "erin.pub");
    config::Sources sources;
    config::Diagnostics diags;
    const std::string yaml = "state_dir: " + f.state.string() + "\nkeys_dir: " + f.keys.string() +
                             "\nfleets:\n  mesh:\n    controllers:\n      hub: { endpoint: 192.0.2.1 }\n    peers:\n      erin: {}\n";
    auto parsed = config::parse_text(yaml, "fleet.yaml", sources, diags);
    REQUIRE_FALSE(diags.has_errors());
    inputs::merge_published_keys(parsed, diags, false);
    REQUIRE(diags.errors() == 1);
    std::string all;
    for (const auto& d : diags.sorted()) all += config::render(d, sources);
    INFO(all);
    CHECK(all.find("fleet.yaml:2:11: error: keys_dir: " + (f.pub / "erin.pub").string() +
                   ": refused as the public key of fleets.mesh.peers.erin: it is one of this node's secret files (a private key)") == 0);
    CHECK(all.find(f.secret.base64_for_storage()) == std::string::npos);
    CHECK_FALSE(parsed.config.fleets.at("mesh").peers.at("erin").public_key);
}
