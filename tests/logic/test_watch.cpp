// The watch loop on fakes: every event source is scripted on a fake clock (time passes only when
// the loop waits), and each configuration loaded is converged by the real engine on the
// in-memory machine. Edits in a burst are one run; an invalid edit applies nothing and keeps the
// last good configuration; a tick repairs drift; a trigger that arrives during a run causes a
// run after it; a stop signal ends the loop.
#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <stdexcept>

#include "apply/engine.hpp"
#include "apply/watch.hpp"
#include "config/parse.hpp"
#include "fixture.hpp"
#include "plan/validate.hpp"

using namespace wgf;
using namespace wgf::test;
using apply::Trigger;
using std::chrono::milliseconds;

namespace {

const char* kOnePeer = R"(
state_dir: /state
fleets:
  mesh:
    controllers:
      c1: { endpoint: "192.0.2.1", public_key: "YLw6pDqHyW2oC1l3bCjOTIX1wuRxERGPEtQm04/FTXo=" }
    peers:
      p1: { controller: c1, public_key: "qOe3Q8JOJ0qLEkf1yNhvWw9p+3AaY9B8dnmK5dkyNmc=" }
)";
const char* kTwoPeers = R"(
state_dir: /state
fleets:
  mesh:
    controllers:
      c1: { endpoint: "192.0.2.1", public_key: "YLw6pDqHyW2oC1l3bCjOTIX1wuRxERGPEtQm04/FTXo=" }
    peers:
      p1: { controller: c1, public_key: "qOe3Q8JOJ0qLEkf1yNhvWw9p+3AaY9B8dnmK5dkyNmc=" }
      p2: { controller: c1, public_key: "4EVFjchzl8j0kbHH00hl1jgZKbuw/hw1B7XbAYDAaSA=" }
)";
const char* kInvalid = R"(
state_dir: /state
fleets:
  mesh:
    port: 99999
    controllers:
      c1: { endpoint: "192.0.2.1" }
)";

// The fake world: the configuration file, pending events, and a script of what happens when.
struct World {
    backend::TimePoint now{};
    std::multimap<backend::TimePoint, std::function<void()>> script;
    std::string label = "one peer";  // the file's content, by name
    const char* text = kOnePeer;
    backend::FileChange changed = backend::FileChange::none;
    std::deque<backend::Signal> signals;
    int ticks = 0;
    int nudges = 0;
    std::vector<backend::TimePoint> loaded_at;  // when the loop loaded the configuration

    bool pending() const { return changed != backend::FileChange::none || !signals.empty() || ticks > 0 || nudges > 0; }
    void at(int ms, std::function<void()> f) { script.emplace(backend::TimePoint{} + milliseconds(ms), std::move(f)); }
    // A write in place, or (`replaced`) the file renamed into place; notifications of both
    // kinds taken at once are a write.
    void edit(std::string l, const char* t, backend::FileChange kind = backend::FileChange::written) {
        label = std::move(l);
        text = t;
        changed = changed == backend::FileChange::none || changed == kind ? kind : backend::FileChange::written;
    }
    void hup() { signals.push_back({.kind = backend::Signal::Kind::reload, .name = "Hangup"}); }
    void term() { signals.push_back({.kind = backend::Signal::Kind::stop, .name = "Terminated"}); }
};

class FakeFiles : public backend::FileChanges {
public:
    explicit FakeFiles(World& w) : w_(w) {}
    backend::FileChange take() override { return std::exchange(w_.changed, backend::FileChange::none); }

private:
    World& w_;
};

class FakeSignals : public backend::Signals {
public:
    explicit FakeSignals(World& w) : w_(w) {}
    std::optional<backend::Signal> take() override {
        if (w_.signals.empty()) return std::nullopt;
        auto s = w_.signals.front();
        w_.signals.pop_front();
        return s;
    }

private:
    World& w_;
};

class FakeTimer : public backend::Timer {
public:
    explicit FakeTimer(World& w) : w_(w) {}
    bool take() override { return std::exchange(w_.ticks, 0) > 0; }

private:
    World& w_;
};

