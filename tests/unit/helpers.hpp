// Shared fixtures for the unit tests: parse a YAML text, optionally plan and validate it, and
// look diagnostics up by YAML path. Expected values never come from here: these only run the
// code under test and give tests a convenient handle on its output.
#pragma once

// WGF_TEST_ASAN: tests that cap the address space skip themselves under AddressSanitizer, which
// reserves far more than any cap (the sanitizer build also defines it).
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WGF_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define WGF_TEST_ASAN 1
#endif

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "../linux_unit/temp_dir.hpp"
#include "../linux_unit/values.hpp"
#include "config/diag.hpp"
#include "config/parse.hpp"
#include "plan/address_plan.hpp"
#include "plan/render.hpp"
#include "plan/validate.hpp"

namespace wgf::test {

// Runs `body` in a child limited to `as_mib` of address space and 60 s; its exit code, or 100 +
// the signal that ended it (SIGALRM: it blocked or ran away).
inline int in_child([[maybe_unused]] size_t as_mib, const std::function<int()>& body) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
#ifndef WGF_TEST_ASAN
        rlimit lim{as_mib << 20, as_mib << 20};
        setrlimit(RLIMIT_AS, &lim);
#endif
        alarm(60);
        int rc = 3;
        try {
            rc = body();
        } catch (const std::bad_alloc&) {
            rc = 4;
        } catch (...) {
            rc = 5;
        }
        _exit(rc);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}


struct Loaded {
    config::Sources sources;
    config::Diagnostics diags;
    config::Parsed parsed;
    plan::AddressPlan plan;

    const model::Config& cfg() const { return parsed.config; }
    // Every diagnostic rendered, for INFO() so a failing assertion shows what was reported.
    std::string text() const { return config::render_all(diags, sources); }

    std::vector<config::Diagnostic> at(std::string_view path, config::Severity sev = config::Severity::error) const {
        std::vector<config::Diagnostic> out;
        for (const auto& d : diags.all())
            if (d.path == path && d.severity == sev) out.push_back(d);
        return out;
    }
    std::vector<config::Diagnostic> errors() const {
        std::vector<config::Diagnostic> out;
        for (const auto& d : diags.sorted())
            if (d.severity == config::Severity::error) out.push_back(d);
        return out;
    }
    std::vector<config::Diagnostic> warnings() const {
        std::vector<config::Diagnostic> out;
        for (const auto& d : diags.sorted())
            if (d.severity == config::Severity::warning) out.push_back(d);
        return out;
    }
};

// Parse only (the config pass).
inline std::unique_ptr<Loaded> parse_only(std::string_view yaml, std::string_view file = "fleet.yaml") {
    auto l = std::make_unique<Loaded>();
    l->parsed = config::parse_text(yaml, file, l->sources, l->diags);
    return l;
}

// Parse, plan and validate, as `wg-fleet check` does.
inline std::unique_ptr<Loaded> check(std::string_view yaml, std::string_view file = "fleet.yaml") {
    auto l = parse_only(yaml, file);
    l->plan = plan::plan_addresses(l->parsed.config);
    plan::validate(l->parsed.config, l->plan, l->parsed.tree, l->diags, l->parsed.broken);
    return l;
}

// A file that must be valid, with the Fleetwide its renders start from.
struct Rendered {
    std::unique_ptr<Loaded> l;
    std::unique_ptr<plan::Fleetwide> fw;
};

inline Rendered load_valid(const std::string& yaml) {
    Rendered r;
    r.l = check(yaml);
    INFO(r.l->text());
    REQUIRE_FALSE(r.l->diags.has_errors());
    r.fw = std::make_unique<plan::Fleetwide>(r.l->cfg());
    return r;
}

// The reference's fleet (2 controllers, 3 peers, real keys), shared by several test files.
inline constexpr const char* kClanFleetYaml = R"(domain: example.internal
fleets:
  wg-test-one:
    controllers:
      controller1: { endpoint: vpn1.example.com, public_key: cAdu2zsfixJ9e1RTDKYFWnnvsUJM9vR2ChcsgKbeVGg= }
      controller2: { endpoint: "vpn2.example.com:51821", public_key: M3c5TjSLEzGEZ7tGbgapbwPShn4uUDVawek3E5JR5A0= }
    peers:
      peer1: { controller: controller1, public_key: j576wwZ01GUTN2l6tbbvKlUcpFDP+HxG3ydj959VEmY= }
      peer2: { controller: controller2, public_key: Meol420BlFIEUEt4hGOFp1VF9aEp3uPndWrKucWjBwY= }
      peer3: { controller: controller2, public_key: fwPl3x5N338IdrP7PXDTlSMQAK32JIOnNuA/fToAQ3c=, routes: [10.20.0.0/16] }
)";

// The configuration block of shared/seeds/002_*.txt, verbatim.
inline constexpr const char* kSeed002Yaml = R"(---
domain: icpcnet.internal
prune_timeout: 30m

fleets:
  southeast:
    ip6: fd00:a0a8:34d:2a00::1
    subnet: fd00:a0a8:34d:2a00::/64
    external_ip: 1.2.3.4
    port: 51820

  northwest:
    ip6: fd00:a0a8:34d:2000::1
    subnet: fd00:a0a8:34d:2000::/64
    external_ip: 1.2.3.4
    port: 51821
)";

// The *.yaml files of these directories of the repository (examples, fuzz seeds), sorted.
inline std::vector<std::filesystem::path> repo_yaml_files(std::initializer_list<const char*> dirs) {
    const std::filesystem::path root = std::filesystem::path(WGF_SCHEMA_FILE).parent_path().parent_path();
    std::vector<std::filesystem::path> files;
    for (const char* dir : dirs)
        for (const auto& e : std::filesystem::directory_iterator(root / dir))
            if (e.path().extension() == ".yaml") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

inline bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

}  // namespace wgf::test
