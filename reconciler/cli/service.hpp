// The service loop of `watch`, for `serve` too: one process converging the node on every trigger
// (apply/watch.hpp), with what serve adds to it.
#pragma once

#include <functional>
#include <memory>

#include <spdlog/spdlog.h>

#include "apply/engine.hpp"
#include "apply/watch.hpp"
#include "cli/common.hpp"
#include "linux/watch_events.hpp"

namespace wgf::cli {

struct ServiceHooks {
    // Nudged when serve's store changed: the loop loads and converges at once.
    linux_::EventNudges* nudges = nullptr;
    // Called once the event sources exist (signals blocked), before the first run; false ends the
    // service with an error. serve starts its HTTP threads here.
    std::function<bool()> before_loop;
    // After every run that converged the node, with the configuration it ran and its time.
    std::function<void(apply::Trigger, const apply::RunResult&, const Loaded&, int64_t now)> after_run;
    // watch --try SECONDS: every edit of the file is applied as a try of that window; 0: none.
    int try_seconds = 0;
};

std::shared_ptr<spdlog::logger> service_logger(const Globals& g);
// Runs until a stop signal; the exit code.
int run_service(const Globals& g, int interval_s, spdlog::logger& log, const ServiceHooks& hooks);

}  // namespace wgf::cli
