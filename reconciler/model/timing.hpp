// Wall-clock time per phase of a command, for `-v` output and the benchmarks: where a run
// spends its time, measured rather than guessed.
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace wgf::model {

class Timings {
public:
    using Clock = std::chrono::steady_clock;

    // Ends the current phase under this name; the next one starts now.
    void lap(std::string name) {
        auto t = Clock::now();
        phases_.emplace_back(std::move(name), std::chrono::duration<double, std::milli>(t - last_).count());
        last_ = t;
    }
    // Starts a phase now, dropping the time since the last lap (time this run does not own).
    void restart() { last_ = Clock::now(); }
    void append(const Timings& other) { phases_.insert(phases_.end(), other.phases_.begin(), other.phases_.end()); }

    const std::vector<std::pair<std::string, double>>& phases() const { return phases_; }
    // "parse 12.3 ms, render 4.5 ms, ... (total 16.8 ms)"
    std::string str() const {
        std::string out;
        double total = 0;
        for (const auto& [name, ms] : phases_) {
            out += fmt::format("{}{} {:.1f} ms", out.empty() ? "" : ", ", name, ms);
            total += ms;
        }
        return fmt::format("{} (total {:.1f} ms)", out, total);
    }

private:
    std::vector<std::pair<std::string, double>> phases_;
    Clock::time_point last_ = Clock::now();
};

}  // namespace wgf::model