class FakeNudges : public backend::Nudges {
public:
    explicit FakeNudges(World& w) : w_(w) {}
    bool take() override { return std::exchange(w_.nudges, 0) > 0; }

private:
    World& w_;
};

// Waiting returns at once while a source has something; otherwise time jumps to the next
// scripted moment (which happens) or to the deadline.
class FakeClock : public backend::Clock {
public:
    explicit FakeClock(World& w) : w_(w) {}
    backend::TimePoint now() override { return w_.now; }
    void wait_until(backend::TimePoint deadline) override {
        if (w_.pending()) return;
        if (w_.script.empty() || w_.script.begin()->first > deadline) {
            if (deadline == backend::TimePoint::max()) throw std::logic_error("watch waits for ever: nothing more is scripted");
            w_.now = deadline;
            return;
        }
        auto t = w_.script.begin()->first;
        w_.now = std::max(w_.now, t);
        while (!w_.script.empty() && w_.script.begin()->first == t) {
            auto f = std::move(w_.script.begin()->second);
            w_.script.erase(w_.script.begin());
            f();
        }
    }

private:
    World& w_;
};

struct FakeReport : apply::Report {
    std::vector<std::string> infos, errors, statuses;
    int ready_calls = 0, watchdog_calls = 0, stopping_calls = 0;
    void info(const std::string& l) override { infos.push_back(l); }
    void error(const std::string& l) override { errors.push_back(l); }
    void status(const std::string& l) override { statuses.push_back(l); }
    void ready() override { ++ready_calls; }
    void watchdog() override { ++watchdog_calls; }
    void stopping() override { ++stopping_calls; }
};

struct Run {
    std::string config;
    Trigger why;
    size_t ops = 0;  // the plan the engine applied
    bool ok = false;
    bool operator==(const Run&) const = default;
};

// The node c1 on the in-memory machine; `during_run` happens while a run is busy.
struct Node {
    FakeMachine m;
    apply::Backends b = m.backends();
    backend::FakeResolver dns;  // knows no names: the fleets use addresses
    backend::FakeStateStore state;
    apply::Engine engine{b, m.keys, dns, state, nullptr, {}};
    std::vector<Run> runs;
    std::vector<std::string> events;  // "run X", "retired X": runs and configurations dropped
    std::function<void(Trigger)> during_run;
    std::function<std::optional<backend::TimePoint>()> wake;  // a key switch to come, if any

    size_t peers() const { return m.wg.devices.empty() ? 0 : m.wg.devices.begin()->second.device.peers.size(); }
};

class EngineReconcile : public apply::Reconcile {
public:
    EngineReconcile(Node& n, std::string label, config::Parsed parsed)
        : n_(n), label_(std::move(label)), parsed_(std::move(parsed)), fw_(parsed_.config) {}
    ~EngineReconcile() override { n_.events.push_back("retired " + label_); }
    EngineReconcile(const EngineReconcile&) = delete;
    EngineReconcile& operator=(const EngineReconcile&) = delete;
    void run(Trigger why) override {
        n_.events.push_back("run " + label_);
        if (n_.during_run) n_.during_run(why);
        auto r = n_.engine.run(fw_, "c1", apply::Mode::apply, n_.m.now);
        n_.runs.push_back({.config = label_, .why = why, .ops = r.plan.ops.size(), .ok = r.ok()});
    }
    std::optional<backend::TimePoint> wake_at() const override { return n_.wake ? n_.wake() : std::nullopt; }

private:
    Node& n_;
    std::string label_;
    config::Parsed parsed_;
    plan::Fleetwide fw_;
};

class FakeLoader : public apply::Loader {
public:
    FakeLoader(World& w, Node& n) : w_(w), n_(n) {}
    std::variant<std::unique_ptr<apply::Reconcile>, apply::LoadFailure> load(Trigger why) override {
        w_.loaded_at.push_back(w_.now);
        config::Sources sources;
        config::Diagnostics diags;
        auto parsed = config::parse_text(w_.text, "fleet.yaml", sources, diags);
        if (!diags.has_errors()) {
            plan::Fleetwide fw(parsed.config);
            plan::validate(parsed.config, fw.plan, parsed.tree, diags);
        }
        if (diags.has_errors())
            return apply::LoadFailure{.message = "fleet.yaml: invalid (" + std::string(apply::to_string(why)) + ")",
                                      .status = "invalid configuration"};
        return std::make_unique<EngineReconcile>(n_, w_.label, std::move(parsed));
    }

private:
    World& w_;
    Node& n_;
};

