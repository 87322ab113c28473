#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "linux/files.hpp"
#include "linux/sysctl.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using wgf::linux_::LocalFiles;

namespace {

using TempDir = wgf::test::TempDir;

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("files: write is atomic, sets the mode and leaves no temporary file", "[files]") {
    TempDir d;
    LocalFiles files;
    std::string path = (d.path / "sub" / "hosts").string();
    wgf::model::ManagedFile f{path, std::string(wgf::model::kFileMarker) + "\nfd00::1 a.mesh\n", 0640};
    REQUIRE(files.write(f));
    CHECK(slurp(path) == f.content);
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    size_t entries = 0;
    for (const auto& e : fs::directory_iterator(d.path / "sub")) {
        (void)e;
        ++entries;
    }
    CHECK(entries == 1);

    auto live = files.read(path);
    REQUIRE(live);
    REQUIRE(live->has_value());
    CHECK((*live)->has_marker);
    CHECK((*live)->file == f);

    // Overwrite replaces the content entirely.
    f.content = std::string(wgf::model::kFileMarker) + "\n";
    f.mode = 0600;
    REQUIRE(files.write(f));
    CHECK(slurp(path) == f.content);
    REQUIRE(stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
}

TEST_CASE("files: a file without the marker reads as not ours; a missing one as absent", "[files]") {
    TempDir d;
    LocalFiles files;
    auto path = d.path / "foreign";
    std::ofstream(path) << "127.0.0.1 localhost\n# Managed by wg-fleet: edits are overwritten.\n";
    auto live = files.read(path.string());
    REQUIRE(live);
    REQUIRE(live->has_value());
    CHECK_FALSE((*live)->has_marker);  // the marker counts only as the first line

    auto missing = files.read((d.path / "nope").string());
    REQUIRE(missing);
    CHECK_FALSE(missing->has_value());
    auto rm = files.remove((d.path / "nope").string());
    REQUIRE_FALSE(rm);
    CHECK(rm.error().code == ENOENT);
    CHECK(rm.error().message.find("remove " + (d.path / "nope").string()) == 0);
}

TEST_CASE("files: write into an unwritable place reports the path and errno", "[files]") {
    if (geteuid() == 0) return;  // root can write anywhere; the error text is checked below for non-root
    LocalFiles files;
    auto s = files.write({"/proc/wgf-test/x", "x", 0644});
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find("/proc/wgf-test") != std::string::npos);
}

TEST_CASE("sysctl: reads and writes under a root directory; refuses keys that climb out", "[sysctl]") {
    TempDir d;
    fs::create_directories(d.path / "net/ipv6/conf/all");
    std::ofstream(d.path / "net/ipv6/conf/all/forwarding") << "0\n";
    wgf::linux_::Sysctl s(d.path.string());
    auto v = s.read("net/ipv6/conf/all/forwarding");
    REQUIRE(v);
    CHECK(*v == "0");
    REQUIRE(s.write("net/ipv6/conf/all/forwarding", "1"));
    CHECK(slurp(d.path / "net/ipv6/conf/all/forwarding") == "1\n");
    CHECK_FALSE(s.read("../etc/passwd"));
    auto missing = s.read("net/ipv4/ip_forward");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message == "read sysctl net/ipv4/ip_forward: No such file or directory (ENOENT)");
}
