// The journal read back for status's metrics: what FileJournal writes is what the reader finds
// (the last record, its time and outcome), and no journal, an empty one or a foreign last line
// give no made-up record.
#include <ctime>
#include <fstream>

#include <catch2/catch.hpp>

#include "system/journal.hpp"
#include "temp_dir.hpp"

using wgf::system::parse_journal_line;
using wgf::system::read_last_journal_record;

TEST_CASE("journal: a record's time and outcome parse, and nothing else does", "[journal]") {
    auto ok = parse_journal_line("2024-03-01T12:00:05Z ok + peer alice on wg-mesh");
    REQUIRE(ok);
    CHECK(ok->time == 1709294405);  // date -u -d 2024-03-01T12:00:05Z +%s
    CHECK(ok->ok);
    auto err = parse_journal_line("2024-03-01T12:00:06Z error + route fd00::/56 dev wg-mesh: File exists (EEXIST)");
    REQUIRE(err);
    CHECK_FALSE(err->ok);
    CHECK_FALSE(parse_journal_line(""));
    CHECK_FALSE(parse_journal_line("2024-03-01T12:00:06Z maybe x"));
    CHECK_FALSE(parse_journal_line("2024-13-01T12:00:06Z ok x"));
    CHECK_FALSE(parse_journal_line("not a time at all ok x"));
}

TEST_CASE("journal: the last record of what FileJournal wrote", "[journal]") {
    wgf::test::TempDir dir("wgf-journal");
    CHECK_FALSE(read_last_journal_record(dir.str()));  // no journal: no apply ran an operation
    const int64_t before = time(nullptr);
    {
        wgf::system::FileJournal j(dir.str());
        j.record("+ peer alice on wg-mesh", wgf::backend::Status::ok());
        j.record("+ route fd00::/56 dev wg-mesh", wgf::backend::Error{17, "File exists"});
    }
    const int64_t after = time(nullptr);
    auto last = read_last_journal_record(dir.str());
    REQUIRE(last);
    CHECK_FALSE(last->ok);
    CHECK(last->time >= before);
    CHECK(last->time <= after);
    {
        wgf::system::FileJournal j(dir.str());
        j.record("- peer bob on wg-mesh", wgf::backend::Status::ok());
    }
    last = read_last_journal_record(dir.str());
    REQUIRE(last);
    CHECK(last->ok);
}

TEST_CASE("journal: a long journal is read from its tail, and a torn last line is passed over", "[journal]") {
    wgf::test::TempDir dir("wgf-journal");
    {
        std::ofstream out(dir.str() + "/journal.log");
        for (int i = 0; i < 5000; ++i) out << "2024-03-01T12:00:00Z error + peer p" << i << " on wg-mesh: x\n";
        out << "2024-03-01T12:00:07Z ok + peer last on wg-mesh\n";
        out << "2024-03-01T12:0";  // a write cut short
    }
    auto last = read_last_journal_record(dir.str());
    REQUIRE(last);
    CHECK(last->ok);
    CHECK(last->time == 1709294407);
    std::ofstream(dir.str() + "/journal.log", std::ios::trunc);
    CHECK_FALSE(read_last_journal_record(dir.str()));
}

TEST_CASE("journal: last-run is replaced whole by each run and read back, and anything else is no run", "[journal]") {
    wgf::test::TempDir dir("wgf-lastrun");
    CHECK_FALSE(wgf::system::read_last_run(dir.str()));  // no run yet
    REQUIRE(wgf::system::write_last_run(dir.str(), {.time = 1709294405, .ok = true, .operations = 3}));
    REQUIRE(wgf::system::write_last_run(dir.str(), {.time = 1709294435, .ok = false, .operations = 0}));
    auto run = wgf::system::read_last_run(dir.str());
    REQUIRE(run);
    CHECK(run->time == 1709294435);
    CHECK_FALSE(run->ok);
    CHECK(run->operations == 0);
    std::ifstream in(dir.str() + "/last-run");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text == "1709294435 error 0\n");  // one line: the older run is gone
    for (const char* bad : {"", "1709294435 maybe 1\n", "-5 ok 1\n", "soon ok 1\n", "1709294435 ok\n"}) {
        std::ofstream(dir.str() + "/last-run", std::ios::trunc) << bad;
        INFO(bad);
        CHECK_FALSE(wgf::system::read_last_run(dir.str()));
    }
}
