// A file descriptor closed when its owner goes: the one RAII type for the descriptors any layer
// opens (here, the lowest layer, so config, apply and linux share it).
#pragma once

#include <unistd.h>

namespace wgf::model {

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

}  // namespace wgf::model
