// Milliseconds on the monotonic clock: deadlines for the commands and processes this layer runs,
// immune to wall-clock steps.
#pragma once

#include <time.h>

#include <cstdint>

namespace wgf::linux_ {

inline int64_t monotonic_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace wgf::linux_
