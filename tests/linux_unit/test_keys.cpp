// The file key store: generated keys are 0600 from creation, load back equal, malformed or loose
// files are reported without their content.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <latch>
#include <optional>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "system/keys.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;

TEST_CASE("keys: generated once, 0600, loaded back equal, loose and malformed files are reported", "[keys]") {
    wgf::test::TempDir tmp("wgf-keys");
    const fs::path& dir = tmp.path;
    wgf::system::FileKeyStore keys;
    std::string path = (dir / "state" / "mesh.key").string();

    auto none = keys.load(path);
    REQUIRE(none);
    CHECK_FALSE(none->has_value());

    auto made = keys.load_or_generate(path);
    REQUIRE(made);
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto again = keys.load_or_generate(path);
    REQUIRE(again);
    CHECK(*again == *made);  // never regenerated
    CHECK(again->public_key() == made->public_key());
    CHECK_FALSE(keys.loose_permissions);

    chmod(path.c_str(), 0644);
    REQUIRE(keys.load(path));
    REQUIRE(keys.loose_permissions);
    CHECK(*keys.loose_permissions == path);

    std::string bad = (dir / "bad.key").string();
    std::ofstream(bad) << "c2VjcmV0LWJ1dC10b28tc2hvcnQ=\n";
    auto err = keys.load(bad);
    REQUIRE_FALSE(err);
    CHECK(err.error().message == "read private key " + bad + ": not a base64 WireGuard key");

    REQUIRE(keys.publish((dir / "keys" / "mesh" / "c1.pub").string(), made->public_key()));
    std::ifstream pub(dir / "keys" / "mesh" / "c1.pub");
    std::string line;
    std::getline(pub, line);
    CHECK(line == made->public_key().base64());
}

TEST_CASE("keys: runs generating the same key at once agree on one key, the one in the file", "[keys][race]") {
    wgf::test::TempDir tmp("wgf-keyrace");
    constexpr int kRounds = 20, kRunners = 8;
    for (int round = 0; round < kRounds; ++round) {
        std::string path = (tmp.path / ("round" + std::to_string(round)) / "mesh.key").string();
        std::vector<std::optional<wgf::model::Key>> got(kRunners);
        std::latch start(kRunners);
        std::vector<std::thread> runners;
        for (int i = 0; i < kRunners; ++i)
            runners.emplace_back([&, i] {
                wgf::system::FileKeyStore keys;  // one store per run, as separate processes have
                start.arrive_and_wait();
                auto k = keys.load_or_generate(path);
                if (k) got[static_cast<size_t>(i)] = k->public_key();
            });
        for (auto& t : runners) t.join();
        wgf::system::FileKeyStore keys;
        auto in_file = keys.load(path);
        REQUIRE(in_file);
        REQUIRE(in_file->has_value());
        for (const auto& k : got) {
            REQUIRE(k);
            CHECK(*k == (*in_file)->public_key());
        }
        // No temporary file is left beside the key.
        size_t entries = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(fs::path(path).parent_path())) ++entries;
        CHECK(entries == 1);
    }
}
