// Managed files: read with their mode and owner, written atomically (temporary file in the same
// directory, fsync, rename, fsync of the directory), so a reader never sees half a file and a
// crash leaves either the old or the new content. Ownership policy (the marker) is the caller's:
// read() reports whether a file carries model::kFileMarker.
#pragma once

#include "backend/backend.hpp"

namespace wgf::linux_ {

class LocalFiles : public backend::Files {
public:
    backend::Result<std::optional<backend::FileLive>> read(const std::string& path) override;
    backend::Status write(const model::ManagedFile& file) override;
    backend::Status remove(const std::string& path) override;
};

// Writes `content` to `path` atomically with `mode` (used for key files too: 0600 from creation).
backend::Status write_file_atomic(const std::string& path, const std::string& content, uint32_t mode);

}  // namespace wgf::linux_
