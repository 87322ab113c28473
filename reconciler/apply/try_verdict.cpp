#include "apply/try_verdict.hpp"

#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace wgf::apply {
namespace {

VerdictStep settled(bool confirmed, std::string how) {
    return {.verdict = Verdict{.confirmed = confirmed, .how = std::move(how)}, .say = {}};
}

}  // namespace

VerdictStep check_verdict(const TryRecord& t, VerdictWait& w, const TryOnDisk& on_disk, int64_t now,
                          const std::function<PeerStats()>& stats, const std::function<backend::Status()>& probe) {
    if (on_disk.gone) return settled(true, "settled by another run");
    if (!on_disk.confirmed.empty()) return settled(true, on_disk.confirmed);
    if (now >= t.deadline) {
        if (t.manual) return settled(false, "no `wg-fleet confirm` before the deadline");
        if (!w.missing.empty()) return settled(false, fmt::format("deadline passed; not back: {}", fmt::join(w.missing, ", ")));
        if (!w.probe_error.empty()) return settled(false, fmt::format("deadline passed; the probe failed: {}", w.probe_error));
        return settled(false, "deadline passed before the first check");
    }
    if (t.manual) return {};
    w.missing = not_back(t.baseline, stats(), w.after, t.started);
    if (w.missing.empty()) {
        if (t.probe.empty())
            return settled(
                true, t.baseline.empty() ? "health (no peer was ok before)" : fmt::format("health: {} peer(s) back", t.baseline.size()));
        auto s = probe();
        if (s) return settled(true, t.baseline.empty() ? "probe" : fmt::format("health: {} peer(s) back; probe", t.baseline.size()));
        w.probe_error = s.error().message;
    }
    std::string line = !w.missing.empty()
                           ? fmt::format("waiting: {} of {} peer(s) back", t.baseline.size() - w.missing.size(), t.baseline.size())
                           : "waiting: the probe failed: " + w.probe_error;
    VerdictStep step;
    if (line != w.last_said) step.say = line;
    w.last_said = std::move(line);
    return step;
}

TryRecord held_target(const TryRecord& t) {
    TryRecord h = t;
    for (auto& [ifname, w] : h.snapshot.interfaces) {
        const auto set = t.owned_before.endpoints.find(ifname);
        for (auto& [key, p] : w.peers) {
            p.endpoint.reset();
            if (set == t.owned_before.endpoints.end()) continue;
            if (auto e = set->second.find(key); e != set->second.end()) p.endpoint = e->second;
        }
    }
    return h;
}

}  // namespace wgf::apply
