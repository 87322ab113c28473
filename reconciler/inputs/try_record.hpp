// The text of a pending try (state_dir/try.json, mode 0600): version 1, JSON. The snapshot is the
// desired-state cache's encoding of the live state, in base64; the ownership record before is
// state.json's shape. It never holds a private key: a HostState has none.
#pragma once

#include <optional>
#include <string>

#include "apply/try.hpp"

namespace wgf::inputs {

std::string try_record_to_json(const apply::TryRecord& t);
// nullopt when the text is not such a record; `why` (when given) then says why.
std::optional<apply::TryRecord> try_record_from_json(const std::string& text, std::string* why = nullptr);

}  // namespace wgf::inputs
