// What wg-fleet keeps in state_dir between runs: the ownership record of the last apply
// (state.json) and the journal of applied operations (journal.log). Neither ever holds a secret.
#pragma once

#include <set>
#include <string>

#include "apply/reconcile.hpp"
#include "backend/status.hpp"
#include "plan/diff.hpp"

namespace wgf::apply {

class StateStore {
public:
    virtual ~StateStore() = default;
    virtual backend::Result<plan::Ownership> load() = 0;
    virtual backend::Status save(const plan::Ownership& owned) = 0;
};

class FileStateStore : public StateStore {
public:
    explicit FileStateStore(std::string state_dir) : dir_(std::move(state_dir)) {}
    backend::Result<plan::Ownership> load() override;
    backend::Status save(const plan::Ownership& owned) override;

private:
    std::string dir_;
};

// The interfaces a state directory records as ours, read without parsing the rest of
// state.json (which lists every peer): a guess, before the fleet file is parsed, at which
// interfaces this node has. Empty when there is no readable record.
std::set<std::string> recorded_interfaces(const std::string& state_dir);

std::string ownership_to_json(const plan::Ownership& o);
backend::Result<plan::Ownership> ownership_from_json(const std::string& text);

// Appends "TIME ok|error OP-LINE [: error]" lines to state_dir/journal.log (0600), one write per
// batch of operations.
class FileJournal : public Journal {
public:
    explicit FileJournal(std::string state_dir);
    ~FileJournal() override;
    void record(const std::string& op_line, const backend::Status& result) override;
    void flush() override;

private:
    int fd_ = -1;
    std::string pending_;  // lines of the current batch, written with one append
};

}  // namespace wgf::apply
