// rotate: the node's next key, generated beside its key file (0600, never printed) and published
// with its switch time as <keys_dir>/<fleet>/<node>.next.pub; every node that reconciles makes the
// switch at that time (apply/rotation.hpp).
#include <ctime>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "inputs/lock.hpp"
#include "inputs/rotation.hpp"
#include "linux/files.hpp"
#include "plan/rotation.hpp"
#include "system/journal.hpp"
#include "system/keys.hpp"

namespace wgf::cli {

int cmd_rotate(const Globals& g, const std::string& fleet_arg, const std::string& at_arg) {
    const int64_t now = time(nullptr);
    auto fail = [](const std::string& message) {
        std::cerr << "wg-fleet: " << message << "\n";
        return kError;
    };
    std::string why;
    const auto at = plan::parse_switch_time(at_arg.empty() ? fmt::format("+{}s", kRotateDelay) : at_arg, now, &why);
    if (!at) return fail("--at " + why);
    if (*at < now)
        return fail(fmt::format("--at {}: that is {}s in the past; give a time to come (+0s switches at once)", at_arg, now - *at));
    auto l = load(g);
    if (!l->fleet) return kError;
    const std::string node = this_node(g);
    if (!l->fleet->index.count(node)) return fail(not_in_fleets(*l->fleet, node, g.config));
    const model::Config& cfg = l->cfg();
    if (!cfg.keys_dir)
        return fail(
            fmt::format("{} has no keys_dir: rotate publishes the next key there (<keys_dir>/<fleet>/{}.next.pub) for the other "
                        "nodes to switch with this one; set keys_dir: to a directory every node reads",
                        g.config, node));
    std::vector<std::string> fleets;
    for (const auto& mb : l->fleet->index.at(node))
        if (fleet_arg.empty() || mb.fleet == fleet_arg) fleets.push_back(mb.fleet);
    if (fleets.empty()) {
        std::string in;
        for (const auto& mb : l->fleet->index.at(node)) in += (in.empty() ? "" : ", ") + mb.fleet;
        return fail(fmt::format("--fleet {}: {} is not in that fleet (it is in {})", fleet_arg, node, in));
    }
    auto lock = inputs::StateLock::acquire(cfg.state_dir, g.lock_timeout);
    if (!lock) return fail(lock.error().message);
    system::FileKeyStore keys;
    system::FileJournal journal(cfg.state_dir);
    for (const auto& fleet : fleets) {
        const std::string key_file = plan::private_key_path(cfg, fleet);
        const std::string next_file = plan::next_private_key_path(key_file);
        const std::string published = plan::next_key_path(*cfg.keys_dir, fleet, node);
        auto current = keys.load(key_file);
        if (!current) return fail(current.error().message);
        if (!current->has_value())
            return fail(
                fmt::format("{} has no key in fleet {} yet ({} does not exist): there is nothing to rotate; `wg-fleet apply` or "
                            "`wg-fleet keygen` makes the first key",
                            node, fleet, key_file));
        // A rotation already pending: its key is kept, only the time changes; once its time has
        // come, other nodes may have switched already, so it is completed first.
        auto pending = inputs::read_next_key_file(published, node, cfg);
        auto next = keys.load(next_file);
        if (!next) return fail(next.error().message);
        if (pending.key && next->has_value() && (*next)->public_key() == *pending.key && plan::switch_due(pending.switch_at, now))
            return fail(
                fmt::format("the rotation of fleet {} published in {} was due at {}: other nodes may have switched already; "
                            "`wg-fleet apply` completes it (then rotate again for another key)",
                            fleet, published, plan::format_rfc3339(pending.switch_at)));
        bool fresh = false;
        if (!next->has_value()) {
            auto made = keys.install(next_file, model::SecretKey::generate());
            if (!made) return fail(made.error().message);
            auto reread = keys.load(next_file);
            if (!reread || !reread->has_value())
                return fail(reread ? next_file + " vanished after it was written" : reread.error().message);
            next = std::move(reread);
            fresh = true;
        }
        const model::Key pub = (*next)->public_key();
        if (pub == (*current)->public_key()) return fail(fmt::format("{} holds the current key; remove it and rotate again", next_file));
        if (auto s = linux_::write_file_atomic(published, plan::format_next_key({.key = pub, .switch_at = *at}), 0644); !s)
            return fail(s.error().message + fmt::format(" (the next key stays in {} for another try)", next_file));
        const std::string line = fmt::format("rotation scheduled: fleet {}: next key {} published as {}; switch at {}", fleet,
                                             pub.short_str(), published, plan::format_rfc3339(*at));
        journal.record(line, backend::Status::ok());
        journal.flush();
        if (g.quiet == 0) {
            std::cout << fmt::format("{}: next key of {}: {} ({} {}, 0600)\n", fleet, node, pub.base64(),
                                     fresh ? "generated into" : "kept in", next_file);
            std::cout << fmt::format("{}: published {}\n", fleet, published);
            std::cout << fmt::format(
                "{}: switch at {} (in {}s): every node that runs watch switches then; a node that runs apply "
                "later switches at that run\n",
                fleet, plan::format_rfc3339(*at), *at - now);
        }
    }
    return kOk;
}

}  // namespace wgf::cli
