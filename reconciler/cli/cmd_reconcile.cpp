// plan, apply, status and keygen: one reconcile run for this node, printed or applied.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <future>
#include <iostream>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/machine.hpp"
#include "cli/plan_text.hpp"
#include "cli/try.hpp"
#include "inputs/desired_cache.hpp"
#include "inputs/lock.hpp"
#include "linux/files.hpp"
#include "plan/health.hpp"
#include "plan/rotation.hpp"
#include "system/desired_cache.hpp"
#include "system/journal.hpp"

namespace wgf::cli {
namespace {

// What plan's and apply's JSON both end with: the members and peers the run left alone, and why.
void add_notes_json(nlohmann::ordered_json& j, const apply::RunResult& r) {
    j["pending"] = r.plan.pending;
    j["foreign"] = r.plan.foreign;
    j["kept"] = r.plan.kept;
    j["conflicts"] = r.plan.conflicts;
    j["warnings"] = r.warnings;
}

// Whether text written to `fd` is coloured.
bool colour_on(output::Color when, int fd) {
    return output::color_enabled(when, isatty(fd) == 1, std::getenv("NO_COLOR"), std::getenv("TERM"));
}

void print_notes(const apply::RunResult& r, int quiet, std::ostream& out = std::cout) {
    if (quiet) return;
    for (const auto& w : r.warnings) std::cerr << "wg-fleet: warning: " << w << "\n";
    for (const auto& p : r.plan.pending) out << "pending: " << p << " (no public key yet)\n";
    for (const auto& f : r.plan.foreign) out << "foreign peer left alone: " << f << " (exclusive: true removes it)\n";
    for (const auto& k : r.plan.kept) out << "kept: " << k << "\n";
}

bool ci_format(output::Format f) { return f == output::Format::github || f == output::Format::gitlab; }

// Findings of one node's run for CI formats. Pending changes are warnings (the node does not
// match the fleet yet), conflicts errors (apply cannot fix them), pending members, foreign and
// kept peers notices; the run's own warnings warnings.
void add_run_findings(std::vector<output::Finding>& out, const std::string& node, const apply::RunResult& r, bool ops_pending) {
    auto add = [&](output::Finding::Level level, const char* check, std::string message) {
        out.push_back(output::Finding{.level = level, .check = check, .title = "wg-fleet: " + node, .message = std::move(message)});
    };
    using L = output::Finding::Level;
    for (const auto& w : r.warnings) add(L::warning, "wg-fleet/warning", w);
    if (ops_pending)
        for (const auto& op : r.plan.ops) add(L::warning, "wg-fleet/drift", "pending change: " + plan::describe(op));
    for (const auto& c : r.plan.conflicts) add(L::error, "wg-fleet/conflict", c);
    for (const auto& p : r.plan.pending) add(L::notice, "wg-fleet/pending", "pending: " + p + " (no public key yet)");
    for (const auto& f : r.plan.foreign) add(L::notice, "wg-fleet/foreign", "foreign peer left alone: " + f);
}

output::Finding run_error(const std::string& node, const std::string& message) {
    return output::Finding{
        .level = output::Finding::Level::error, .check = "wg-fleet/run", .title = "wg-fleet: " + node, .message = message};
}

// -v: where the run spent its time (loading the file, then each phase of the engine).
void print_timings(const Globals& g, const model::Timings& load, const apply::RunResult& r) {
    if (g.verbose <= 0) return;
    model::Timings all = load;
    all.append(r.timings);
    std::cerr << "wg-fleet: timing: " << all.str() << "\n";
    if (!r.read_timings.phases().empty()) std::cerr << "wg-fleet: timing of the read, alongside: " << r.read_timings.str() << "\n";
}

// One reconcile run's setup: the file loaded and validated, the machine, and the bulk of the
// live state read on a second thread while the file is parsed, validated and rendered.
struct Session {
    // apply's lock on the state directory, taken before anything is read: a read that another
    // run's apply could change under it would plan from stale facts. Released last.
    std::optional<inputs::StateLock> lock;
    std::string locked_dir;
    std::optional<backend::Error> lock_error;
    std::string node;
    std::set<std::string> adopt;
    // The read starts before the file is parsed, on the interfaces the state directory records
    // as ours (--state-dir, else the default one), with backends of its own: reading needs
    // nothing from the file. If the parsed file gives the node other interfaces, that read is
    // left to finish unused and a second one starts. Members go in reverse order: every read
    // finishes before the backends it uses.
    std::unique_ptr<Machine> reader;
    std::unique_ptr<apply::Prefetch> guessed;
    std::unique_ptr<Machine> machine;
    std::unique_ptr<apply::Prefetch> prefetch;
    // Null when the desired state came from the cache.
    std::unique_ptr<Loaded> loaded;
    apply::Desired desired;
    std::string state_dir;
    model::Timings timings;  // the cache's lookup, loading the file and rendering
    // The desired-state cache: null with --no-cache. `to_store` is the entry an apply that ends
    // verified leaves (all but the desired state); unset on a hit, or where the file's state_dir
    // is not the directory looked in.
    std::unique_ptr<system::FileDesiredCache> cache;
    std::optional<inputs::CachedDesired> to_store;
    std::vector<inputs::CacheKey> inputs_before;  // of to_store's inputs, when it was made
    // tried_digest of `desired`, when a try or a hold needs it (before the run takes it).
    std::string digest;
    // --no-cache: the firewall table is read whatever the last verified apply kept of it.
    bool no_cache = false;

