#include "apply/state.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "linux/files.hpp"
#include "plan/sysctls.hpp"

namespace wgf::apply {

std::string ownership_to_json(const plan::Ownership& o) {
    nlohmann::ordered_json j;
    j["version"] = 1;
    j["interfaces"] = o.interfaces;
    nlohmann::ordered_json peers = nlohmann::ordered_json::object();
    for (const auto& [ifname, keys] : o.peers) {
        auto& arr = peers[ifname] = nlohmann::ordered_json::array();
        for (const auto& k : keys) arr.push_back(k.base64());
    }
    j["peers"] = peers;
    nlohmann::ordered_json eps = nlohmann::ordered_json::object();
    for (const auto& [ifname, m] : o.endpoints) {
        auto& obj = eps[ifname] = nlohmann::ordered_json::object();
        for (const auto& [k, e] : m) obj[k.base64()] = e.str();
    }
    j["endpoints"] = eps;
    j["files"] = o.files;
    nlohmann::ordered_json sysctls = nlohmann::ordered_json::object();
    for (const auto& [k, rec] : o.sysctls) sysctls[k] = {{"original", rec.original}, {"value", rec.value}};
    j["sysctls"] = sysctls;
    return j.dump(1) + "\n";
}

backend::Result<plan::Ownership> ownership_from_json(const std::string& text) {
    plan::Ownership o;
    try {
        auto j = nlohmann::json::parse(text);
        for (const auto& i : j.at("interfaces")) o.interfaces.insert(i.get<std::string>());
        // An interface's entry exists even when empty, as in ownership_after: then a saved state
        // compares equal to the one it was saved from.
        for (const auto& [ifname, arr] : j.at("peers").items()) {
            auto& keys = o.peers[ifname];
            for (const auto& k : arr)
                if (auto key = model::Key::from_base64(k.get<std::string>())) keys.insert(keys.end(), *key);
        }
        for (const auto& [ifname, obj] : j.at("endpoints").items()) {
            auto& eps = o.endpoints[ifname];
            for (const auto& [k, e] : obj.items()) {
                auto key = model::Key::from_base64(k);
                auto ep = model::Endpoint::parse(e.get<std::string>());
                if (key && ep) eps.emplace(*key, *ep);
            }
        }
        for (const auto& f : j.at("files")) o.files.insert(f.get<std::string>());
        // Absent in records written before wg-fleet owned sysctls. Only sysctls wg-fleet sets,
        // with values it could have found, are ever written back.
        if (j.contains("sysctls"))
            for (const auto& [k, rec] : j.at("sysctls").items()) {
                plan::OwnedSysctl s{rec.at("original").get<std::string>(), rec.at("value").get<std::string>()};
                if (plan::is_managed_sysctl(k, s.original) && plan::is_managed_sysctl(k, s.value)) o.sysctls.emplace(k, std::move(s));
            }
    } catch (const std::exception& e) {
        return backend::Error{EINVAL, std::string("state.json is not readable: ") + e.what()};
    }
    return o;
}

namespace {

std::string state_file(const std::string& state_dir) { return state_dir + "/state.json"; }

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
    std::ifstream in(state_file(dir_));
    if (!in) return plan::Ownership{};  // first run: nothing is ours yet
    std::stringstream ss;
    ss << in.rdbuf();
    auto o = ownership_from_json(ss.str());
    if (!o) return backend::Error{EINVAL, dir_ + "/" + o.error().message};
    return o;
}

backend::Status FileStateStore::save(const plan::Ownership& owned) {
    return linux_::write_file_atomic(state_file(dir_), ownership_to_json(owned), 0600);
}

FileJournal::FileJournal(std::string state_dir) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    fd_ = open((state_dir + "/journal.log").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

FileJournal::~FileJournal() {
    flush();
    if (fd_ >= 0) close(fd_);
}

void FileJournal::flush() {
    if (fd_ < 0 || pending_.empty()) return;
    // One write with O_APPEND: concurrent runs never interleave within a batch.
    ssize_t n = write(fd_, pending_.data(), pending_.size());
    (void)n;
    pending_.clear();
}

void FileJournal::record(const std::string& op_line, const backend::Status& result) {
    if (fd_ < 0) return;
    char stamp[32];
    time_t now = time(nullptr);
    struct tm tm {};
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    pending_ += result ? fmt::format("{} ok {}\n", stamp, op_line)
                       : fmt::format("{} error {}: {}\n", stamp, op_line, result.error().message);
}

}  // namespace wgf::apply
