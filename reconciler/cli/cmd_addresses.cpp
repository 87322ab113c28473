#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"

namespace wgf::cli {

// github and gitlab: the address plan is no finding; they report the fleet file's diagnostics
// (an empty report for a clean file), so a CI job may run any command in its format. json: the
// plan (version 1 of its shape, README "JSON output"), or check's diagnostics when the file has
// errors.
int cmd_addresses(const Globals& g, output::Format format) {
    std::vector<output::Finding> findings;
    auto l = load(g, {}, &findings);
    if (format == output::Format::github || format == output::Format::gitlab) {
        print_findings(g, format, findings);
        return l->fleet ? kOk : kError;
    }
    if (!l->fleet) {
        if (format == output::Format::json) std::cout << output::diagnostics_json(l->diags, l->sources);
        return kError;
    }
    const auto& fw = *l->fleet;
    if (format == output::Format::json) {
        nlohmann::ordered_json out = {{"version", 1}, {"fleets", nlohmann::ordered_json::object()}};
        for (const auto& [name, fp] : fw.plan.fleets) {
            nlohmann::ordered_json nodes = nlohmann::ordered_json::object();
            // fp.nodes is already in key order and has no duplicates: append without the linear
            // duplicate search of ordered_json's operator[], which makes 100,000 nodes quadratic.
            auto& node_list = nodes.get_ref<nlohmann::ordered_json::object_t&>();
            for (const auto& [node, na] : fp.nodes) {
                nlohmann::ordered_json addrs = nlohmann::ordered_json::array();
                for (const auto& a : na.addresses) addrs.push_back(a.str());
                node_list.emplace_back(node, nlohmann::ordered_json{{"role", model::to_string(na.role)}, {"addresses", addrs}});
            }
            out["fleets"][name] = {{"prefix", fp.prefix.str()}, {"nodes", nodes}};
        }
        std::cout << out.dump(2) << "\n";
        return kOk;
    }
    for (const auto& [name, fp] : fw.plan.fleets) {
        std::cout << fmt::format("fleet {} {}\n", name, fp.prefix.str());
        for (const auto& [node, na] : fp.nodes) {
            std::string addrs;
            for (const auto& a : na.addresses) {
                if (!addrs.empty()) addrs += ' ';
                addrs += a.str();
            }
            std::cout << fmt::format("  {:<20} {:<10} {}\n", node, model::to_string(na.role), addrs);
        }
    }
    return kOk;
}

}  // namespace wgf::cli