struct Harness {
    World w;
    Node node;
    FakeFiles files{w};
    FakeSignals signals{w};
    FakeTimer timer{w};
    FakeNudges nudges{w};
    FakeClock clock{w};
    FakeReport report;
    FakeLoader loader{w, node};

    void watch(apply::WatchOptions o = {}, bool with_nudges = false) {
        o.watching = "watching";
        apply::watch(loader,
                     {.files = files, .signals = signals, .timer = timer, .clock = clock, .nudges = with_nudges ? &nudges : nullptr},
                     report, o);
    }
};

}  // namespace

TEST_CASE("watch: a burst of edits is loaded and applied once", "[watch]") {
    Harness h;
    h.w.at(100, [&] { h.w.edit("half written", kInvalid); });
    h.w.at(110, [&] { h.w.edit("two peers", kTwoPeers); });
    h.w.at(140, [&] { h.w.edit("two peers", kTwoPeers); });
    h.w.at(180, [&] { h.w.edit("two peers", kTwoPeers); });
    h.w.at(5000, [&] { h.w.term(); });
    h.watch();
    REQUIRE(h.node.runs.size() == 2);
    CHECK(h.node.runs[0].config == "one peer");
    CHECK(h.node.runs[0].why == Trigger::start);
    CHECK(h.node.runs[1].config == "two peers");
    CHECK(h.node.runs[1].why == Trigger::edit);
    CHECK(h.node.runs[1].ok);
    CHECK(h.node.peers() == 2);
    CHECK(h.report.errors.empty());  // the half-written state was never loaded
    CHECK(h.report.ready_calls == 1);
}

TEST_CASE("watch: the configuration an edit replaces is dropped after the new one's run, not before it", "[watch]") {
    // Dropping a configuration of a large fleet frees a lot: that waits until the edit is live.
    Harness h;
    h.w.at(100, [&] { h.w.edit("two peers", kTwoPeers, backend::FileChange::replaced); });
    h.w.at(200, [&] { h.w.edit("half written", kInvalid, backend::FileChange::replaced); });
    h.w.at(300, [&] { h.w.edit("one peer", kOnePeer, backend::FileChange::replaced); });
    h.w.at(5000, [&] { h.w.term(); });
    h.watch();
    // The invalid edit dropped nothing: "two peers" stayed in force until "one peer" ran.
    const std::vector<std::string> expected{"run one peer", "run two peers", "retired one peer", "run one peer", "retired two peers"};
    CHECK(std::vector<std::string>(h.node.events.begin(), h.node.events.begin() + 5) == expected);
    CHECK(h.node.peers() == 1);
}

TEST_CASE("watch: a configuration renamed into place is loaded at once, a write in place once the burst ends", "[watch]") {
    Harness h;
    h.w.at(100, [&] { h.w.edit("two peers", kTwoPeers, backend::FileChange::replaced); });
    h.w.at(1000, [&] { h.w.edit("one peer", kOnePeer); });
    h.w.at(1010, [&] { h.w.edit("one peer", kOnePeer, backend::FileChange::replaced); });
    h.w.at(2000, [&] { h.w.edit("half written", kInvalid); });
    h.w.at(2010, [&] { h.w.edit("two peers", kTwoPeers); });
    h.w.at(5000, [&] { h.w.term(); });
    h.watch();
    REQUIRE(h.node.runs.size() == 4);
    CHECK(h.node.runs[1].config == "two peers");
    CHECK(h.node.runs[2].config == "one peer");
    CHECK(h.node.runs[3].config == "two peers");
    REQUIRE(h.w.loaded_at.size() == 4);
    auto at = [](int ms) { return backend::TimePoint{} + milliseconds(ms); };
    CHECK(h.w.loaded_at[1] == at(100));   // the rename: no settling pause
    CHECK(h.w.loaded_at[2] == at(1010));  // a write, then the rename ends the wait
    CHECK(h.w.loaded_at[3] == at(2060));  // writes: one settle period after the last
    CHECK(h.report.errors.empty());
}

