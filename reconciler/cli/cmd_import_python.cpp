// `serve --import-python DB [--wg-conf-dir DIR]`: the Python wg-fleet manager's clients into
// serve's store and its server keys into state_dir, so that the device it left (wg_<fleet>) is
// adopted with its private key and every client keeps its address, key, host name and session.
// Everything is checked first (serve/import_python); only then, under the state directory's
// lock, are the key files written (never replacing one) and the clients stored in one
// transaction. A private key is never printed.
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "inputs/lock.hpp"
#include "model/fd.hpp"
#include "plan/render.hpp"
#include "serve/import_python.hpp"
#include "store/python_db.hpp"
#include "store/store.hpp"
#include "system/keys.hpp"

namespace wgf::cli {
namespace {

constexpr size_t kConfMax = 1 << 20;

// A wg_<fleet>.conf's text; a missing file leaves it unset (the importer decides whether that
// matters). It holds a private key: the caller wipes the text.
void read_conf(serve::ConfFile& c, std::vector<std::string>& errors, std::vector<std::string>& warnings) {
    model::Fd fd(open(c.path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0) {
        if (errno != ENOENT) errors.push_back(fmt::format("{}: cannot read it: {}", c.path, std::strerror(errno)));
        return;
    }
    struct stat st {};
    if (fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > static_cast<off_t>(kConfMax)) {
        errors.push_back(fmt::format("{}: not a regular file of at most {} bytes", c.path, kConfMax));
        return;
    }
    if (st.st_mode & 077)
        warnings.push_back(fmt::format("{}: mode {:04o}: the server's private key in it was readable by others (wg-fleet keeps it 0600)",
                                       c.path, st.st_mode & 07777));
    std::string text(static_cast<size_t>(st.st_size), '\0');
    size_t off = 0;
    while (off < text.size()) {
        ssize_t n = read(fd.fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += static_cast<size_t>(n);
    }
    text.resize(off);
    c.text = std::move(text);
}

void wipe(std::map<std::string, serve::ConfFile>& confs) {
    for (auto& [name, c] : confs)
        if (c.text) explicit_bzero(c.text->data(), c.text->size());
}

// With --json, the errors also go to stdout in check's diagnostics shape.
int refuse(const Loaded& l, bool json, const std::string& db, const std::vector<std::string>& errors) {
    for (const auto& e : errors) fmt::print(stderr, "wg-fleet: error: {}\n", e);
    fmt::print(stderr, "{}: nothing imported ({} problem(s))\n", db, errors.size());
    if (json) fmt::print("{}", output::diagnostics_json(l.diags, l.sources, errors));
    return kError;
}

}  // namespace

int import_python(const Globals& g, const std::string& db, const std::string& conf_dir, bool json) {
    auto l = load(g);
    if (!l->fleet) return refuse(*l, json, db, {});
    const model::Config& cfg = l->cfg();
    const std::string node = this_node(g);
    serve::PythonTable table;
    std::vector<serve::Client> enrolled;
    try {
        table = serve::read_python_clients(db);
        enrolled = serve::read_clients(serve::store_path(cfg.state_dir));
    } catch (const serve::StoreError& e) {
        return refuse(*l, json, db, {e.what()});
    }

    std::vector<std::string> errors, warnings;
    std::map<std::string, serve::ConfFile> confs;
    for (const auto& name : serve::fleets_to_import(cfg, node, table)) {
        serve::ConfFile c{.path = fmt::format("{}/wg_{}.conf", conf_dir, name), .text = std::nullopt};
        read_conf(c, errors, warnings);
        confs.emplace(name, std::move(c));
    }
    serve::PythonImport plan = serve::plan_python_import({.cfg = cfg,
                                                          .config_path = g.config,
                                                          .node = node,
                                                          .db_path = db,
                                                          .table = table,
                                                          .confs = confs,
                                                          .enrolled = enrolled,
                                                          .now = static_cast<int64_t>(time(nullptr))});
    wipe(confs);
    errors.insert(errors.end(), plan.errors.begin(), plan.errors.end());
    for (const auto& w : warnings) fmt::print(stderr, "wg-fleet: warning: {}\n", w);
    for (const auto& n : plan.notes) fmt::print(stderr, "wg-fleet: note: {}\n", n);
    if (!errors.empty()) return refuse(*l, json, db, errors);
    if (plan.server_keys.empty())
        return refuse(*l, json, db,
                      {fmt::format("node '{}' serves no fleet of {} with a wg_<fleet>.conf in {}", node, g.config, conf_dir)});

    // The key files are checked before the lock is taken (a refusal writes nothing, not even the
    // lock file) and again under it, where they are written.
    system::FileKeyStore keys;
    auto key_clashes = [&] {
        std::vector<std::string> out;
        for (const auto& [fleet, key] : plan.server_keys) {
            const std::string path = plan::private_key_path(cfg, fleet);
            auto have = keys.load(path);
            if (!have) out.push_back(have.error().message);
            else if (have->has_value() && !(**have == key))
                out.push_back(
                    fmt::format("{} holds another private key than {}: with it, wg_{} would get a new identity and every "
                                "client's session would end; move that file away (it is fleet {}'s key) and import again",
                                path, confs.at(fleet).path, fleet, fleet));
        }
        return out;
    };
    if (errors = key_clashes(); !errors.empty()) return refuse(*l, json, db, errors);
    auto lock = inputs::StateLock::acquire(cfg.state_dir, g.lock_timeout);
    if (!lock) return refuse(*l, json, db, {lock.error().message});
    if (errors = key_clashes(); !errors.empty()) return refuse(*l, json, db, errors);
    std::vector<std::string> created;
    auto undo = [&] {
        for (const auto& p : created) unlink(p.c_str());
    };
    for (const auto& [fleet, key] : plan.server_keys) {
        const std::string path = plan::private_key_path(cfg, fleet);
        auto w = keys.install(path, key);
        if (!w) {
            undo();
            return refuse(*l, json, db, {w.error().message});
        }
        if (*w) created.push_back(path);
    }
    serve::ImportCount count;
    try {
        serve::Store store(cfg.state_dir);
        count = store.import_clients(plan.clients);
    } catch (const serve::StoreError& e) {
        undo();
        return refuse(*l, json, db, {e.what()});
    }
    std::string adopt;
    for (const auto& [fleet, key] : plan.server_keys) adopt += " --adopt " + cfg.fleets.at(fleet).interface;
    if (json) {
        // Version 1 of its shape (README "JSON output").
        nlohmann::ordered_json fleets = nlohmann::ordered_json::array(), adopted = nlohmann::ordered_json::array();
        for (const auto& [fleet, n] : plan.per_fleet)
            fleets.push_back({{"fleet", fleet},
                              {"clients", n},
                              {"key_file", plan::private_key_path(cfg, fleet)},
                              {"server_public_key", plan.server_keys.at(fleet).public_key().base64()}});
        for (const auto& [fleet, key] : plan.server_keys) adopted.push_back(cfg.fleets.at(fleet).interface);
        nlohmann::ordered_json out{{"version", 1},
                                   {"source", db},
                                   {"store", serve::store_path(cfg.state_dir)},
                                   {"fleets", std::move(fleets)},
                                   {"added", count.added},
                                   {"unchanged", count.unchanged},
                                   {"adopt", std::move(adopted)}};
        fmt::print("{}\n", out.dump(2));
        return kOk;
    }
    for (const auto& [fleet, n] : plan.per_fleet)
        fmt::print("{}: fleet {}: {} client(s) in {}; the server's key of wg_{} kept in {} (public key {})\n", db, fleet, n,
                   serve::store_path(cfg.state_dir), fleet, plan::private_key_path(cfg, fleet),
                   plan.server_keys.at(fleet).public_key().base64());
    fmt::print("{}: {} client(s) added, {} enrolled already with the same key and address\n", db, count.added, count.unchanged);
    fmt::print(
        "next, with the Python wg-fleet stopped: `wg-fleet apply{}` once (it takes the device over, keeping its key and "
        "sessions), then wg-fleet serve\n",
        adopt);
    return kOk;
}

}  // namespace wgf::cli
