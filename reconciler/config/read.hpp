// Reading the configuration files: the main file and its drop-in directory. The only I/O of the
// config layer. Input may be hostile or just unlucky (a path that is a directory, a FIFO, a link
// to /dev/zero, a file that keeps growing): only regular files are read, never beyond
// kMaxConfigBytes in total, and never with a call that can block on a FIFO or a device.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "config/diag.hpp"

namespace wgf::config {

struct SourceFile {
    std::string name;
    std::string text;
};

// The most the main file and all drop-ins may hold together. Far above any real fleet (a
// generated 100,000-peer fleet is about 10 MiB), far below what would hurt the machine.
inline constexpr std::size_t kMaxConfigBytes = 64u << 20;

// Reads the main file and its drop-in directory (*.yaml in name order). A missing drop-in
// directory is fine. Reports as a diagnostic, naming the path: a main file or drop-in that is
// missing, unreadable, or not a regular file (directory, FIFO, device, socket, or a symbolic link
// to one); a drop-in directory that is not a directory or cannot be listed; and files that
// together exceed `limit` (read no further than the limit).
std::vector<SourceFile> read_config_files(const std::string& main_file, const std::string& dropin_dir, Sources& sources, Diagnostics& diags,
                                          std::size_t limit = kMaxConfigBytes);

// The default drop-in directory for a main file: /etc/wg-fleet.yaml -> /etc/wg-fleet.d
std::string default_dropin_dir(const std::string& main_file);

}  // namespace wgf::config
