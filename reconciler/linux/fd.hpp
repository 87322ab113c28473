// A file descriptor closed when its owner goes: the one RAII type for the descriptors the Linux
// layer opens.
#pragma once

#include <unistd.h>

namespace wgf::linux_ {

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

}  // namespace wgf::linux_
