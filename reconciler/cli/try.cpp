#include "cli/try.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sodium.h>

#include "cli/commands.hpp"
#include "cli/plan_text.hpp"
#include "inputs/desired_cache.hpp"
#include "inputs/lock.hpp"
#include "inputs/try_record.hpp"
#include "linux/command.hpp"
#include "linux/files.hpp"
#include "plan/ops.hpp"
#include "system/journal.hpp"

namespace wgf::cli {
namespace {

std::string hold_file(const std::string& state_dir) { return state_dir + "/try-held"; }
std::string held_record_file(const std::string& state_dir) { return state_dir + "/try-held.json"; }

backend::Result<std::optional<apply::TryRecord>> load_record(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::optional<apply::TryRecord>{};
    std::stringstream ss;
    ss << in.rdbuf();
    std::string why;
    auto t = inputs::try_record_from_json(ss.str(), &why);
    if (!t) return backend::Error{EINVAL, path + " is not readable: " + why};
    return std::optional<apply::TryRecord>(std::move(*t));
}

// The baseline's interfaces as they are now, with the snapshot's too when `all` (the last checks
// before the deadline: a rollback then plans from this read); one that cannot be read is left out.
apply::RecentDevices read_devices(Machine& m, const apply::TryRecord& t, bool all) {
    apply::RecentDevices out;
    std::set<std::string> names;
    for (const auto& b : t.baseline) names.insert(b.ifname);
    if (all)
        for (const auto& [ifname, w] : t.snapshot.interfaces) names.insert(ifname);
    for (const auto& n : names)
        if (auto d = m.backends->wg.read_device(n)) out.devices.insert_or_assign(n, std::move(*d));
    out.at = std::chrono::steady_clock::now();
    return out;
}

// The counters of the baseline's peers' interfaces (check_verdict compares them).
std::map<std::string, std::map<model::Key, backend::WgPeerStats>> stats_of(const apply::RecentDevices& read, const apply::TryRecord& t) {
    std::map<std::string, std::map<model::Key, backend::WgPeerStats>> out;
    for (const auto& b : t.baseline)
        if (auto d = read.devices.find(b.ifname); d != read.devices.end() && !out.contains(b.ifname))
            out.emplace(b.ifname, d->second.stats);
    return out;
}

// Why a rollback (or a repair of the state it restored) did not end verified; "" when it did.
std::string rollback_failure(const apply::RollbackResult& r) {
    if (r.error) return r.error->message;
    if (r.applied && !r.applied->ok()) return r.applied->error->message;
    if (r.leftover && !r.leftover->empty()) return fmt::format("{} difference(s) left after the rollback", r.leftover->ops.size());
    return {};
}

}  // namespace

std::string try_file(const std::string& state_dir) { return state_dir + "/try.json"; }

std::string utc_time(int64_t t) {
    char buf[32];
    time_t tt = static_cast<time_t>(t);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}


backend::Result<std::optional<apply::TryRecord>> load_try(const std::string& state_dir) { return load_record(try_file(state_dir)); }

backend::Status save_try(const std::string& state_dir, const apply::TryRecord& t) {
    return linux_::write_file_atomic(try_file(state_dir), inputs::try_record_to_json(t), 0600);
}

std::optional<std::string> load_hold(const std::string& state_dir) {
    std::ifstream in(hold_file(state_dir));
    std::string digest;
    if (!in || !std::getline(in, digest) || digest.empty()) return std::nullopt;
    return digest;
}

backend::Result<std::optional<apply::TryRecord>> load_held_record(const std::string& state_dir) {
    return load_record(held_record_file(state_dir));
}

std::string tried_digest(Machine& m, const apply::Desired& desired) {
    std::string text = inputs::desired_digest(desired) + "\n";
    for (const auto& [ifname, l] : desired.labels.interfaces) {
        auto key = m.keys.load(l.private_key_file);
        text += fmt::format("{} {}\n", ifname, key && key->has_value() ? (*key)->public_key().base64() : "-");
    }
    std::array<unsigned char, crypto_hash_sha256_BYTES> h{};
    crypto_hash_sha256(h.data(), reinterpret_cast<const unsigned char*>(text.data()), text.size());
    std::string hex(h.size() * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
    hex.pop_back();
    return hex;
}

void forget_kept_keys(const std::string& state_dir) {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(apply::kept_key_path(state_dir, "x")).parent_path(), ec);
}

// The record first: a hold is never newer than the state it keeps.
void save_hold(const std::string& state_dir, const apply::TryRecord& t) {
    (void)linux_::write_file_atomic(held_record_file(state_dir), inputs::try_record_to_json(t), 0600);
    (void)linux_::write_file_atomic(hold_file(state_dir), t.digest + "\n", 0600);
}

void clear_hold(const std::string& state_dir) {
    (void)unlink(hold_file(state_dir).c_str());
    (void)unlink(held_record_file(state_dir).c_str());
    forget_kept_keys(state_dir);
}

backend::Result<apply::TryRecord> begin_try(Machine& m, const std::string& state_dir, const std::optional<std::string>& keys_dir,
                                            const std::string& node, const apply::RunResult& run, const plan::Ownership& owned,
                                            const TryBegin& how) {
    // No try is pending here: keys kept for an earlier one (held) are that one's.
    forget_kept_keys(state_dir);
    auto t = apply::start_try(*m.backends, m.keys, run.desired, run.labels, *run.live, run.plan, owned,
                              {.state_dir = state_dir, .keys_dir = keys_dir, .node = node, .now = time(nullptr), .seconds = how.seconds});
    if (!t) return backend::Error{t.error().code, t.error().message + "; nothing applied"};
    t->probe = how.probe;
    t->manual = how.manual;
    t->digest = how.digest;
    t->pid = static_cast<int>(getpid());
    if (auto s = save_try(state_dir, *t); !s) {
        forget_kept_keys(state_dir);
        return backend::Error{s.error().code, s.error().message + "; nothing applied (a try is recorded before any change)"};
    }
    journal_try(m, state_dir,
                fmt::format("try {} started: window {} s, deadline {}{}", t->id, how.seconds, utc_time(t->deadline), how.detail));
    return t;
}

std::string describe_try(const apply::TryRecord& t, int64_t now) {
    std::string head = fmt::format("pending try {}, deadline {}", t.id, utc_time(t.deadline));
    if (!t.confirmed.empty()) return head + ", confirmed (" + t.confirmed + ")";
    if (now < t.deadline) return head + fmt::format(", rollback in {} s", t.deadline - now);
    return head + ", rollback overdue (the next apply or watch run rolls it back)";
}

void journal_try(Machine& m, const std::string& state_dir, const std::string& line, const backend::Status& result) {
    if (m.journal) {
        m.journal->record(line, result);
        m.journal->flush();
        return;
    }
    system::FileJournal j(state_dir);
    j.record(line, result);
}

VerdictCheck::VerdictCheck(Machine& m, std::string state_dir, apply::TryRecord t) : state_dir_(std::move(state_dir)), t_(std::move(t)) {
    recent_ = read_devices(m, t_, false);
    wait_.after = stats_of(recent_, t_);
}

std::optional<Verdict> VerdictCheck::step(Machine& m, const TrySay& say) {
    apply::TryOnDisk on_disk;
    if (auto rec = load_try(state_dir_)) {
        on_disk.gone = !*rec;
        if (*rec) on_disk.confirmed = (*rec)->confirmed;
    }
    auto probe = [this] {
        const int64_t left_ms = std::max<int64_t>(1000, (t_.deadline - time(nullptr)) * 1000);
        linux_::ShellCommands sh(static_cast<int>(std::min<int64_t>(left_ms, 30'000)));
        return sh.run(t_.probe);
    };
    const int64_t now = time(nullptr);
    // In the window's last second every device the rollback would read is read here, so a
    // rollback at the deadline plans from this read and reads the devices once, to verify.
    const bool last = t_.deadline - now <= 1;
    bool read = false;
    auto s = apply::check_verdict(
        t_, wait_, on_disk, now,
        [&] {
            recent_ = read_devices(m, t_, last);
            read = true;
            return stats_of(recent_, t_);
        },
        probe);
    if (!s.verdict && last && !read) recent_ = read_devices(m, t_, true);
    if (!s.say.empty()) say.info(s.say);
    return s.verdict;
}

Verdict wait_for_verdict(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const TrySay& say,
                         const std::function<void()>& tick, apply::RecentDevices* recent) {
    VerdictCheck check(m, state_dir, t);
    for (;;) {
        if (tick) tick();
        if (auto v = check.step(m, say)) {
            if (recent) *recent = check.take_recent();
            return *v;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
}

void confirm_try(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const std::string& how, const TrySay& say) {
    journal_try(m, state_dir, fmt::format("try {} confirmed ({})", t.id, how));
    (void)unlink(try_file(state_dir).c_str());
    clear_hold(state_dir);
    say.info(fmt::format("Try {} confirmed ({}): the change stays.", t.id, how));
}

bool roll_back_try(Machine& m, const std::string& state_dir, const apply::TryRecord& t, const std::string& why, const TrySay& say,
                   apply::RecentDevices* recent) {
    say.info(fmt::format("Rolling back try {}: {}", t.id, why));
    journal_try(m, state_dir, fmt::format("try {} rolling back: {}", t.id, why));
    auto r = apply::roll_back(*m.backends, m.keys, *m.state, m.journal.get(), t, time(nullptr), false, recent);
    if (say.timing) say.timing("timing of the rollback: " + r.timings.str());
    // Shown as a plan; each operation is journaled as it is applied.
    if (!r.plan.empty()) say.info(output::plan_text(r.plan, {.color = say.color, .notes = false}));
    const std::string failure = rollback_failure(r);
    if (!failure.empty()) {
        journal_try(m, state_dir, fmt::format("try {} rolled back", t.id), backend::Error{0, failure});
        say.error(fmt::format("rollback of try {} failed: {}; the record stays and the next run tries again", t.id, failure));
        return false;
    }
    journal_try(m, state_dir, fmt::format("try {} rolled back ({}): {} operation(s)", t.id, why, r.plan.ops.size()));
    (void)unlink(try_file(state_dir).c_str());
    if (!t.digest.empty()) save_hold(state_dir, t);  // the kept keys stay while it holds
    else forget_kept_keys(state_dir);
    say.info(fmt::format("Rolled back try {}: the node is as it was before it ({} operation(s)).", t.id, r.plan.ops.size()));
    return true;
}

int repair_held(Machine& m, const std::string& state_dir, const apply::TryRecord& held, const std::string& why, const TrySay& say) {
    auto r = apply::roll_back(*m.backends, m.keys, *m.state, m.journal.get(), apply::held_target(held), time(nullptr));
    if (say.timing) say.timing("timing of the repair: " + r.timings.str());
    const std::string failure = rollback_failure(r);
    if (r.plan.empty() && failure.empty()) return 0;
    if (!r.plan.empty()) {
        say.info(fmt::format("{}: drift from the state the rollback of try {} restored (held):", why, held.id));
        say.info(output::plan_text(r.plan, {.color = say.color, .notes = false}));
    }
    if (!failure.empty()) {
        journal_try(m, state_dir, fmt::format("try {} held: drift repaired ({})", held.id, why), backend::Error{0, failure});
        say.error(fmt::format("repair of the state try {}'s rollback restored failed: {}; the next run tries again", held.id, failure));
        return -1;
    }
    journal_try(m, state_dir, fmt::format("try {} held: drift repaired ({}): {} operation(s)", held.id, why, r.plan.ops.size()));
    say.info(fmt::format("Repaired: the node is as the rollback of try {} left it ({} operation(s)); the hold stays.", held.id,
                         r.plan.ops.size()));
    return static_cast<int>(r.plan.ops.size());
}

}  // namespace wgf::cli

namespace wgf::cli {

int cmd_confirm(const Globals& g) {
    std::string dir = model::Config{}.state_dir;
    if (g.state_dir) {
        dir = *g.state_dir;
    } else {
        auto l = load(g, {}, nullptr);
        if (l->fleet) dir = l->cfg().state_dir;
        else std::cerr << "wg-fleet: the file cannot be loaded: looking in " << dir << "\n";
    }
    auto lock = inputs::StateLock::acquire(dir, g.lock_timeout);
    if (!lock) {
        std::cerr << "wg-fleet: " << lock.error().message << "\n";
        return kError;
    }
    auto t = load_try(dir);
    if (!t) {
        std::cerr << "wg-fleet: " << t.error().message << "\n";
        return kError;
    }
    if (!*t) {
        std::cerr << "wg-fleet: no pending try in " << dir << "\n";
        return kError;
    }
    apply::TryRecord& rec = **t;
    const int64_t now = time(nullptr);
    if (!rec.confirmed.empty()) {
        std::cout << fmt::format("Try {} is already confirmed ({}).\n", rec.id, rec.confirmed);
        return kOk;
    }
    if (now >= rec.deadline) {
        std::cerr << fmt::format("wg-fleet: too late: {}\n", describe_try(rec, now));
        return kError;
    }
    model::Config cfg;
    cfg.state_dir = dir;
    Machine m(cfg);
    const TrySay say{.info = [](const std::string& line) { std::cout << line << "\n"; },
                     .error = [](const std::string& line) { std::cerr << "wg-fleet: " << line << "\n"; }};
    // Nobody waits for it any more (the apply was killed): settled here.
    if (rec.pid <= 0 || (kill(rec.pid, 0) != 0 && errno == ESRCH)) {
        confirm_try(m, dir, rec, "manual", say);
        return kOk;
    }
    rec.confirmed = "manual";
    if (auto s = save_try(dir, rec); !s) {
        std::cerr << "wg-fleet: " << s.error().message << "\n";
        return kError;
    }
    std::cout << fmt::format("Confirmed try {}; the process waiting for it (pid {}) keeps the change.\n", rec.id, rec.pid);
    return kOk;
}

}  // namespace wgf::cli
