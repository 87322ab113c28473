// The ownership record as the engine sees it: backend::StateStore. Its text (state.json) is
// plan/ownership_json.hpp; the file store is system/state_store.hpp.
#pragma once

#include "backend/state_store.hpp"

namespace wgf::apply {

using backend::StateStore;

}  // namespace wgf::apply
