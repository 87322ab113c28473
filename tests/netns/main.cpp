// The main of every namespace test executable. Every test case here needs network namespaces;
// where they cannot be created (not root) the executable exits 77 before any test case runs,
// which ctest reports as skipped (SKIP_RETURN_CODE), not as a pass that tested nothing. Listing
// the tests, which test discovery does at build time, needs no root.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support.hpp"

int main(int argc, char** argv) {
    Catch::Session session;
    if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    const auto& config = session.configData();
    const bool lists_only = config.showHelp || config.libIdentify || config.listTests || config.listTestNamesOnly || config.listTags ||
                            config.listReporters;
    if (!lists_only) wgf::test::netns_available();  // exits 77 (skipped), or 1 under CI, when it cannot run
    return session.run();
}
