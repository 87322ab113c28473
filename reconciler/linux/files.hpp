// Managed files: read with their mode and owner, written atomically (temporary file in the same
// directory, fsync, rename, fsync of the directory), so a reader never sees half a file and a
// crash leaves either the old or the new content. A managed path is replaced or removed only when
// it is a regular file carrying model::kFileMarker (checked again right before the rename, without
// following a symbolic link); a path that is free is created without ever replacing a file that
// appears meanwhile. Anything else is a conflict, left byte for byte as it was.
#pragma once

#include "backend/backend.hpp"

namespace wgf::linux_ {

class LocalFiles : public backend::Files {
public:
    backend::Result<std::optional<backend::FileLive>> read(const std::string& path) override;
    backend::Status write(const model::ManagedFile& file) override;
    backend::Status remove(const std::string& path) override;
    backend::Result<backend::FilePlace> place(const std::string& path) override;
    backend::Result<bool> within(const std::string& path, const std::string& dir) override;
};

// Writes `content` to `path` atomically with `mode`, replacing whatever file is there (key files
// and published keys: 0600 or 0644 from creation; no marker policy).
backend::Status write_file_atomic(const std::string& path, const std::string& content, uint32_t mode);

}  // namespace wgf::linux_
