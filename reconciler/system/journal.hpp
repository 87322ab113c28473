// The journal as state_dir/journal.log (0600): "TIME ok|error OP-LINE [: error]" lines, appended
// with one write per batch of operations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "backend/journal.hpp"

namespace wgf::system {

class FileJournal : public backend::Journal {
public:
    explicit FileJournal(const std::string& state_dir);
    ~FileJournal() override;
    FileJournal(const FileJournal&) = delete;
    FileJournal& operator=(const FileJournal&) = delete;
    void record(const std::string& op_line, const backend::Status& result) override;
    void flush() override;

private:
    int fd_ = -1;
    std::string pending_;  // lines of the current batch, written with one append
};

// One record of the journal, as read back (status's metrics: when the last apply ran an
// operation, and whether it succeeded).
struct JournalRecord {
    int64_t time = 0;  // seconds since the epoch
    bool ok = false;
};
// A line as FileJournal::record writes it; nullopt for anything else.
std::optional<JournalRecord> parse_journal_line(std::string_view line);
// The last record of state_dir/journal.log; nullopt when there is none (no apply ever ran an
// operation) or the file cannot be read. Reads only the file's tail.
std::optional<JournalRecord> read_last_journal_record(const std::string& state_dir);

// state_dir/last-run: when the latest apply or reconcile of watch ran and how it ended, one
// line "TIME ok|error OPERATIONS", replaced whole (0600) after every run, a run with nothing to
// do included. The journal records operations only; this is what says the reconciler still runs.
struct LastRun {
    int64_t time = 0;  // seconds since the epoch
    bool ok = false;
    size_t operations = 0;  // operations the run applied
};
backend::Status write_last_run(const std::string& state_dir, const LastRun& run);
// nullopt when no run wrote it yet, or it is not such a line.
std::optional<LastRun> read_last_run(const std::string& state_dir);

}  // namespace wgf::system
