#include "config/read.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>

#include "model/fd.hpp"

namespace wgf::config {
namespace {

const char* type_name(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "a file of unknown type";
}

std::string size_text(std::size_t n) {
    if (n >= (1u << 20) && n % (1u << 20) == 0) return fmt::format("{} MiB", n >> 20);
    return fmt::format("{} bytes", n);
}

// Why `path`, whose target has `mode`, is not read; names the link's target when it is one.
std::string not_regular(const std::string& path, mode_t mode) {
    std::string what = type_name(mode);
    struct stat ls {};
    if (lstat(path.c_str(), &ls) == 0 && S_ISLNK(ls.st_mode)) {
        std::error_code ec;
        auto target = std::filesystem::canonical(path, ec);
        what = fmt::format("a symbolic link to {}{}", what, ec ? "" : " (" + target.string() + ")");
    }
    return fmt::format("not a regular file but {}: the configuration is read from regular files only", what);
}

class Reader {
public:
    Reader(Sources& sources, Diagnostics& diags, std::size_t limit) : sources_(sources), diags_(diags), limit_(limit) {}

    // Reads one file into `out`; false (with a diagnostic) when it was not read.
    bool read(const std::string& path, std::vector<SourceFile>& out) {
        // Refuse by type before opening: opening a device can block or have side effects.
        struct stat st {};
        if (stat(path.c_str(), &st) != 0) return fail(path, fmt::format("cannot read the file: {}", std::strerror(errno)));
        if (!S_ISREG(st.st_mode)) return fail(path, not_regular(path, st.st_mode));
        // O_NONBLOCK: should the path have become a FIFO since stat(), open must not wait for a writer.
        int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) return fail(path, fmt::format("cannot read the file: {}", std::strerror(errno)));
        const model::Fd closer(fd);
        if (fstat(fd, &st) != 0) return fail(path, fmt::format("cannot read the file: {}", std::strerror(errno)));
        if (!S_ISREG(st.st_mode)) return fail(path, not_regular(path, st.st_mode));
        const std::size_t room = limit_ - used_;
        if (static_cast<std::size_t>(st.st_size) > room) return too_large(path);
        // The file may grow after fstat(): read at most one byte past the room left to notice.
        std::string text;
        text.resize(static_cast<std::size_t>(st.st_size) + 1);
        std::size_t got = 0;
        for (;;) {
            if (got == text.size()) {
                if (text.size() > room) return too_large(path);
                text.resize(std::min(room + 1, std::max<std::size_t>(text.size() * 2, 4096)));
            }
            ssize_t n = ::read(fd, text.data() + got, text.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(path, fmt::format("cannot read the file: {}", std::strerror(errno)));
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        if (got > room) return too_large(path);
        text.resize(got);
        used_ += got;
        out.push_back({.name = path, .text = std::move(text)});
        return true;
    }

    bool fail(const std::string& path, std::string message) {
        uint32_t id = sources_.add(path, "");
        diags_.error(Loc{.file = id, .line = 0, .col = 0}, "", std::move(message));
        return false;
    }

    bool full() const { return full_; }

private:
    bool too_large(const std::string& path) {
        full_ = true;
        return fail(path, fmt::format("the configuration is larger than {}, the limit for the main file and its drop-ins "
                                      "together; not read",
                                      size_text(limit_)));
    }

    Sources& sources_;
    Diagnostics& diags_;
    std::size_t limit_;
    std::size_t used_ = 0;
    bool full_ = false;
};

}  // namespace

std::string default_dropin_dir(const std::string& main_file) {
    std::filesystem::path p(main_file);
    auto stem = p.extension() == ".yaml" || p.extension() == ".yml" ? p.stem().string() : p.filename().string();
    return (p.parent_path() / (stem + ".d")).string();
}

std::vector<SourceFile> read_config_files(const std::string& main_file, const std::string& dropin_dir, Sources& sources, Diagnostics& diags,
                                          std::size_t limit) {
    std::vector<SourceFile> out;
    Reader reader(sources, diags, limit);
    if (!reader.read(main_file, out)) return out;
    if (dropin_dir.empty()) return out;
    struct stat st {};
    if (stat(dropin_dir.c_str(), &st) != 0) {
        if (errno != ENOENT) reader.fail(dropin_dir, fmt::format("cannot read the drop-in directory: {}", std::strerror(errno)));
        return out;
    }
    if (!S_ISDIR(st.st_mode)) {
        reader.fail(dropin_dir, fmt::format("the drop-in directory is {}, not a directory", type_name(st.st_mode)));
        return out;
    }
    std::error_code ec;
    std::vector<std::string> names;
    for (std::filesystem::directory_iterator it(dropin_dir, ec), end; !ec && it != end; it.increment(ec)) {
        auto name = it->path().filename().string();
        if (it->path().extension() == ".yaml" && name[0] != '.') names.push_back(it->path().string());
    }
    if (ec) {
        reader.fail(dropin_dir, fmt::format("cannot list the drop-in directory: {}", ec.message()));
        return out;
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        reader.read(n, out);
        if (reader.full()) break;
    }
    return out;
}

}  // namespace wgf::config
