#include "plan/ownership_json.hpp"

#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include <fmt/format.h>
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
    nlohmann::ordered_json names = nlohmann::ordered_json::object();
    for (const auto& [ifname, m] : o.names) {
        auto& obj = names[ifname] = nlohmann::ordered_json::object();
        for (const auto& [k, n] : m) obj[k.base64()] = n;
    }
    j["names"] = names;
    if (!o.reloads.empty()) j["reloads"] = o.reloads;
    if (!o.reload_commands.empty()) j["reload_commands"] = o.reload_commands;
    return j.dump(1) + "\n";
}

namespace {

// Reads the record while nlohmann's parser walks the text (SAX): a large node's record is one
// array of 10,000 peer keys, and building the JSON document first cost more than the rest of
// the load. Each section must have the shape ownership_to_json gives it; other top-level keys
// ("version") are skipped. A key given twice counts as it does in a JSON document: the last.
class RecordReader final : public nlohmann::json_sax<nlohmann::json> {
public:
    explicit RecordReader(Ownership& o) : o_(o) {}

    // Why the text is not a record; empty after a whole record.
    std::string finish() {
        if (!error_.empty()) return error_;
        for (Section s : {Section::interfaces, Section::peers, Section::endpoints, Section::files})
            if (!seen_.count(s)) return fmt::format("no \"{}\"", name_of(s));
        return {};
    }

