#include "system/kept_firewall.hpp"

#include <array>
#include <cerrno>
#include <sstream>

#include <fmt/format.h>
#include <sodium.h>

#include "linux/files.hpp"
#include "system/desired_cache.hpp"

namespace wgf::system {
namespace {

// The build's identity in the file's first line: its digest, so the line is text whatever the
// build id's bytes are.
std::string format_line(const std::string& build) {
    std::array<unsigned char, crypto_generichash_BYTES> h{};
    crypto_generichash(h.data(), h.size(), reinterpret_cast<const unsigned char*>(build.data()), build.size(), nullptr, 0);
    std::string hex(h.size() * 2 + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), h.data(), h.size());
    hex.pop_back();
    return "wg-fleet firewall kept 1 build " + hex;
}

}  // namespace

std::optional<backend::KeptFirewall> FileKeptFirewall::load() {
    if (build_.empty()) return std::nullopt;
    // The record decides what a run does not read as root: only a file this user alone could
    // have written is evidence of anything.
    auto bytes = read_trusted(path(), 4096);
    if (!bytes) return std::nullopt;
    std::istringstream in(*bytes);
    std::string format, generation, digest, rest;
    if (!std::getline(in, format) || !std::getline(in, generation) || !std::getline(in, digest) || std::getline(in, rest))
        return std::nullopt;
    if (format != format_line(build_) || generation.empty() || digest.size() != 2 * crypto_generichash_BYTES) return std::nullopt;
    return backend::KeptFirewall{.generation = generation, .digest = digest};
}

backend::Status FileKeptFirewall::save(const backend::KeptFirewall& kept) {
    if (build_.empty()) return backend::Status::ok();
    if (kept.generation.empty() || kept.generation.find('\n') != std::string::npos || kept.digest.find('\n') != std::string::npos)
        return backend::Error{EINVAL, "firewall record: a generation and a digest of one line each"};
    return linux_::write_file_atomic(path(), fmt::format("{}\n{}\n{}\n", format_line(build_), kept.generation, kept.digest), 0600);
}

}  // namespace wgf::system
