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

TEST_CASE("files: a file without the marker reads as not ours, a missing one as absent", "[files]") {
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

namespace {

struct Snapshot {
    std::string content;
    struct stat st {};
};

Snapshot snap(const fs::path& p) {
    Snapshot s;
    REQUIRE(lstat(p.c_str(), &s.st) == 0);
    if (S_ISREG(s.st.st_mode)) s.content = slurp(p);
    return s;
}

void same(const Snapshot& a, const Snapshot& b) {
    CHECK(a.content == b.content);
    CHECK(a.st.st_ino == b.st.st_ino);
    CHECK(a.st.st_dev == b.st.st_dev);
    CHECK(a.st.st_mode == b.st.st_mode);
    CHECK(a.st.st_uid == b.st.st_uid);
    CHECK(a.st.st_gid == b.st.st_gid);
    CHECK(a.st.st_mtim.tv_sec == b.st.st_mtim.tv_sec);
    CHECK(a.st.st_mtim.tv_nsec == b.st.st_mtim.tv_nsec);
}

const std::string kOurs = std::string(wgf::model::kFileMarker) + "\nfd00::1 a.mesh\n";

}  // namespace

TEST_CASE("files: files without the marker are never overwritten: content, mode, owner and inode stay", "[files][ownership]") {
    TempDir d;
    LocalFiles files;
    auto path = d.path / "hosts";
    std::ofstream(path) << "127.0.0.1 localhost\n";
    REQUIRE(chmod(path.c_str(), 0640) == 0);
    if (geteuid() == 0) REQUIRE(chown(path.c_str(), 4321, 4321) == 0);
    auto before = snap(path);

    auto live = files.read(path.string());
    REQUIRE(live);
    REQUIRE(live->has_value());
    CHECK_FALSE((*live)->has_marker);
    CHECK((*live)->file.content.empty());  // a foreign file is not read beyond its first line

    auto s = files.write({path.string(), kOurs, 0644});
    REQUIRE_FALSE(s);
    CHECK(s.error().code == EEXIST);
    CHECK(s.error().message == path.string() +
                                   " exists and was not written by wg-fleet; left as is (remove or move it, or make its "
                                   "first line \"# Managed by wg-fleet: edits are overwritten.\" to hand it over)");
    same(before, snap(path));
    auto rm = files.remove(path.string());
    REQUIRE_FALSE(rm);
    same(before, snap(path));
    size_t entries = 0;
    for (const auto& e : fs::directory_iterator(d.path)) entries += e.path().filename() != "hosts";
    CHECK(entries == 0);  // no temporary file left behind

    // Handed over: with the marker as its first line, it is ours to replace.
    std::ofstream(path) << wgf::model::kFileMarker << "\nold\n";
    REQUIRE(files.write({path.string(), kOurs, 0644}));
    CHECK(slurp(path) == kOurs);
}

TEST_CASE("files: a symbolic link, a directory or a FIFO at a managed path is left as is", "[files][ownership]") {
    TempDir d;
    LocalFiles files;
    auto target = d.path / "key";
    std::ofstream(target) << "SECRET\n";
    auto link = d.path / "link";
    fs::create_symlink(target, link);
    auto dir = d.path / "dir";
    fs::create_directories(dir);
    auto fifo = d.path / "fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    auto target_before = snap(target);
    const std::pair<fs::path, std::string> cases[] = {{link, "a symbolic link"}, {dir, "a directory"}, {fifo, "a FIFO"}};
    for (const auto& [p, what] : cases) {
        INFO(p);
        auto before = snap(p);
        auto live = files.read(p.string());  // a FIFO does not block the read
        REQUIRE(live);
        REQUIRE(live->has_value());
        CHECK((*live)->not_regular == what);
        auto s = files.write({p.string(), kOurs, 0644});
        REQUIRE_FALSE(s);
        CHECK(s.error().message ==
              p.string() + " is " + what + ", not a file wg-fleet wrote; left as is (remove it, or choose another path)");
        CHECK_FALSE(files.remove(p.string()));
        same(before, snap(p));
    }
    same(target_before, snap(target));
}

TEST_CASE("files: a file that changes hands between plan and apply is left as is", "[files][ownership]") {
    TempDir d;
    LocalFiles files;
    auto path = d.path / "hosts";
    REQUIRE(files.write({path.string(), kOurs, 0644}));
    auto planned = files.read(path.string());  // the plan sees our file
    REQUIRE(planned);
    REQUIRE((*planned)->has_marker);
    std::ofstream(path) << "edited by hand, marker removed\n";
    auto before = snap(path);
    CHECK_FALSE(files.write({path.string(), kOurs + "more\n", 0644}));
    same(before, snap(path));

    // Absent when planned, someone else's by the time of the write: not replaced.
    auto fresh = d.path / "fresh";
    REQUIRE(files.read(fresh.string()));
    std::ofstream(fresh) << "theirs\n";
    auto theirs = snap(fresh);
    CHECK_FALSE(files.write({fresh.string(), kOurs, 0644}));
    same(theirs, snap(fresh));
}

TEST_CASE("files: place resolves links and dot-dots, so one file has one place", "[files][ownership]") {
    TempDir d;
    LocalFiles files;
    fs::create_directories(d.path / "run");
    fs::create_directories(d.path / "state");
    fs::create_directory_symlink(d.path / "run", d.path / "varrun");
    auto a = files.place((d.path / "run" / "x").string());
    auto b = files.place((d.path / "varrun" / "x").string());
    auto c = files.place(d.str() + "/run/..//run/./x");
    auto other = files.place((d.path / "run" / "y").string());
    auto deeper = files.place((d.path / "varrun" / "new" / "dir" / "x").string());
    auto deeper2 = files.place((d.path / "run" / "new" / "dir" / "x").string());
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    REQUIRE(other);
    REQUIRE(deeper);
    REQUIRE(deeper2);
    CHECK(*a == *b);
    CHECK(*a == *c);
    CHECK(*a != *other);
    CHECK(*deeper == *deeper2);
    CHECK(deeper->rest == "new/dir/x");
    CHECK_FALSE(files.place((d.path / "run" / "..").string()));

    fs::create_directory_symlink(d.path / "state", d.path / "run" / "st");
    auto in = files.within((d.path / "run" / "st" / "hosts").string(), (d.path / "state").string());
    REQUIRE(in);
    CHECK(*in);
    auto in2 = files.within((d.path / "run" / "st" / "sub" / "hosts").string(), (d.path / "state").string());
    REQUIRE(in2);
    CHECK(*in2);
    auto out = files.within((d.path / "run" / "hosts").string(), (d.path / "state").string());
    REQUIRE(out);
    CHECK_FALSE(*out);
}

TEST_CASE("files: write into an unwritable place reports the path and errno", "[files]") {
    if (geteuid() == 0) return;  // root can write anywhere; the error text is checked below for non-root
    LocalFiles files;
    auto s = files.write({"/proc/wgf-test/x", "x", 0644});
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find("/proc/wgf-test") != std::string::npos);
}

TEST_CASE("sysctl: reads and writes under a root directory, refuses keys that climb out", "[sysctl]") {
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