    apply::RunResult run(apply::Mode mode, int64_t now,
                         std::function<backend::Status(const apply::RunResult&, const plan::Ownership&)> before_change = {}) {
        auto e = machine->engine();
        if (no_cache) e.kept_firewall = nullptr;
        e.adopt = adopt;
        e.before_change = std::move(before_change);
        // An apply that keeps a new cache entry needs the desired state as rendered afterwards.
        return e.run(to_store ? apply::Desired(desired) : std::move(desired), node, mode, now, prefetch ? prefetch.get() : guessed.get());
    }
};

// `lock`: hold the state directory's lock for the session (apply).
std::unique_ptr<Session> start(const Globals& g, int64_t now, bool lock = false, std::vector<output::Finding>* findings = nullptr) {
    auto s = std::make_unique<Session>();
    s->node = this_node(g);
    s->no_cache = g.no_cache;
    // What the last verified apply kept of the firewall, for the reads started here: a record is
    // a fact about the kernel's ruleset, whichever state directory holds it. It is worth relying
    // on when the desired state comes from the cache (a no-op, most likely: the desired rules
    // are those the record has); on a miss the file changed, and the table is read alongside
    // the parse as before. The guessed read starts before the lookup and waits for its verdict
    // after the devices.
    std::promise<std::optional<backend::KeptFirewall>> guessed_kept;
    bool cache_hit = false, kept_told = false;
    // Before anything can wait for the guessed read (settled() may drop it).
    auto tell_guessed = [&] {
        if (kept_told) return;
        kept_told = true;
        guessed_kept.set_value(cache_hit && s->reader && !g.no_cache ? s->reader->kept_firewall->load() : std::nullopt);
    };
    auto kept_now = [&](Machine& m, bool hit) {
        std::promise<std::optional<backend::KeptFirewall>> p;
        p.set_value(hit && !g.no_cache ? m.kept_firewall->load() : std::nullopt);
        return p.get_future().share();
    };
    model::Config defaults;
    if (g.state_dir) defaults.state_dir = *g.state_dir;
    auto take_lock = [&](const std::string& dir) {
        auto l = inputs::StateLock::acquire(dir, g.lock_timeout);
        if (!l) return s->lock_error = l.error(), false;
        s->lock.reset();
        s->lock.emplace(std::move(*l));
        s->locked_dir = dir;
        return true;
    };
    if (auto guess = system::recorded_interfaces(defaults.state_dir); !guess.empty()) {
        if (!lock || take_lock(defaults.state_dir)) {
            s->reader = std::make_unique<Machine>(defaults);
            s->guessed = std::make_unique<apply::Prefetch>(*s->reader->backends, std::move(guess), now, guessed_kept.get_future().share());
        }
    }
    if (s->lock_error) {
        std::cerr << "wg-fleet: " << s->lock_error->message << "\n";
        return nullptr;
    }
    // The settings of the file are known: the lock, the backends, and the read of the node's
    // interfaces.
    auto settled = [&](const model::Config& cfg, std::set<std::string> want) {
        // The guessed read ran under another directory's lock, or none: not this node's facts.
        bool guess_usable = s->guessed && (!lock || s->locked_dir == cfg.state_dir);
        if (lock && s->locked_dir != cfg.state_dir && !take_lock(cfg.state_dir)) return;
        s->machine = std::make_unique<Machine>(cfg);
        if (!guess_usable) s->guessed.reset();
        if (!s->guessed || s->guessed->interfaces() != want)
            s->prefetch = std::make_unique<apply::Prefetch>(*s->machine->backends, std::move(want), now, kept_now(*s->machine, cache_hit));
    };
    // The cache lives in the state directory known before the file is read.
    inputs::CacheContext ctx;
    if (!g.no_cache) {
        ctx = inputs::CacheContext{.build_id = system::build_id(), .node = s->node, .options = load_options(g)};
        s->cache = std::make_unique<system::FileDesiredCache>(defaults.state_dir);
        s->timings.restart();
        std::string why;
        auto hit = inputs::lookup_cached(*s->cache, ctx, &why);
        s->timings.lap("cache");
        cache_hit = hit.has_value();
        tell_guessed();
        if (g.verbose > 0)
            std::cerr << (hit ? "wg-fleet: desired state from the cache: the inputs are those of the last verified apply\n"
                              : fmt::format("wg-fleet: desired state not from the cache: {}\n", why));
        if (hit) {
            if (g.quiet == 0) std::cerr << (g.verbose > 0 ? hit->notes_each : hit->notes);
            model::Config cfg;
            cfg.state_dir = hit->desired.state_dir;
            cfg.keys_dir = hit->desired.keys_dir;
            cfg.userspace = hit->userspace;
            settled(cfg, apply::interface_names(hit->desired.state));
            if (s->lock_error) {
                std::cerr << "wg-fleet: " << s->lock_error->message << "\n";
                return nullptr;
            }
            s->desired = std::move(hit->desired);
            s->state_dir = cfg.state_dir;
            return s;
        }
    }
    tell_guessed();
    s->loaded = load(
        g, [&](const model::Config& cfg) { settled(cfg, apply::interfaces_of(cfg, s->node)); }, findings);
    if (s->lock_error) {
        std::cerr << "wg-fleet: " << s->lock_error->message << "\n";
        if (findings) findings->push_back(run_error(s->node, s->lock_error->message));
        return nullptr;
    }
    if (!s->loaded->fleet) return nullptr;
    if (!s->loaded->fleet->index.count(s->node)) {
        const std::string message = not_in_fleets(*s->loaded->fleet, s->node, g.config);
        std::cerr << "wg-fleet: " << message << "\n";
        if (findings) findings->push_back(run_error(s->node, message));
        return nullptr;
    }
    const model::Config& cfg = s->loaded->cfg();
    s->timings.append(s->loaded->timings);
    s->timings.restart();
    s->desired = apply::render_desired(*s->loaded->fleet, s->node);
    s->state_dir = cfg.state_dir;
    s->timings.lap("render");
    if (lock && s->cache && !ctx.build_id.empty() && cfg.state_dir == defaults.state_dir) {
        s->to_store = inputs::cache_entry(ctx, *s->loaded, &s->inputs_before);
        s->timings.lap("cache key");
    }
    return s;
}

// plan and status: the run in plan mode, with -v's timings. Null after saying why it failed.
struct Planned {
    std::unique_ptr<Session> session;
    apply::RunResult r;
};
std::optional<Planned> run_plan(const Globals& g, int64_t now, const std::vector<std::string>& adopt = {},
                                std::vector<output::Finding>* findings = nullptr) {
    auto session = start(g, now, false, findings);
    if (!session) return std::nullopt;
    session->adopt.insert(adopt.begin(), adopt.end());
    if (load_hold(session->state_dir)) session->digest = tried_digest(*session->machine, session->desired);
    auto r = session->run(apply::Mode::plan, now);
    print_timings(g, session->timings, r);
    if (r.error) {
        std::cerr << "wg-fleet: " << r.error->message << "\n";
        if (findings) findings->push_back(run_error(session->node, r.error->message));
        return std::nullopt;
    }
    return Planned{std::move(session), std::move(r)};
}

// plan and status: a pending try and its deadline, and a desired state a rollback holds back.
void print_try_state(const Session& session, std::ostream& out) {
    const int64_t now = time(nullptr);
    auto t = load_try(session.state_dir);
    if (!t) std::cerr << "wg-fleet: " << t.error().message << "\n";
    else if (*t) out << describe_try(**t, now) << "\n";
    if (auto held = load_hold(session.state_dir); held && *held == session.digest)
        out << "held: the file's desired state is the one a try rolled back; apply refuses it until the file changes (or: apply "
               "--try to try it again, apply --force-rolled-back to apply it anyway)\n";
}

}  // namespace

// github, gitlab: the plan as text on stderr, its findings on stdout.
int cmd_plan(const Globals& g, output::Format format, bool detailed_exitcode, const std::vector<std::string>& adopt, output::Color color) {
    std::vector<output::Finding> findings;
    auto planned = run_plan(g, time(nullptr), adopt, ci_format(format) || format == output::Format::json ? &findings : nullptr);
    if (!planned) {
        if (format == output::Format::json) std::cout << output::findings_json(findings);
        print_findings(g, format, findings);
        return kError;
    }
    const std::string& node = planned->session->node;
    const auto& r = planned->r;
    print_try_state(*planned->session, format == output::Format::text ? std::cout : std::cerr);
    if (format == output::Format::json) {
        std::cout << output::plan_json(node, r.plan, r.warnings);
    } else {
        const bool text = format == output::Format::text;
        if (!g.quiet)
            for (const auto& w : r.warnings) std::cerr << "wg-fleet: warning: " << w << "\n";
        (text ? std::cout : std::cerr) << output::plan_text(
            r.plan, {.color = colour_on(color, text ? STDOUT_FILENO : STDERR_FILENO), .notes = g.quiet == 0});
    }
    if (ci_format(format)) {
        add_run_findings(findings, node, r, true);
        print_findings(g, format, findings);
    }
    // A conflict is not "no changes": the node does not match the fleet.
    int rc = detailed_exitcode && !r.plan.converged() ? kChanges : kOk;
    keep_until_exit(std::move(planned->r));
    return rc;
}

namespace {

// What apply prints once its run is over, and its exit code. `out` takes what text prints on
// stdout (stderr in the other formats, whose stdout is their own).
int report_apply(const Globals& g, Session& session, const apply::RunResult& r, std::ostream& out, bool color) {
    const std::string& node = session.node;
    const Machine& m = *session.machine;
    print_timings(g, session.timings, r);
    if (m.keys.loose_permissions)
        std::cerr << fmt::format("wg-fleet: warning: {} is readable by group or others; it should be 0600\n", *m.keys.loose_permissions);
    if (r.error) {
        std::cerr << "wg-fleet: " << r.error->message << "\n";
        return kError;
    }
    for (const auto& f : r.generated_keys) out << fmt::format("generated the private key of {} for fleet {}\n", node, f);
    for (const auto& f : r.rotation.own_switched)
        out << fmt::format("switched {}'s key for fleet {} to the next key (wg-fleet rotate) and published it\n", node, f);
    if (r.applied) {
        if (!g.quiet)
            for (const auto& line : r.applied->done) out << output::mark_line(line, color) << "\n";
        if (!r.applied->ok()) {
            std::cerr << "wg-fleet: apply stopped: " << r.applied->error->message << "\n";
            for (const auto& line : r.applied->not_done) std::cerr << "not done: " << line << "\n";
            if (r.leftover)
                std::cerr << fmt::format("wg-fleet: read again: {} operation{} still to do; the next apply continues from there\n",
                                         r.leftover->ops.size(), r.leftover->ops.size() == 1 ? "" : "s");
            return kError;
        }
    }
    print_notes(r, g.quiet, out);
    if (!r.plan.conflicts.empty()) {
        for (const auto& c : r.plan.conflicts) std::cerr << "wg-fleet: " << c << "\n";
        std::cerr << fmt::format(
            "wg-fleet: everything else applied; {} conflict{} left: remove or move each file, or make its first "
            "line \"{}\" to hand it over to wg-fleet\n",
            r.plan.conflicts.size(), r.plan.conflicts.size() == 1 ? "" : "s", model::kFileMarker);
        return kError;
    }
    if (r.converged_with_leftover()) {
        std::cerr << "wg-fleet: bug: after a successful apply the node still differs from the fleet:\n";
        for (const auto& op : r.leftover->ops) std::cerr << "  " << plan::describe(op) << "\n";
        std::cerr << "Please report this with the output of `wg-fleet plan -v`.\n";
        return kError;
    }
    if (session.to_store) {
        // Verified: the node matches what this desired state says, so the next run with the
        // same inputs may start from it; unless an input changed since it was loaded (a key
        // this run generated or published, or another writer): then the next run loads again.
        if (inputs::input_digests(session.to_store->inputs) != session.inputs_before) {
            if (g.verbose > 0) std::cerr << "wg-fleet: desired state not kept: a key file or published key changed during the run\n";
        } else {
            session.to_store->desired = std::move(session.desired);
            auto saved = session.cache->save(inputs::encode_cached(*session.to_store));
            if (g.verbose > 0)
                std::cerr << (saved ? fmt::format("wg-fleet: desired state kept in {} for the next run\n", session.cache->path())
                                    : fmt::format("wg-fleet: desired state not kept: {}\n", saved.error().message));
        }
    }
    if (!g.quiet)
        out << (r.plan.empty() ? "No changes: the node matches the fleet.\n"
                               : fmt::format("Applied {} operation{}; the node matches the fleet.\n", r.plan.ops.size(),
                                             r.plan.ops.size() == 1 ? "" : "s"));
    return kOk;
}

// apply --format json: what the run did, in the shape of plan's JSON where they overlap.
nlohmann::ordered_json apply_json(const std::string& node, const apply::RunResult& r, int rc) {
    nlohmann::ordered_json j;
    j["version"] = 1;
    j["node"] = node;
    j["ok"] = rc == kOk;
    j["error"] = r.error                         ? nlohmann::ordered_json(r.error->message)
                 : r.applied && !r.applied->ok() ? nlohmann::ordered_json(r.applied->error->message)
                                                 : nlohmann::ordered_json(nullptr);
    j["done"] = r.applied ? r.applied->done : std::vector<std::string>{};
    j["not_done"] = r.applied ? r.applied->not_done : std::vector<std::string>{};
    j["generated_keys"] = r.generated_keys;
    j["switched_keys"] = r.rotation.own_switched;
    add_notes_json(j, r);
    return j;
}

// github, gitlab: what failed or is left (errors), conflicts, the run's warnings and notes;
// an apply that converged reports no error.
void add_apply_findings(std::vector<output::Finding>& out, const std::string& node, const apply::RunResult& r) {
    if (r.error) out.push_back(run_error(node, r.error->message));
    if (r.applied && !r.applied->ok()) {
        out.push_back(run_error(node, "apply stopped: " + r.applied->error->message));
        for (const auto& line : r.applied->not_done) out.push_back(run_error(node, "not done: " + line));
    }
    add_run_findings(out, node, r, false);
}

}  // namespace

namespace {

// What apply does about a pending try before its own run: nullopt to go on, else its exit code.
// A confirmed one is settled; one past its deadline is rolled back and the run does nothing
// else; one still in its window refuses the run.
std::optional<int> settle_pending(Session& session, const TrySay& say) {
    const std::string& dir = session.state_dir;
    auto pending = load_try(dir);
    if (!pending) {
        std::cerr << "wg-fleet: " << pending.error().message << "; nothing applied (remove it only once the node is as you want it)\n";
        return kError;
    }
    if (!*pending) return std::nullopt;
    const apply::TryRecord& t = **pending;
    const int64_t now = time(nullptr);
    if (!t.confirmed.empty()) {
        confirm_try(*session.machine, dir, t, t.confirmed, say);
        return std::nullopt;
    }
    if (now < t.deadline) {
        std::cerr << fmt::format("wg-fleet: {}: confirm it with `wg-fleet confirm`, or wait for its rollback; nothing applied\n",
                                 describe_try(t, now));
        return kError;
    }
    if (roll_back_try(*session.machine, dir, t, "its deadline passed without confirmation (found by a later run)", say))
        std::cerr << "wg-fleet: this run rolled back an expired try and did nothing else\n";
    return kError;
}

}  // namespace

int cmd_apply(const Globals& g, const std::vector<std::string>& adopt, output::Format format, output::Color color,
              const TryOptions& tried) {
    int64_t now = time(nullptr);
    std::vector<output::Finding> findings;
    auto session = start(g, now, true, ci_format(format) ? &findings : nullptr);
    if (!session) {
        print_findings(g, format, findings);
        if (format == output::Format::json)
            std::cout
                << nlohmann::ordered_json{{"node", this_node(g)}, {"ok", false}, {"error", "nothing applied: see standard error"}}.dump(2)
                << "\n";
        return kError;
    }
    session->adopt.insert(adopt.begin(), adopt.end());
    session->machine->journal = std::make_unique<system::FileJournal>(session->state_dir);
    const bool text = format == output::Format::text;
    std::ostream& out = text ? std::cout : std::cerr;
    const bool color_on = colour_on(color, text ? STDOUT_FILENO : STDERR_FILENO);
    const TrySay say{.info = [&out](const std::string& line) { out << line << (line.ends_with('\n') ? "" : "\n") << std::flush; },
                     .error = [](const std::string& line) { std::cerr << "wg-fleet: " << line << "\n"; },
                     .color = color_on,
                     .timing =
                         [&g](const std::string& line) {
                             if (g.verbose > 0) std::cerr << "wg-fleet: " << line << "\n";
                         }};
    if (auto rc = settle_pending(*session, say)) return *rc;
    // A desired state a rollback took back is not applied again unless asked to.
    const std::string& dir = session->state_dir;
    const bool trying = tried.seconds.has_value();
    if (auto held = load_hold(dir); held || trying) {
        session->digest = tried_digest(*session->machine, session->desired);
        switch (apply::hold_verdict(held, session->digest, trying, tried.force_rolled_back)) {
            case apply::Hold::none:
                if (held) clear_hold(dir);
                break;
            case apply::Hold::held:
                std::cerr << "wg-fleet: the file's desired state is the one a try rolled back; nothing applied. Edit the file, "
                             "or run `wg-fleet apply --try` to try it again, or `wg-fleet apply --force-rolled-back` to apply it "
                             "anyway\n";
                return kError;
            case apply::Hold::retried: break;
        }
    }
    std::optional<apply::TryRecord> started;
    std::function<backend::Status(const apply::RunResult&, const plan::Ownership&)> hook;
    if (trying)
        hook = [&](const apply::RunResult& run, const plan::Ownership& owned) -> backend::Status {
            auto t = begin_try(
                *session->machine, dir, session->desired.keys_dir, session->node, run, owned,
                {.seconds = *tried.seconds,
                 .probe = tried.probe,
                 .manual = tried.manual,
                 .digest = session->digest,
                 .detail = fmt::format("{}{}", tried.manual ? ", manual" : "", tried.probe.empty() ? "" : ", probe " + tried.probe)});
            if (!t) return t.error();
            started = std::move(*t);
            return backend::Status::ok();
        };
    auto r = session->run(apply::Mode::apply, now, std::move(hook));
    int rc = report_apply(g, *session, r, out, color_on);
    record_last_run(dir, now, r);
    // The rolled-back state applied anyway: it is the one in force now, and watch must not take
    // the node back to the state the rollback had restored.
    if (!trying && tried.force_rolled_back && rc == kOk) clear_hold(dir);
    if (started) {
        // The try's change is in force (or partly, after a failure): from here on it ends
        // confirmed or rolled back.
        Verdict verdict;
        apply::RecentDevices recent;  // the devices as the wait last read them: the rollback plans from them
        if (rc != kOk) {
            verdict = {.confirmed = false, .how = "the try's apply did not converge"};
        } else {
            say.info(fmt::format("Try {} applied; {}. {}.", started->id,
                                 started->manual ? "run `wg-fleet confirm` to keep it, else it is rolled back"
                                                 : std::string("waiting for every peer that was ok to come back") +
                                                       (started->probe.empty() ? "" : " and the probe to succeed") +
                                                       " (or `wg-fleet confirm`), else it is rolled back",
                                 describe_try(*started, time(nullptr))));
            // Others may run meanwhile (confirm, plan, status); another apply or watch sees the record.
            session->lock.reset();
            verdict = wait_for_verdict(*session->machine, dir, *started, say, {}, &recent);
            auto relock = inputs::StateLock::acquire(dir, g.lock_timeout);
            if (!relock) {
                std::cerr << "wg-fleet: " << relock.error().message << "; the try stays pending: the next run after its deadline "
                          << "rolls it back\n";
                return kError;
            }
            session->lock.emplace(std::move(*relock));
            // `wg-fleet confirm` may have come in while the lock was taken again.
            if (auto again = load_try(dir); !verdict.confirmed && again && *again && !(*again)->confirmed.empty())
                verdict = {.confirmed = true, .how = (*again)->confirmed};
        }
        if (verdict.confirmed) {
            confirm_try(*session->machine, dir, *started, verdict.how, say);
        } else {
            roll_back_try(*session->machine, dir, *started, verdict.how, say, &recent);
            rc = kError;
        }
    } else if (trying && rc == kOk && r.plan.empty()) {
        say.info("Nothing to try: the node already matches the fleet.");
    }
    if (format == output::Format::json) std::cout << apply_json(session->node, r, rc).dump(2) << "\n";
    if (ci_format(format)) {
        add_apply_findings(findings, session->node, r);
        print_findings(g, format, findings);
    }
    keep_until_exit(std::move(r));
    return rc;
}

namespace {

// status --format prometheus: the same facts as the JSON, with the health verdicts and the last
// run's time and outcome.
output::NodeMetrics node_metrics(const nlohmann::ordered_json& j, const apply::RunResult& r, const std::string& state_dir) {
    output::NodeMetrics m{
        .node = j["node"].get<std::string>(), .drift_operations = r.plan.ops.size(), .conflicts = r.plan.conflicts.size()};
    for (const auto& ij : j["interfaces"]) {
        const std::string fleet = ij["fleet"].get<std::string>(), dev = ij["interface"].get<std::string>();
        m.interfaces.push_back({.fleet = fleet, .interface = dev, .up = ij["up"].get<bool>()});
        for (const auto& pj : ij["peers"])
            m.peers.push_back({.fleet = fleet,
                               .interface = dev,
                               .name = pj["name"].get<std::string>(),
                               .public_key = pj["public_key"].get<std::string>(),
                               .last_handshake = pj["latest_handshake"].get<int64_t>(),
                               .rx_bytes = pj["rx_bytes"].get<uint64_t>(),
                               .tx_bytes = pj["tx_bytes"].get<uint64_t>(),
                               .health = *plan::parse_health(pj["health"].get<std::string>())});
        for (const auto& p : ij["pending"])
            m.peers.push_back({.fleet = fleet, .interface = dev, .name = p.get<std::string>(), .health = plan::Health::pending});
    }
    // Every run writes last-run; a state directory from before it has only the journal, whose last
    // record is the last run that applied an operation.
    if (auto run = system::read_last_run(state_dir)) m.last_apply = output::LastApply{.time = run->time, .ok = run->ok};
    else if (auto last = system::read_last_journal_record(state_dir)) m.last_apply = output::LastApply{.time = last->time, .ok = last->ok};
    return m;
}

// Written whole or not at all: node_exporter's textfile collector may read the file any time.
int write_output(const std::string& path, const std::string& content) {
    auto s = linux_::write_file_atomic(path, content, 0644);
    if (!s) {
        std::cerr << "wg-fleet: " << s.error().message << "\n";
        return kError;
    }
    return kOk;
}

}  // namespace

namespace {

output::Status status_of(const std::string& node, const apply::RunResult& r, int64_t now) {
    output::Status st{.node = node};
    for (const auto& [ifname, want] : r.desired.interfaces) {
        const auto& labels = r.labels.of(ifname);
        output::StatusInterface si{.interface = ifname, .fleet = labels.fleet};
        // The key's age: when its file was last written (generated, or a rotation's switch).
        // A switch due now shows the key file it comes from; the age is the current key's.
        std::string key_file = labels.private_key_file;
        if (key_file.ends_with(".next")) key_file.resize(key_file.size() - 5);
        if (struct stat kst{}; stat(key_file.c_str(), &kst) == 0) si.key_changed = static_cast<int64_t>(kst.st_mtim.tv_sec);
        auto live = r.live->state.interfaces.find(ifname);
        if (live != r.live->state.interfaces.end()) {
            si.up = live->second.up;
            si.listen_port = live->second.listen_port;
        }
        const std::map<model::Key, backend::WgPeerStats>* stats = nullptr;
        if (auto it = r.live->stats.find(ifname); it != r.live->stats.end()) stats = &it->second;
        for (const auto& [key, p] : want.peers) {
            const model::WgPeer* lp = nullptr;
            if (live != r.live->state.interfaces.end())
                if (auto it = live->second.peers.find(key); it != live->second.peers.end()) lp = &it->second;
            backend::WgPeerStats ps;
            if (stats)
                if (auto it = stats->find(key); it != stats->end()) ps = it->second;
            output::StatusPeer sp{.name = r.labels.peer_name(ifname, key),
                                  .public_key = key.base64(),
                                  .allowed_ips = {},
                                  .endpoint = lp && lp->endpoint ? std::optional(lp->endpoint->str()) : std::nullopt,
                                  .keepalive = p.keepalive,
                                  .last_handshake = ps.last_handshake,
                                  .rx_bytes = ps.rx_bytes,
                                  .tx_bytes = ps.tx_bytes,
                                  // The keepalive the fleet wants: a peer not configured yet has none live.
                                  .health = plan::health({.last_handshake = ps.last_handshake, .keepalive = p.keepalive}, now),
                                  .configured = lp != nullptr};
            for (const auto& a : p.allowed_ips) sp.allowed_ips.push_back(a.str());
            si.peers.push_back(std::move(sp));
        }
        // People read peers by name.
        std::sort(si.peers.begin(), si.peers.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
        si.pending = labels.pending;
        st.interfaces.push_back(std::move(si));
    }
    for (const auto& op : r.plan.ops) st.drift.push_back(plan::describe(op));
    st.foreign = r.plan.foreign;
    st.conflicts = r.plan.conflicts;
    return st;
}

// status --json: version 1 of its shape (README, "status --json").
nlohmann::ordered_json status_json(const output::Status& st, int64_t st_now) {
    nlohmann::ordered_json j;
    j["version"] = 1;
    j["node"] = st.node;
    auto& ifs = j["interfaces"] = nlohmann::ordered_json::array();
    for (const auto& si : st.interfaces) {
        nlohmann::ordered_json ij{{"interface", si.interface}, {"fleet", si.fleet}, {"up", si.up}};
        if (si.listen_port) ij["listen_port"] = *si.listen_port;
        ij["key_changed"] = si.key_changed ? nlohmann::ordered_json(*si.key_changed) : nlohmann::ordered_json(nullptr);
        ij["key_age_seconds"] = si.key_changed ? nlohmann::ordered_json(std::max<int64_t>(0, st_now - *si.key_changed))
                                               : nlohmann::ordered_json(nullptr);
        auto& peers = ij["peers"] = nlohmann::ordered_json::array();
        for (const auto& p : si.peers)
            peers.push_back({{"name", p.name},
                             {"public_key", p.public_key},
                             {"configured", p.configured},
                             {"allowed_ips", p.allowed_ips},
                             {"endpoint", p.endpoint ? nlohmann::ordered_json(*p.endpoint) : nlohmann::ordered_json(nullptr)},
                             {"keepalive", p.keepalive},
                             {"latest_handshake", p.last_handshake},
                             {"rx_bytes", p.rx_bytes},
                             {"tx_bytes", p.tx_bytes},
                             {"health", plan::to_string(p.health)},
                             {"healthy", output::healthy(p.health)}});
        ij["pending"] = si.pending;
        ifs.push_back(std::move(ij));
    }
    j["drift"] = st.drift;
    j["foreign"] = st.foreign;
    j["conflicts"] = st.conflicts;
    const output::StatusSummary sum = output::summarize(st);
    j["summary"] = {{"peers", sum.peers},       {"healthy", sum.healthy},           {"pending", sum.pending},
                    {"drift", st.drift.size()}, {"conflicts", st.conflicts.size()}, {"ok", sum.ok}};
    return j;
}

}  // namespace

int cmd_status(const Globals& g, output::Format format, const std::string& output_file, bool check) {
    int64_t now = time(nullptr);
    std::vector<output::Finding> findings;
    const bool json = format == output::Format::json;
    auto planned = run_plan(g, now, {}, ci_format(format) || json ? &findings : nullptr);
    if (!planned) {
        // In JSON, a failure is check's diagnostics shape: the file's, then the run's error.
        if (json) std::cout << output::findings_json(findings);
        print_findings(g, format, findings);
        return kError;
    }
    const std::string& node = planned->session->node;
    const auto& r = planned->r;
    const output::Status st = status_of(node, r, now);
    nlohmann::ordered_json j = status_json(st, now);
    // A key switch to come (`wg-fleet rotate`): the earliest this node knows of, own or a peer's.
    j["next_key_switch"] = r.rotation.next_switch ? nlohmann::ordered_json(plan::format_rfc3339(*r.rotation.next_switch))
                                                  : nlohmann::ordered_json(nullptr);
    // A pending try, only when there is one (the shape stays version 1).
    if (auto t = load_try(planned->session->state_dir); t && *t)
        j["try"] = {{"id", (*t)->id},
                    {"deadline", (*t)->deadline},
                    {"confirmed", (*t)->confirmed},
                    {"manual", (*t)->manual},
                    {"description", describe_try(**t, now)}};
    // --check: the exit code says whether the node is healthy and converged, for monitoring.
    const int rc = check && !output::summarize(st).ok ? kChanges : kOk;
    switch (format) {
        case output::Format::text: break;
        case output::Format::json:
            if (!output_file.empty()) return write_output(output_file, j.dump(2) + "\n") == kOk ? rc : kError;
            std::cout << j.dump(2) << "\n";
            return rc;
        case output::Format::prometheus: {
            std::string text = output::prometheus_text(node_metrics(j, r, planned->session->state_dir));
            if (!output_file.empty()) return write_output(output_file, text) == kOk ? rc : kError;
            std::cout << text;
            return rc;
        }
        case output::Format::github:
        case output::Format::gitlab: {
            // Drift is a warning; a peer whose keepalives should keep it fresh but whose handshake is
            // old is one too.
            add_run_findings(findings, node, r, true);
            for (const auto& si : st.interfaces)
                for (const auto& p : si.peers)
                    if (p.health == plan::Health::stale)
                        findings.push_back(
                            {.level = output::Finding::Level::warning,
                             .check = "wg-fleet/health",
                             .title = "wg-fleet: " + node,
                             .message = fmt::format("peer {} on {} is stale: latest handshake {}, although keepalives are set", p.name,
                                                    si.interface, output::human_ago(now, p.last_handshake))});
            print_findings(g, format, findings);
            return rc;
        }
    }
    print_try_state(*planned->session, std::cout);
    std::cout << output::status_text(st, now);
    if (r.rotation.next_switch)
        std::cout << fmt::format("key switch pending at {} (in {}s; wg-fleet rotate)\n", plan::format_rfc3339(*r.rotation.next_switch),
                                 std::max<int64_t>(0, *r.rotation.next_switch - now));
    return rc;
}

int cmd_keygen(const Globals& g, output::Format format) {
    // In a CI format stdout holds only that format: the fleet file's findings and one notice per
    // key generated; json lists every key of the node (version 1 of its shape, README "JSON
    // output"), or, on an error, check's diagnostics with the error.
    const bool ci = format == output::Format::github || format == output::Format::gitlab;
    const bool json = format == output::Format::json;
    std::vector<output::Finding> findings;
    auto l = load(g, {}, &findings);
    auto fail = [&](const std::string& message) {
        std::cerr << "wg-fleet: " << message << "\n";
        if (json) std::cout << output::diagnostics_json(l->diags, l->sources, {message});
        if (ci) {
            findings.push_back({.level = output::Finding::Level::error, .check = "wg-fleet/keygen", .title = "keygen", .message = message});
            print_findings(g, format, findings);
        }
        return kError;
    };
    if (!l->fleet) {
        if (ci) print_findings(g, format, findings);
        if (json) std::cout << output::diagnostics_json(l->diags, l->sources);
        return kError;
    }
    const std::string node = this_node(g);
    if (!l->fleet->index.count(node)) return fail(not_in_fleets(*l->fleet, node, g.config));
    system::FileKeyStore keys;
    const auto& cfg = l->cfg();
    auto lock = inputs::StateLock::acquire(cfg.state_dir, g.lock_timeout);
    if (!lock) return fail(lock.error().message);
    nlohmann::ordered_json listed = nlohmann::ordered_json::array();
    for (const auto& mb : l->fleet->index.at(node)) {
        bool generated = false;
        auto key = apply::ensure_node_key(keys, cfg, mb.fleet, &generated);
        if (!key) return fail(key.error().message);
        model::Key pub = key->public_key();
        std::optional<std::string> published;
        if (cfg.keys_dir) {
            published = plan::published_key_path(*cfg.keys_dir, mb.fleet, node);
            if (auto s = keys.publish(*published, pub); !s) return fail(s.error().message);
        }
        if (format == output::Format::text) std::cout << fmt::format("{} {}\n", mb.fleet, pub.base64());
        listed.push_back({{"fleet", mb.fleet},
                          {"public_key", pub.base64()},
                          {"generated", generated},
                          {"published", published ? nlohmann::ordered_json(*published) : nlohmann::ordered_json(nullptr)}});
        if (generated)
            findings.push_back(
                {.level = output::Finding::Level::notice,
                 .check = "wg-fleet/keygen",
                 .title = "key generated",
                 .message = fmt::format("generated the private key of {} for fleet {}; public key {}", node, mb.fleet, pub.base64())});
    }
    if (json) std::cout << nlohmann::ordered_json{{"version", 1}, {"node", node}, {"keys", listed}}.dump(2) << "\n";
    if (ci) print_findings(g, format, findings);
    return kOk;
}

}  // namespace wgf::cli
