// The journal of applied operations (state_dir/journal.log in system/): one record per operation
// with its outcome. It never holds a secret: an operation's line never does.
#pragma once

#include <string>

#include "backend/status.hpp"

namespace wgf::backend {

class Journal {
public:
    virtual ~Journal() = default;
    virtual void record(const std::string& op_line, const Status& result) = 0;
    // Called after each batch of operations: records may be buffered until then.
    virtual void flush() {}
};

}  // namespace wgf::backend