TEST_CASE("watch: an invalid edit applies nothing, is reported, and the last good configuration stays in force", "[watch]") {
    Harness h;
    size_t sets_before_invalid = 0;
    h.w.at(100, [&] {
        sets_before_invalid = h.node.m.wg.sets.size();
        h.w.edit("invalid", kInvalid);
    });
    h.w.at(1000, [&] { ++h.w.ticks; });
    h.w.at(2000, [&] { h.w.edit("two peers", kTwoPeers); });
    h.w.at(3000, [&] { h.w.term(); });
    h.watch();
    REQUIRE(h.node.runs.size() == 3);
    CHECK(h.node.runs[0] == Run{.config = "one peer", .why = Trigger::start, .ops = h.node.runs[0].ops, .ok = true});
    // The tick after the invalid edit runs the configuration still in force, and finds nothing to do.
    CHECK(h.node.runs[1] == Run{.config = "one peer", .why = Trigger::tick, .ops = 0, .ok = true});
    CHECK(h.node.runs[2].config == "two peers");
    CHECK(h.node.runs[2].why == Trigger::edit);
    CHECK(h.node.peers() == 2);
    CHECK(sets_before_invalid > 0);
    REQUIRE(h.report.errors.size() == 1);
    CHECK(h.report.errors[0] == "fleet.yaml: invalid (edit); the last good configuration stays in force");
    CHECK(h.report.statuses == std::vector<std::string>{"invalid configuration; last good configuration in force"});
}

TEST_CASE("watch: without a valid configuration nothing runs until one is written", "[watch]") {
    Harness h;
    h.w.edit("invalid", kInvalid);
    h.w.changed = backend::FileChange::none;  // the file as it is at start
    h.w.at(1000, [&] { ++h.w.ticks; });
    h.w.at(2000, [&] { h.w.edit("one peer", kOnePeer); });
    h.w.at(3000, [&] { h.w.term(); });
    h.watch();
    REQUIRE(h.node.runs.size() == 1);
    CHECK(h.node.runs[0].why == Trigger::edit);
    CHECK(h.report.errors == std::vector<std::string>{"fleet.yaml: invalid (start); nothing applied"});
    CHECK(h.report.statuses == std::vector<std::string>{"invalid configuration; waiting for a valid one"});
}

TEST_CASE("watch: a tick repairs drift", "[watch]") {
    Harness h;
    h.w.at(1000, [&] {
        REQUIRE(h.node.peers() == 1);
        h.node.m.wg.devices.begin()->second.device.peers.clear();  // a peer removed by hand
        ++h.w.ticks;
    });
    h.w.at(2000, [&] { h.w.term(); });
    h.watch();
    REQUIRE(h.node.runs.size() == 2);
    CHECK(h.node.runs[1].why == Trigger::tick);
    CHECK(h.node.runs[1].ops > 0);
    CHECK(h.node.runs[1].ok);
    CHECK(h.node.peers() == 1);
}

TEST_CASE("watch: a trigger that arrives during a run causes a run after it", "[watch]") {
    Harness h;
    SECTION("an edit") {
        h.node.during_run = [&](Trigger why) {
            if (why == Trigger::start) h.w.edit("two peers", kTwoPeers);
        };
        h.w.at(1000, [&] { h.w.term(); });
        h.watch();
        REQUIRE(h.node.runs.size() == 2);
        CHECK(h.node.runs[1].config == "two peers");
        CHECK(h.node.runs[1].why == Trigger::edit);
        CHECK(h.node.peers() == 2);
    }
    SECTION("a tick and a reload signal") {
        h.w.at(100, [&] { ++h.w.ticks; });
        h.node.during_run = [&](Trigger why) {
            if (why == Trigger::tick && h.node.runs.size() == 1) h.w.hup();
            if (why == Trigger::reload) ++h.w.ticks;
        };
        h.w.at(1000, [&] { h.w.term(); });
        h.watch();
        std::vector<Trigger> whys;
        for (const auto& r : h.node.runs) whys.push_back(r.why);
        CHECK(whys == std::vector<Trigger>{Trigger::start, Trigger::tick, Trigger::reload, Trigger::tick});
    }
}

