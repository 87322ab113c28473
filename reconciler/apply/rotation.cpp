#include "apply/rotation.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "plan/render.hpp"

namespace wgf::apply {
namespace {

// How long after the switch time the rotated node keeps its next key's file published.
constexpr int64_t kNextKeyKept = 30;

void earliest_switch(std::optional<int64_t>& at, int64_t t) { at = at ? std::min(*at, t) : t; }

const model::Key* key_of_member(const model::InterfaceLabels& l, const std::string& node) {
    for (const auto& [k, n] : l.peer_names)
        if (n == node) return &k;
    return nullptr;
}

class Rotator {
public:
    Rotator(const RotationInputs& in, model::HostState& desired, model::Labels& labels, const std::string& keys_dir,
            const std::string& node, bool apply, int64_t now)
        : in_(in), desired_(desired), labels_(labels), keys_dir_(keys_dir), node_(node), apply_(apply), now_(now) {}

    RotationOutcome run() {
        for (auto& [ifname, w] : desired_.interfaces) {
            auto& l = labels_.interfaces[ifname];
            std::set<std::string> acted;  // members whose next key file decided this run
            for (auto& f : in_.next.read(keys_dir_, l.fleet)) {
                if (!f.key) {
                    out_.warnings.push_back(
                        fmt::format("{}: refused as the next key of {} in fleet {}: {}", f.path, f.node, l.fleet, f.refused));
                    continue;
                }
                if (f.node == node_) own(w, l, f);
                else if (peer(ifname, l, f)) acted.insert(f.node);
            }
            remembered(ifname, l, acted);
        }
        return std::move(out_);
    }

private:
    void record(const std::string& line, const backend::Status& s) {
        if (!in_.journal) return;
        in_.journal->record(line, s);
        in_.journal->flush();
    }

    void own(model::WgInterface& w, model::InterfaceLabels& l, const backend::NextKeyFile& f) {
        if (l.generate_key || !w.public_key) return;  // no key yet: the run generates one
        if (*w.public_key == *f.key) {
            // The switch is complete. The file stays a while after the switch time: a node whose
            // run at that time comes later than this node's (a busy machine) still finds the
            // next key there, where it would otherwise find neither it nor, in a configuration
            // loaded before, the new key. After that, it goes.
            if (apply_ && now_ >= f.switch_at + kNextKeyKept)
                if (auto s = in_.keys.unpublish(f.path); !s) out_.warnings.push_back(s.error().message);
            return;
        }
        if (!plan::switch_due(f.switch_at, now_)) {
            earliest_switch(out_.next_switch, f.switch_at);
            return;
        }
        const std::string next_file = plan::next_private_key_path(l.private_key_file);
        auto next = in_.keys.load(next_file);
        if (!next || !next->has_value()) {
            out_.warnings.push_back(
                fmt::format("the switch of {}'s key in fleet {} was due at {}, but {} {}: the old key stays; run "
                            "`wg-fleet rotate --fleet {}` again",
                            node_, l.fleet, plan::format_rfc3339(f.switch_at), next_file,
                            next ? "does not exist" : "cannot be read (" + next.error().message + ")", l.fleet));
            return;
        }
        const model::Key pub = (*next)->public_key();
        if (pub != *f.key) {
            out_.warnings.push_back(
                fmt::format("{} does not hold the key {} publishes: the old key stays; run `wg-fleet rotate --fleet {}` "
                            "again",
                            next_file, f.path, l.fleet));
            return;
        }
        if (!apply_) {
            // plan: the device gets the next key, from the file it is in until the apply moves it.
            w.public_key = pub;
            l.private_key_file = next_file;
            return;
        }
        // The key file first: from here the node's key is the new one, whatever else fails (the
        // next run sets it on the device and publishes it).
        const std::string line = fmt::format("key switched: {} moved to {} (fleet {}, public key {})", next_file, l.private_key_file,
                                             l.fleet, pub.short_str());
        auto s = in_.keys.promote(next_file, l.private_key_file);
        record(line, s);
        if (!s) {
            out_.warnings.push_back(s.error().message);
            return;
        }
        w.public_key = pub;
        out_.own_switched.push_back(l.fleet);
        // The new public key is published; the next key's file stays until kNextKeyKept after
        // the switch time (removed by a later run), so a reader finds the new key in one or both.
        if (auto p = in_.keys.publish(plan::published_key_path(keys_dir_, l.fleet, node_), pub); !p)
            out_.warnings.push_back(p.error().message);
    }

    // Returns whether the file decided the member's key this run.
    bool peer(const std::string& ifname, model::InterfaceLabels& l, const backend::NextKeyFile& f) {
        const model::Key* current = key_of_member(l, f.node);
        if (!current) return false;  // not a peer of this node (or pending)
        if (!plan::switch_due(f.switch_at, now_)) {
            if (*current != *f.key) earliest_switch(out_.next_switch, f.switch_at);
            return false;
        }
        if (*current == *f.key) return true;  // a stale file: the fleet knows the key already
        auto sw = plan::switch_peer_key(desired_, labels_, ifname, f.node, *f.key);
        if (!sw) return false;
        // Reported once: a watch that made this switch before makes it again in every desired
        // state (its loaded configuration has the old key), which changes nothing on the device.
        bool news = true;
        if (in_.memory) {
            auto& kept = in_.memory->switched;
            auto it = kept.find({ifname, f.node});
            news = it == kept.end() || it->second != *sw;
            kept.insert_or_assign({ifname, f.node}, *sw);
        }
        if (news) out_.peers.push_back(std::move(*sw));
        return true;
    }

    // Switches made earlier whose file is gone: kept while the loaded key is still the old one.
    void remembered(const std::string& ifname, model::InterfaceLabels& l, const std::set<std::string>& acted) {
        if (!in_.memory) return;
        auto& m = in_.memory->switched;
        for (auto it = m.lower_bound({ifname, std::string()}); it != m.end() && it->first.first == ifname;) {
            const auto& sw = it->second;
            if (acted.count(sw.node)) {  // decided by its file this run
                ++it;
                continue;
            }
            const model::Key* current = key_of_member(l, sw.node);
            if (!current || *current != sw.old_key) {  // the configuration caught up, or moved on
                it = m.erase(it);
                continue;
            }
            (void)plan::switch_peer_key(desired_, labels_, ifname, sw.node, sw.new_key);  // made before: not news
            ++it;
        }
    }

    const RotationInputs& in_;
    model::HostState& desired_;
    model::Labels& labels_;
    const std::string& keys_dir_;
    const std::string& node_;
    bool apply_;
    int64_t now_;
    RotationOutcome out_;
};

}  // namespace

RotationOutcome apply_rotations(const RotationInputs& in, model::HostState& desired, model::Labels& labels, const std::string& keys_dir,
                                const std::string& node, bool apply, int64_t now) {
    return Rotator(in, desired, labels, keys_dir, node, apply, now).run();
}

}  // namespace wgf::apply
