// Benchmark of the pure planning pipeline, no kernel and no root: the YAML tree, the whole parse,
// the fleet-wide plan (plan::Fleetwide), validation, and one node's render with and without its
// files, each repeated in one warm process. Prints one line per phase with the median and the
// fastest run (BENCHMARKS.md); the outputs themselves are checked by the unit and golden tests.
//
// Usage: bench_pipeline FLEET.yaml NODE [RUNS [PHASE]]   (fleets from tests/bench/gen_fleet.py)
// PHASE runs only the phase of that name (as printed; e.g. `Fleetwide`), for `perf record`.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "config/parse.hpp"
#include "config/tree.hpp"
#include "plan/render.hpp"
#include "plan/validate.hpp"

using namespace wgf;

namespace {

using Clock = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

double thread_cpu_ms() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Runs `body` `runs` times and prints the median and the minimum wall-clock time, and the median
// CPU time of this thread (on a loaded machine the wall clock also counts time spent waiting for
// a core). Prints nothing when `only` names another phase.
void measure(const std::string& only, const char* phase, int runs, const std::function<void()>& body) {
    if (!only.empty() && only != phase) return;
    std::vector<double> wall, cpu;
    wall.reserve(static_cast<size_t>(runs));
    cpu.reserve(static_cast<size_t>(runs));
    for (int i = 0; i < runs; ++i) {
        auto start = Clock::now();
        double cpu_start = thread_cpu_ms();
        body();
        cpu.push_back(thread_cpu_ms() - cpu_start);
        wall.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    }
    fmt::print("{:<22} median {:7.2f} ms   min {:7.2f} ms   cpu median {:7.2f} ms   ({} runs)\n", phase, median(wall),
               *std::min_element(wall.begin(), wall.end()), median(cpu), runs);
    std::fflush(stdout);
}

// Every phase needs a clean parse of the file: a benchmark of an invalid fleet measures nothing useful.
void require_clean(const config::Diagnostics& diags, const char* what) {
    if (diags.has_errors()) throw std::runtime_error(fmt::format("{} reported errors: the fleet file must be valid", what));
}

void run(const std::string& path, const std::string& node, int runs, const std::string& only) {
    const std::vector<config::SourceFile> files{{.name = path, .text = read_file(path)}};

    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed = config::parse(files, sources, diags);
    require_clean(diags, "parse");
    const model::Config& cfg = parsed.config;
    const plan::Fleetwide fw(cfg);
    plan::validate(cfg, fw.plan, fw.index, parsed.tree, diags);
    require_clean(diags, "validate");
    const plan::Desired probe = plan::render_host(fw, node);
    if (probe.state.interfaces.empty()) throw std::runtime_error(fmt::format("node {} is in no fleet of {}", node, path));
    size_t peers = 0;
    for (const auto& [name, w] : probe.state.interfaces) peers += w.peers.size();
    fmt::print("{}: node {}, {} interface(s), {} peers, {} routes, {} files\n", path, node, probe.state.interfaces.size(), peers,
               probe.state.routes.size(), probe.state.files.size());

    // Each body keeps its result alive until the timer stops, so the destructors count as well:
    // the pipeline frees what it built too.
    measure(only, "yaml tree", runs, [&] {
        config::Diagnostics d;
        config::Node tree = config::parse_yaml(files.front().text, 0, d);
        if (tree.is_null()) throw std::runtime_error("empty YAML tree");
    });
    measure(only, "parse (whole)", runs, [&] {
        config::Sources s;
        config::Diagnostics d;
        config::Parsed p = config::parse(files, s, d);
        if (p.config.fleets.empty()) throw std::runtime_error("no fleet parsed");
    });
    measure(only, "Fleetwide", runs, [&] {
        plan::Fleetwide f(cfg);
        if (f.index.empty()) throw std::runtime_error("empty node index");
    });
    // The edit `watch` sees most: one peer's route changed. Names and addresses stay, so the
    // address plan, the node index and the hosts files are kept from the configuration before.
    model::Config edited = cfg;
    for (auto& [fname, f] : edited.fleets)
        for (auto& [pname, m] : f.peers)
            if (!m.routes.empty() && edited.fleets.begin()->first == fname) {
                m.routes.front().addr.bytes[0] ^= 1;
                break;
            }
    measure(only, "Fleetwide (edit, plan kept)", runs, [&] {
        plan::Fleetwide f(edited, &fw);
        if (!f.reused_plan()) throw std::runtime_error("the edit did not keep the plan");
    });
    measure(only, "validate", runs, [&] {
        config::Diagnostics d;
        plan::validate(cfg, fw.plan, fw.index, parsed.tree, d);
        if (d.has_errors()) throw std::runtime_error("validate reported errors");
    });
    measure(only, "hosts file", runs, [&] {
        std::string text = plan::render_hosts_file(plan::render_hosts_entries(fw, node));
        if (text.empty()) throw std::runtime_error("empty hosts file");
    });
    // The hosts file comes from the Fleetwide's memo after the first render (and after an edit
    // that keeps the plan and every controller:); the phase above is what a render without it adds.
    measure(only, "render_host (hosts kept)", runs, [&] {
        plan::Desired out = plan::render_host(fw, node);
        if (out.state.files.empty()) throw std::runtime_error("render_host rendered no file");
    });
    measure(only, "render_host no files", runs, [&] {
        plan::Desired out = plan::render_host(fw, node, plan::RenderOptions{.files = false});
        if (!out.state.files.empty()) throw std::runtime_error("render_host rendered files");
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3 || argc > 5) {
        std::fprintf(stderr, "usage: %s FLEET.yaml NODE [RUNS [PHASE]]\n", argv[0]);
        return 2;
    }
    int runs = argc >= 4 ? std::atoi(argv[3]) : 21;
    if (runs < 1) {
        std::fprintf(stderr, "RUNS must be a positive number\n");
        return 2;
    }
    try {
        run(argv[1], argv[2], runs, argc == 5 ? argv[4] : "");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_pipeline: %s\n", e.what());
        return 1;
    }
    return 0;
}
