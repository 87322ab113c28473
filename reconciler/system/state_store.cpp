#include "system/state_store.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "linux/files.hpp"
#include "plan/ownership_json.hpp"

namespace wgf::system {
namespace {

std::string state_file(const std::string& state_dir) { return state_dir + "/state.json"; }

std::optional<std::array<int64_t, 7>> stamp_of(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) return std::nullopt;
    return std::array<int64_t, 7>{static_cast<int64_t>(st.st_dev),
                                  static_cast<int64_t>(st.st_ino),
                                  st.st_size,
                                  st.st_mtim.tv_sec,
                                  st.st_mtim.tv_nsec,
                                  st.st_ctim.tv_sec,
                                  st.st_ctim.tv_nsec};
}

// Collects the strings of the top-level "interfaces" array and stops there.
class InterfacesOnly : public nlohmann::json_sax<nlohmann::json> {
public:
    std::set<std::string> names;

    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool string(string_t& v) override {
        if (in_list_ && depth_ == 2) names.insert(v);
        return true;
    }
    bool start_object(std::size_t) override { return ++depth_, true; }
    bool end_object() override { return --depth_, true; }
    bool start_array(std::size_t) override {
        in_list_ = depth_ == 1 && key_ == "interfaces";
        return ++depth_, true;
    }
    bool end_array() override {
        --depth_;
        return !(in_list_ && depth_ == 1);  // the list is complete: stop reading
    }
    bool key(string_t& k) override {
        if (depth_ == 1) key_ = k;
        return true;
    }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

private:
    int depth_ = 0;
    bool in_list_ = false;
    std::string key_;
};

}  // namespace

std::set<std::string> recorded_interfaces(const std::string& state_dir) {
    std::ifstream in(state_file(state_dir));
    if (!in) return {};
    InterfacesOnly sax;
    nlohmann::json::sax_parse(in, &sax);
    return sax.names;
}

backend::Result<plan::Ownership> FileStateStore::load() {
    const std::string path = state_file(dir_);
    // Stamped before reading: a file replaced in between is read again next time.
    auto now = stamp_of(path);
    if (keep_ && *keep_ && now && (*keep_)->path == path && (*keep_)->stamp == *now) return (*keep_)->owned;
    if (keep_) keep_->reset();
    std::ifstream in(path);
    if (!in) return plan::Ownership{};  // first run: nothing is ours yet
    std::stringstream ss;
    ss << in.rdbuf();
    std::string why;
    auto o = plan::ownership_from_json(ss.str(), &why);
    if (!o) return backend::Error{EINVAL, dir_ + "/state.json is not readable: " + why};
    if (keep_ && now) *keep_ = KeptRecord{.path = path, .stamp = *now, .owned = *o};
    return *o;
}

backend::Status FileStateStore::save(const plan::Ownership& owned) {
    const std::string path = state_file(dir_);
    if (keep_) keep_->reset();
    auto s = linux_::write_file_atomic(path, plan::ownership_to_json(owned), 0600);
    if (!s) return s;
    if (auto now = stamp_of(path); keep_ && now) *keep_ = KeptRecord{.path = path, .stamp = *now, .owned = owned};
    return s;
}

}  // namespace wgf::system
