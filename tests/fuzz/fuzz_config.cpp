// libFuzzer harness over the whole pure pipeline: YAML text -> parse -> address plan ->
// validate -> render every node. Any crash, sanitizer report or hang is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/parse.hpp"
#include "plan/render.hpp"
#include "plan/validate.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace wgf;
    config::Sources sources;
    config::Diagnostics diags;
    auto parsed = config::parse_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.yaml", sources, diags);
    // As inputs::load: what parsed of a file with errors is validated too (parsed.broken says
    // what to skip); only a file without errors is rendered.
    if (!parsed.broken.hit("")) {
        const bool clean = !diags.has_errors();
        plan::Fleetwide fw(parsed.config);
        plan::validate(parsed.config, fw.plan, parsed.tree, diags, parsed.broken);
        if (clean && !diags.has_errors())
            for (const auto& [node, ms] : fw.index) (void)plan::render_host(fw, node);
    }
    (void)config::render_all(diags, sources);
    return 0;
}
