#include "backend/status.hpp"

#include <cstring>

namespace wgf::backend {

Error errno_error(int err, const std::string& what) {
    const char* name = strerrorname_np(err);
    return Error{err, what + ": " + std::strerror(err) + " (" + (name ? name : std::to_string(err)) + ")"};
}

}  // namespace wgf::backend
