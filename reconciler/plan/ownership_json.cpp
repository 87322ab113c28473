#include "plan/ownership_json.hpp"

#include <nlohmann/json.hpp>

#include "plan/sysctls.hpp"

namespace wgf::plan {

std::string ownership_to_json(const Ownership& o) {
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

std::optional<Ownership> ownership_from_json(const std::string& text, std::string* error) {
    Ownership o;
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
                OwnedSysctl s{rec.at("original").get<std::string>(), rec.at("value").get<std::string>()};
                if (is_managed_sysctl(k, s.original) && is_managed_sysctl(k, s.value)) o.sysctls.emplace(k, std::move(s));
            }
    } catch (const std::exception& e) {
        if (error) *error = e.what();
        return std::nullopt;
    }
    return o;
}

}  // namespace wgf::plan
