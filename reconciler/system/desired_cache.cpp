#include "system/desired_cache.hpp"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <sodium.h>

#include "linux/files.hpp"
#include "model/fd.hpp"

namespace wgf::system {
namespace {

// The cache decides what is applied as root: a file that someone other than this user could
// have written is not evidence of anything.
bool trusted(const struct stat& st) { return S_ISREG(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & 022) == 0; }

int find_build_id(struct dl_phdr_info* info, size_t, void* out) {
    // The first object listed is the program itself.
    auto& id = *static_cast<std::string*>(out);
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; ++i) {
        const auto& ph = info->dlpi_phdr[i];
        if (ph.p_type != PT_NOTE) continue;
        // NOLINTNEXTLINE(performance-no-int-to-ptr): the loader gives the object's base as an integer
        const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
        const char* end = p + ph.p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            ElfW(Nhdr) n;
            std::memcpy(&n, p, sizeof n);
            const char* name = p + sizeof n;
            const char* desc = name + ((n.n_namesz + 3) & ~3u);
            const char* next = desc + ((n.n_descsz + 3) & ~3u);
            if (next > end) break;
            if (n.n_type == NT_GNU_BUILD_ID && n.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
                id.assign(desc, n.n_descsz);
                return 1;
            }
            p = next;
        }
    }
    return 1;
}

std::string exe_digest() {
    model::Fd fd(open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) return {};
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd.fd, buf, sizeof buf);
        if (n < 0) return {};
        if (n == 0) break;
        crypto_hash_sha256_update(&st, buf, static_cast<size_t>(n));
    }
    std::string out(crypto_hash_sha256_BYTES, '\0');
    crypto_hash_sha256_final(&st, reinterpret_cast<unsigned char*>(out.data()));
    return out;
}

}  // namespace

std::optional<std::string> read_trusted(const std::string& path, size_t max_size) {
    model::Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
    if (fd.fd < 0) return std::nullopt;
    struct stat st {};
    if (fstat(fd.fd, &st) != 0 || !trusted(st) || static_cast<uint64_t>(st.st_size) > max_size) return std::nullopt;
    std::string bytes(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < bytes.size()) {
        ssize_t n = read(fd.fd, bytes.data() + got, bytes.size() - got);
        if (n <= 0) return std::nullopt;
        got += static_cast<size_t>(n);
    }
    return bytes;
}

std::optional<std::string> FileDesiredCache::load() { return read_trusted(path()); }

backend::Status FileDesiredCache::save(const std::string& bytes) { return linux_::write_file_atomic(path(), bytes, 0600); }

std::string build_id() {
    std::string id;
    dl_iterate_phdr(find_build_id, &id);
    if (!id.empty()) return "elf:" + id;
    std::string d = exe_digest();
    return d.empty() ? std::string() : "exe:" + d;
}

}  // namespace wgf::system
