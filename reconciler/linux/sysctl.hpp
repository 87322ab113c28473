// sysctls through /proc/sys. Network sysctls belong to the network namespace of the thread that
// opens the file, so a Sysctl used inside a namespace reads and writes that namespace's values.
#pragma once

#include "backend/backend.hpp"

namespace wgf::linux_ {

class Sysctl : public backend::Sysctls {
public:
    explicit Sysctl(std::string root = "/proc/sys") : root_(std::move(root)) {}
    backend::Result<std::string> read(const std::string& key) override;
    backend::Status write(const std::string& key, const std::string& value) override;
    backend::Result<std::vector<std::string>> list(const std::string& dir) override;

private:
    std::string path_of(const std::string& key) const;
    std::string root_;
};

}  // namespace wgf::linux_
