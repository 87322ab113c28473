#include "inputs/try_record.hpp"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include "inputs/desired_cache.hpp"
#include "plan/ownership_json.hpp"

namespace wgf::inputs {
namespace {

std::string to_base64(const std::string& bytes) {
    const int variant = sodium_base64_VARIANT_ORIGINAL;
    std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), variant);
    out.pop_back();  // the terminating NUL
    return out;
}

std::optional<std::string> from_base64(const std::string& text) {
    std::string out(text.size(), '\0');
    size_t len = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr, &len, nullptr,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return std::nullopt;
    out.resize(len);
    return out;
}

}  // namespace

std::string try_record_to_json(const apply::TryRecord& t) {
    nlohmann::ordered_json j;
    j["version"] = 1;
    j["id"] = t.id;
    j["started"] = t.started;
    j["deadline"] = t.deadline;
    j["pid"] = t.pid;
    j["probe"] = t.probe;
    j["manual"] = t.manual;
    j["digest"] = t.digest;
    j["confirmed"] = t.confirmed;
    auto& b = j["baseline"] = nlohmann::ordered_json::array();
    for (const auto& p : t.baseline)
        b.push_back({{"interface", p.ifname},
                     {"public_key", p.public_key.base64()},
                     {"name", p.name},
                     {"last_handshake", p.last_handshake},
                     {"rx_bytes", p.rx_bytes},
                     {"needs_handshake", p.needs_handshake}});
    auto& pub = j["published"] = nlohmann::ordered_json::object();
    for (const auto& [path, key] : t.published) pub[path] = key.base64();
    j["owned_before"] = nlohmann::ordered_json::parse(plan::ownership_to_json(t.owned_before));
    j["snapshot"] = to_base64(encode_snapshot(t.snapshot, t.labels));
    return j.dump(2) + "\n";
}

std::optional<apply::TryRecord> try_record_from_json(const std::string& text, std::string* why) {
    auto fail = [&](const std::string& reason) -> std::optional<apply::TryRecord> {
        if (why) *why = reason;
        return std::nullopt;
    };
    try {
        auto j = nlohmann::json::parse(text);
        if (j.at("version").get<int>() != 1) return fail("unknown version");
        apply::TryRecord t;
        t.id = j.at("id").get<std::string>();
        t.started = j.at("started").get<int64_t>();
        t.deadline = j.at("deadline").get<int64_t>();
        t.pid = j.at("pid").get<int>();
        t.probe = j.at("probe").get<std::string>();
        t.manual = j.at("manual").get<bool>();
        t.digest = j.at("digest").get<std::string>();
        t.confirmed = j.at("confirmed").get<std::string>();
        for (const auto& p : j.at("baseline")) {
            auto key = model::Key::from_base64(p.at("public_key").get<std::string>());
            if (!key) return fail("a baseline peer's public key is not a key");
            t.baseline.push_back({.ifname = p.at("interface").get<std::string>(),
                                  .public_key = *key,
                                  .name = p.at("name").get<std::string>(),
                                  .last_handshake = p.at("last_handshake").get<int64_t>(),
                                  .rx_bytes = p.at("rx_bytes").get<uint64_t>(),
                                  .needs_handshake = p.value("needs_handshake", false)});
        }
        // Absent in a record written before keys were published again on rollback.
        if (auto pub = j.find("published"); pub != j.end())
            for (const auto& [path, value] : pub->items()) {
                auto key = model::Key::from_base64(value.get<std::string>());
                if (!key) return fail("published " + path + ": not a key");
                t.published.emplace(path, *key);
            }
        std::string owned_why;
        auto owned = plan::ownership_from_json(j.at("owned_before").dump(), &owned_why);
        if (!owned) return fail("owned_before: " + owned_why);
        t.owned_before = std::move(*owned);
        auto bytes = from_base64(j.at("snapshot").get<std::string>());
        if (!bytes) return fail("snapshot: not base64");
        auto snap = decode_snapshot(*bytes);
        if (!snap) return fail("snapshot: not a snapshot of this version");
        t.snapshot = std::move(snap->first);
        t.labels = std::move(snap->second);
        return t;
    } catch (const nlohmann::json::exception& e) {
        return fail(e.what());
    }
}

}  // namespace wgf::inputs
