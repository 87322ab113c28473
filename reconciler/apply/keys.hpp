// Private keys as the engine sees them: backend::KeyStore (the file store is system/keys.hpp),
// and which key a node has for a fleet.
#pragma once

#include <string>

#include "backend/keys.hpp"
#include "model/spec.hpp"

namespace wgf::apply {

using backend::KeyStore;

// This node's key for a fleet: loaded once, generated (0600) when absent; `generated` says which.
backend::Result<model::SecretKey> ensure_node_key(KeyStore& keys, const model::Config& cfg, const std::string& fleet, bool* generated);

}  // namespace wgf::apply
