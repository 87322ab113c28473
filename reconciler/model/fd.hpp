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
    Fd(Fd&& other) noexcept : fd(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    // Closes the descriptor held now (if any) and holds f instead.
    void reset(int f = -1) noexcept {
        if (fd >= 0) close(fd);
        fd = f;
    }
    // Hands the descriptor to the caller, who closes it from now on.
    int release() noexcept {
        int f = fd;
        fd = -1;
        return f;
    }
};

}  // namespace wgf::model