TEST_CASE("watch: a stop signal ends the loop before any pending run", "[watch]") {
    Harness h;
    h.w.at(100, [&] {
        h.w.edit("two peers", kTwoPeers);
        ++h.w.ticks;
        h.w.term();
    });
    h.w.at(200, [&] { FAIL("watch still waits after the stop signal"); });
    h.watch();
    REQUIRE(h.node.runs.size() == 1);
    CHECK(h.node.peers() == 1);
    CHECK(h.report.infos.back() == "exiting on Terminated");
    CHECK(h.report.stopping_calls == 1);
}

TEST_CASE("watch: the watchdog is pinged while the loop waits", "[watch]") {
    Harness h;
    h.w.at(10'000, [&] { h.w.term(); });
    apply::WatchOptions o;
    o.watchdog = milliseconds(1000);
    h.watch(o);
    CHECK(h.report.watchdog_calls >= 10);
    REQUIRE(h.node.runs.size() == 1);
}

TEST_CASE("watch: a nudge (serve's store changed) loads and converges at once, several pending are one run", "[watch]") {
    Harness h;
    // The store's change shows as a new configuration: the loader reads the store with the file.
    h.w.at(100, [&] {
        h.w.label = "two peers";
        h.w.text = kTwoPeers;
        h.w.nudges += 3;
    });
    h.w.at(1000, [&] { h.w.term(); });
    h.watch({}, true);
    REQUIRE(h.node.runs.size() == 2);
    CHECK(h.node.runs[1] == Run{.config = "two peers", .why = Trigger::store, .ops = h.node.runs[1].ops, .ok = true});
    CHECK(h.node.runs[1].ops > 0);
    REQUIRE(h.w.loaded_at.size() == 2);
    CHECK(h.w.loaded_at[1] == backend::TimePoint{} + milliseconds(100));  // no settling pause
    CHECK(h.node.peers() == 2);
}

TEST_CASE("watch: a key rotation's switch time wakes the loop at that time, not at the next tick", "[watch][rotation]") {
    Harness h;
    std::optional<backend::TimePoint> due = backend::TimePoint{} + milliseconds(3000);
    h.node.wake = [&] { return due; };
    std::vector<std::pair<Trigger, backend::TimePoint>> seen;
    h.node.during_run = [&](Trigger why) {
        seen.emplace_back(why, h.w.now);
        if (why == Trigger::rotation) due.reset();  // the run made the switch: nothing more to wait for
    };
    h.w.at(10000, [&] { h.w.term(); });
    h.watch();
    REQUIRE(seen.size() == 2);
    CHECK(seen[0].first == Trigger::start);
    CHECK(seen[1].first == Trigger::rotation);
    CHECK(seen[1].second == backend::TimePoint{} + milliseconds(3000));
    CHECK(apply::to_string(Trigger::rotation) == "rotation");
}

TEST_CASE("watch: a switch time that a tick's run already acted on causes no second run", "[watch][rotation]") {
    Harness h;
    std::optional<backend::TimePoint> due = backend::TimePoint{} + milliseconds(3000);
    h.node.wake = [&] { return due; };
    std::vector<Trigger> seen;
    h.node.during_run = [&](Trigger why) {
        seen.push_back(why);
        if (h.w.now >= backend::TimePoint{} + milliseconds(3000)) due.reset();
    };
    h.w.at(3000, [&] { ++h.w.ticks; });
    h.w.at(10000, [&] { h.w.term(); });
    h.watch();
    CHECK(seen == std::vector<Trigger>{Trigger::start, Trigger::tick});
}
