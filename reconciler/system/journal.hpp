// The journal as state_dir/journal.log (0600): "TIME ok|error OP-LINE [: error]" lines, appended
// with one write per batch of operations.
#pragma once

#include <string>

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

}  // namespace wgf::system