    bool start_object(std::size_t) override {
        return (depth_ == 0 || skipping() || shape() == Shape::object) ? (++depth_, true) : wrong("an object");
    }
    bool end_object() override {
        if (depth_ == 3 && section_ == Section::sysctls) {
            if (!original_ || !value_) return fail(fmt::format("sysctls: {} lacks \"original\" or \"value\"", sysctl_));
            OwnedSysctl rec{std::move(*original_), std::move(*value_)};
            // Only sysctls wg-fleet sets, with values it could have found, are ever written back.
            if (is_managed_sysctl(sysctl_, rec.original) && is_managed_sysctl(sysctl_, rec.value))
                o_.sysctls.insert_or_assign(sysctl_, std::move(rec));
        }
        return --depth_, true;
    }
    bool start_array(std::size_t) override {
        return (depth_ > 0 && (skipping() || shape() == Shape::array)) ? (++depth_, true) : wrong("an array");
    }
    bool end_array() override { return --depth_, true; }
    bool key(string_t& k) override {
        if (depth_ == 1) {
            section_ = section_of(k);
            if (!seen_.insert(section_).second) clear(section_);
        } else if (depth_ == 2 && section_ == Section::peers) {
            peers_ = &(o_.peers[k] = {});
        } else if (depth_ == 2 && section_ == Section::endpoints) {
            endpoints_ = &(o_.endpoints[k] = {});
        } else if (depth_ == 2 && section_ == Section::names) {
            names_ = &(o_.names[k] = {});
        } else if (depth_ == 2 && section_ == Section::sysctls) {
            sysctl_ = k;
            original_.reset();
            value_.reset();
        } else if (depth_ == 3 || (depth_ == 2 && section_ == Section::reload_commands)) {
            inner_key_ = k;
        }
        return true;
    }
    bool string(string_t& v) override {
        if (skipping()) return true;
        if (depth_ == 0 || shape() != Shape::string) return wrong("a string");
        switch (section_) {
            case Section::interfaces: o_.interfaces.insert(v); break;
            case Section::files: o_.files.insert(v); break;
            case Section::reloads: o_.reloads.insert(v); break;
            case Section::reload_commands: o_.reload_commands.insert_or_assign(inner_key_, v); break;
            case Section::peers:
                // A key that is not one is dropped, as the diff could not match it anyway.
                if (auto key = model::Key::from_base64(v)) peers_->insert(peers_->end(), *key);
                break;
            case Section::endpoints: {
                auto key = model::Key::from_base64(inner_key_);
                auto ep = model::Endpoint::parse(v);
                if (key && ep) endpoints_->insert_or_assign(*key, std::move(*ep));
                break;
            }
            case Section::names:
                if (auto key = model::Key::from_base64(inner_key_)) names_->insert_or_assign(*key, v);
                break;
            case Section::sysctls: (inner_key_ == "original" ? original_ : value_) = v; break;
            case Section::other: break;
        }
        return true;
    }
    bool null() override { return skipping() || wrong("null"); }
    bool boolean(bool) override { return skipping() || wrong("a boolean"); }
    bool number_integer(number_integer_t) override { return skipping() || wrong("a number"); }
    bool number_unsigned(number_unsigned_t) override { return skipping() || wrong("a number"); }
    bool number_float(number_float_t, const string_t&) override { return skipping() || wrong("a number"); }
    bool binary(binary_t&) override { return skipping() || wrong("binary data"); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override { return fail(e.what()); }

private:
    enum class Section { other, interfaces, peers, endpoints, files, sysctls, names, reloads, reload_commands };
    enum class Shape { object, array, string };
    static constexpr std::pair<std::string_view, Section> kSections[] = {
        {"interfaces", Section::interfaces}, {"peers", Section::peers},
        {"endpoints", Section::endpoints},   {"files", Section::files},
        {"sysctls", Section::sysctls},       {"names", Section::names},
        {"reloads", Section::reloads},       {"reload_commands", Section::reload_commands}};
    static Section section_of(std::string_view k) {
        for (const auto& [name, s] : kSections)
            if (k == name) return s;
        return Section::other;
    }
    static std::string_view name_of(Section s) {
        for (const auto& [name, sec] : kSections)
            if (sec == s) return name;
        return "";
    }
    // What ownership_to_json writes at the current depth (1: the section's value) of a section.
    Shape shape() const {
        switch (section_) {
            case Section::interfaces:
            case Section::files:
            case Section::reloads: return depth_ == 1 ? Shape::array : Shape::string;
            case Section::peers: return depth_ == 1 ? Shape::object : depth_ == 2 ? Shape::array : Shape::string;
            case Section::endpoints:
            case Section::names:
            case Section::sysctls: return depth_ <= 2 ? Shape::object : Shape::string;
            case Section::reload_commands: return depth_ == 1 ? Shape::object : Shape::string;
            case Section::other: break;
        }
        return Shape::string;
    }
    // Inside a value that is not read: a top-level key not ours, a sysctl's other fields.
    bool skipping() const {
        if (depth_ >= 1 && section_ == Section::other) return true;
        return depth_ >= 3 && section_ == Section::sysctls && inner_key_ != "original" && inner_key_ != "value";
    }
    void clear(Section s) {
        switch (s) {
            case Section::interfaces: o_.interfaces.clear(); break;
            case Section::peers: o_.peers.clear(); break;
            case Section::endpoints: o_.endpoints.clear(); break;
            case Section::files: o_.files.clear(); break;
            case Section::sysctls: o_.sysctls.clear(); break;
            case Section::names: o_.names.clear(); break;
            case Section::reloads: o_.reloads.clear(); break;
            case Section::reload_commands: o_.reload_commands.clear(); break;
            case Section::other: break;
        }
    }
    bool wrong(const char* what) {
        if (depth_ == 0) return fail(fmt::format("{} where the record's object belongs", what));
        return fail(fmt::format("{} in \"{}\", where it has none", what, name_of(section_)));
    }
    bool fail(std::string why) {
        error_ = std::move(why);
        return false;
    }

    Ownership& o_;
    std::string error_;
    std::set<Section> seen_;
    int depth_ = 0;  // containers open: 1 inside the record's object
    Section section_ = Section::other;
    std::set<model::Key>* peers_ = nullptr;
    std::map<model::Key, model::Endpoint>* endpoints_ = nullptr;
    std::map<model::Key, std::string>* names_ = nullptr;
    std::string sysctl_, inner_key_;  // the key at depth 2 (sysctls) and at depth 3
    std::optional<std::string> original_, value_;
};

}  // namespace

std::optional<Ownership> ownership_from_json(const std::string& text, std::string* error) {
    Ownership o;
    RecordReader reader(o);
    nlohmann::json::sax_parse(text, &reader);
    if (auto why = reader.finish(); !why.empty()) {
        if (error) *error = std::move(why);
        return std::nullopt;
    }
    return o;
}

}  // namespace wgf::plan
