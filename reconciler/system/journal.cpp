#include "system/journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>

#include <fmt/format.h>

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

}  // namespace wgf::system
