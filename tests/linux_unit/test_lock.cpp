// The state directory's lock: one holder at a time, a clear message naming the holder, released
// when the holder goes, never inherited by a program the holder starts.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

#include "inputs/lock.hpp"
#include "temp_dir.hpp"

using wgf::inputs::StateLock;

TEST_CASE("lock: one holder per state directory, and the second names the holder's pid and command", "[lock]") {
    wgf::test::TempDir tmp("wgf-lock");
    std::string dir = (tmp.path / "state").string();
    auto first = StateLock::acquire(dir, 0);
    REQUIRE(first);
    struct stat st {};
    REQUIRE(stat((dir + "/lock").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(stat(dir.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    std::ifstream in(dir + "/lock");
    std::string pid;
    in >> pid;
    CHECK(pid == std::to_string(getpid()));

    auto second = StateLock::acquire(dir, 1);  // waits a second, then gives up
    REQUIRE_FALSE(second);
    INFO(second.error().message);
    CHECK(second.error().message.find("another wg-fleet run holds this node's state directory " + dir + ": pid " +
                                      std::to_string(getpid()) + " (") != std::string::npos);
    CHECK(second.error().message.find("--lock-timeout") != std::string::npos);

    // Another directory is another node: not blocked.
    auto other = StateLock::acquire((tmp.path / "other").string(), 0);
    CHECK(other);

    first = std::move(*StateLock::acquire((tmp.path / "third").string(), 0));  // releases the first lock
    auto now_free = StateLock::acquire(dir, 0);
    CHECK(now_free);
}

TEST_CASE("lock: a run that waits for the lock hears from it meanwhile (watch pings its watchdog there)", "[lock]") {
    wgf::test::TempDir tmp("wgf-lock");
    std::string dir = (tmp.path / "state").string();
    auto held = StateLock::acquire(dir, 0);
    REQUIRE(held);
    int calls = 0;
    auto waited = StateLock::acquire(dir, 2, [&] { ++calls; });  // two seconds of waiting, then gives up
    CHECK_FALSE(waited);
    CHECK(calls >= 1);
    held = std::move(*StateLock::acquire((tmp.path / "other").string(), 0));  // releases the lock
    calls = 0;
    CHECK(StateLock::acquire(dir, 2, [&] { ++calls; }));
    CHECK(calls == 0);  // no wait, no call
}

TEST_CASE("lock: a program started by the holder does not keep the lock after the holder is gone", "[lock]") {
    wgf::test::TempDir tmp("wgf-lock");
    std::string dir = (tmp.path / "state").string();
    pid_t child = -1;
    {
        auto held = StateLock::acquire(dir, 0);
        REQUIRE(held);
        // As apply starts wireguard-go, which outlives it.
        child = fork();
        if (child == 0) {
            execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
            _exit(127);
        }
        REQUIRE(child > 0);
        // Until exec, the child is a copy of us with every descriptor: wait until it is `sleep`.
        auto comm = [&] {
            std::ifstream c("/proc/" + std::to_string(child) + "/comm");
            std::string s;
            c >> s;
            return s;
        };
        while (comm() != "sleep") usleep(1000);
    }
    auto after = StateLock::acquire(dir, 0);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    INFO((after ? std::string() : after.error().message));
    CHECK(after);
}
