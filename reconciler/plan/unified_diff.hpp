// A unified diff of two texts, as `diff -u` writes it and `patch` reads it: what plan shows of a
// managed file it would rewrite. Pure.
#pragma once

#include <string>
#include <string_view>

namespace wgf::plan {

// "--- old_label", "+++ new_label", then hunks with `context` lines around each change; "" when
// the texts are equal. A last line without a newline is marked "\ No newline at end of file".
// The edit script is a shortest one (Myers) while the texts differ in at most a few thousand
// lines; beyond that the differing middle is shown removed and added whole, still a valid patch.
std::string unified_diff(std::string_view old_text, std::string_view new_text, std::string_view old_label, std::string_view new_label,
                         size_t context = 3);

}  // namespace wgf::plan
