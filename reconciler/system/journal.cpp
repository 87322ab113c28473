#include "system/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "linux/files.hpp"

namespace wgf::system {

FileJournal::FileJournal(const std::string& state_dir) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    fd_ = open((state_dir + "/journal.log").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

FileJournal::~FileJournal() {
    flush();
    if (fd_ >= 0) close(fd_);
}

void FileJournal::flush() {
    if (fd_ < 0 || pending_.empty()) return;
    // One write with O_APPEND: concurrent runs never interleave within a batch.
    ssize_t n = write(fd_, pending_.data(), pending_.size());
    (void)n;
    pending_.clear();
}

void FileJournal::record(const std::string& op_line, const backend::Status& result) {
    if (fd_ < 0) return;
    char stamp[32];
    time_t now = time(nullptr);
    struct tm tm {};
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pending_ += result ? fmt::format("{} ok {}\n", stamp, op_line)
                       : fmt::format("{} error {}: {}\n", stamp, op_line, result.error().message);
}

std::optional<JournalRecord> parse_journal_line(std::string_view line) {
    // "2026-01-02T03:04:05Z ok ..." or "... error ...": a fixed-width UTC stamp, then the outcome.
    constexpr size_t kStamp = 20;
    if (line.size() < kStamp + 3 || line[kStamp] != ' ') return std::nullopt;
    std::string stamp(line.substr(0, kStamp));
    struct tm tm {};
    const char* end = strptime(stamp.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end) return std::nullopt;
    std::string_view rest = line.substr(kStamp + 1);
    bool ok = rest.starts_with("ok ");
    if (!ok && !rest.starts_with("error ")) return std::nullopt;
    return JournalRecord{.time = static_cast<int64_t>(timegm(&tm)), .ok = ok};
}

std::optional<JournalRecord> read_last_journal_record(const std::string& state_dir) {
    std::ifstream in(state_dir + "/journal.log", std::ios::binary);
    if (!in) return std::nullopt;
    // A record's line is one operation's description: far shorter than this tail.
    constexpr std::streamoff kTail = 64 * 1024;
    in.seekg(0, std::ios::end);
    std::streamoff size = in.tellg();
    if (size <= 0) return std::nullopt;
    std::streamoff from = size > kTail ? size - kTail : 0;
    in.seekg(from);
    std::string tail(static_cast<size_t>(size - from), '\0');
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    tail.resize(static_cast<size_t>(in.gcount()));
    // The last line that is a record; a line cut by the tail's start is not one.
    std::string_view rest(tail);
    while (!rest.empty()) {
        if (rest.back() == '\n') {
            rest.remove_suffix(1);
            continue;
        }
        size_t nl = rest.rfind('\n');
        if (nl == std::string_view::npos && from > 0) return std::nullopt;
        if (auto r = parse_journal_line(nl == std::string_view::npos ? rest : rest.substr(nl + 1))) return r;
        if (nl == std::string_view::npos) break;
        rest = rest.substr(0, nl);
    }
    return std::nullopt;
}

backend::Status write_last_run(const std::string& state_dir, const LastRun& run) {
    return linux_::write_file_atomic(state_dir + "/last-run", fmt::format("{} {} {}\n", run.time, run.ok ? "ok" : "error", run.operations),
                                     0600);
}

std::optional<LastRun> read_last_run(const std::string& state_dir) {
    std::ifstream in(state_dir + "/last-run", std::ios::binary);
    std::string line;
    if (!in || !std::getline(in, line) || line.size() > 64) return std::nullopt;
    LastRun r;
    char outcome[8] = {};
    unsigned long long ops = 0;
    long long t = 0;
    if (std::sscanf(line.c_str(), "%lld %7s %llu", &t, outcome, &ops) != 3) return std::nullopt;
    const std::string_view o(outcome);
    if (t <= 0 || (o != "ok" && o != "error")) return std::nullopt;
    r.time = t;
    r.ok = o == "ok";
    r.operations = static_cast<size_t>(ops);
    return r;
}

}  // namespace wgf::system
