// The ownership record's text, as state.json holds it: a JSON object with the interfaces, the
// peers and endpoints by interface, the files and the sysctls wg-fleet owns. Pure: the store
// that keeps it is backend::StateStore.
#pragma once

#include <optional>
#include <string>

#include "plan/diff.hpp"

namespace wgf::plan {

std::string ownership_to_json(const Ownership& o);
// nullopt when the text is not such a record; `error` (when given) then says why.
std::optional<Ownership> ownership_from_json(const std::string& text, std::string* error = nullptr);

}  // namespace wgf::plan
