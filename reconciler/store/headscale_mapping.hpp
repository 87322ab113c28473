// The Headscale source's mapping as kept in state_dir: which Headscale node holds which address
// and public key. It sits here, below inputs/, because every command that builds the desired
// state reads it (inputs/enrolled), not only serve, which alone writes it (serve/headscale_client).
//
// Invariants of a Mapping: every entry has an address that no other entry holds; an address is
// never changed while its node is in the mapping; private keys are never part of it (they live in
// 0600 files beside it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "model/net.hpp"

namespace wgf::serve::headscale {

struct Entry {
    std::string name;  // member name in the fleet
    model::IpAddr address;
    model::Key public_key;
    std::optional<int64_t> missing_since;  // unix seconds: the first poll that did not list it

    auto operator<=>(const Entry&) const = default;
};

struct Mapping {
    std::map<std::string, Entry> nodes;    // by Headscale node id
    std::optional<model::IpAddr> last_ip;  // the address given out last; the next one follows it

    auto operator<=>(const Mapping&) const = default;
};

// Node ids become file and URL path components: letters, digits, '-' and '_', 1..40 of them.
bool valid_node_id(std::string_view id);

// state_dir/headscale, and the fleet's mapping file in it.
std::string mapping_dir(const std::string& state_dir);
std::string mapping_path(const std::string& state_dir, const std::string& fleet);

std::string mapping_to_json(const Mapping& m);
// nullopt with `error` set when the text is not a mapping.
std::optional<Mapping> parse_mapping(std::string_view text, std::string& error);

// The fleet's mapping file read read-only: nullopt when there is none; throws StoreError naming
// the file when it cannot be read or is not a mapping.
std::optional<Mapping> read_mapping(const std::string& path);

}  // namespace wgf::serve::headscale
