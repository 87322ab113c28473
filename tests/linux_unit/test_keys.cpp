// The file key store: generated keys are 0600 from creation, load back equal, malformed or loose
// files are reported without their content.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "apply/keys.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;

TEST_CASE("keys: generated once, 0600, loaded back equal; loose and malformed files are reported", "[keys]") {
    wgf::test::TempDir tmp("wgf-keys");
    const fs::path& dir = tmp.path;
    wgf::apply::FileKeyStore keys;
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
