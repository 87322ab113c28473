// The desired state of the last verified one-shot run, reused while nothing it was made from has
// changed: parsing, validating and rendering a large fleet costs more than reading its bytes
// again. The key is a digest (BLAKE2b-256) over everything rendering depends on: this binary's build id, the
// node's name, the loading options, the bytes of the file and of each drop-in (with their names),
// and the bytes (after following links) of every other file the load reads: the published keys
// it looks up, the node's private key files, which the load compares them with, serve's
// store of enrolled clients and its Headscale mappings. Only the digest of those is kept: the cache never holds a secret.
// The loader reads no environment variable; the hostname counts through the node's name.
// Endpoint names stay unresolved in the cache: every run resolves them again.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "apply/engine.hpp"
#include "backend/desired_cache.hpp"
#include "config/read.hpp"
#include "inputs/load.hpp"

namespace wgf::inputs {

// What keys a cache entry besides the bytes of the files.
struct CacheContext {
    std::string build_id;  // empty: nothing is cached
    std::string node;
    LoadOptions options;
};

using CacheKey = std::array<uint8_t, 32>;

struct CachedDesired {
    CacheKey key{};
    // The files besides the configuration whose bytes the key covers (published keys, key files).
    std::vector<std::string> inputs;
    std::optional<std::string> userspace;  // the file's userspace: setting (the backends need it)
    std::string notes;                     // the load's warnings as printed, shown again on a hit
    std::string notes_each;                // the same with every pending member (-v)
    apply::Desired desired;

    auto operator<=>(const CachedDesired&) const = default;
};

// The files besides the configuration that loading cfg reads.
std::vector<std::string> cache_inputs(const model::Config& cfg);

// The digest of each input file as it is now (after following links; its bytes, or why it
// cannot be read).
std::vector<CacheKey> input_digests(const std::vector<std::string>& inputs);

// state_dir: the one the file gives (or --state-dir); where it resolves to counts too.
CacheKey cache_key(const CacheContext& ctx, const std::vector<config::SourceFile>& files, const std::string& state_dir,
                   const std::vector<CacheKey>& inputs);

// The entry for a fleet as loaded (valid), all but the desired state: the key over the bytes
// parsed and over the other inputs as they are now (their digests, when asked for, so that a
// caller can tell whether they are still so when it keeps the entry).
CachedDesired cache_entry(const CacheContext& ctx, const Loaded& l, std::vector<CacheKey>* digests = nullptr);

std::string encode_cached(const CachedDesired& c);
// nullopt when the bytes are not an entry of this format.
std::optional<CachedDesired> decode_cached(const std::string& bytes);

// A try's snapshot (apply/try.hpp): a live state and its labels in the cache's encoding, with
// our rules in other tables' chains; nullopt when the bytes are not one.
std::string encode_snapshot(const model::HostState& state, const model::Labels& labels);
std::optional<std::pair<model::HostState, model::Labels>> decode_snapshot(std::string_view bytes);
// SHA-256, in hex, of the node's desired state as rendered (no key loaded, no name resolved):
// what a rolled-back try is held by until the file says something else.
std::string desired_digest(const apply::Desired& d);

// The entry the store holds, if its key is the key of the inputs as they are now; `why` (when
// given) says why not.
std::optional<CachedDesired> lookup_cached(backend::DesiredCacheStore& store, const CacheContext& ctx, std::string* why = nullptr);

}  // namespace wgf::inputs
