// `serve --import-python`: the Python wg-fleet manager's clients (its clients.db) and server keys
// (its /etc/wireguard/wg_<fleet>.conf) checked against the fleet file, pure: rows and file texts
// in, the clients for serve's store and the key of each fleet's server out, or every reason the
// import is refused. Every client keeps its address, key and host name, and the server keeps its
// private key, so the device adopted later keeps its identity and the clients their sessions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/net.hpp"
#include "model/spec.hpp"
#include "store/python_db.hpp"
#include "store/store.hpp"

namespace wgf::serve {

// What wg-quick reads from a wg_<fleet>.conf that matters here.
struct WgQuickPeer {
    model::Key public_key{};
    std::vector<model::Prefix> allowed_ips{};
    int line = 0;
};

struct WgQuickConf {
    std::optional<model::SecretKey> private_key{};
    std::optional<uint16_t> listen_port{};
    std::vector<model::Prefix> addresses{};  // a bare address is a /32 or /128, as wg-quick takes it
    std::vector<WgQuickPeer> peers{};
};

// Parses a wg-quick configuration; each problem is appended to `errors` as "FILE:LINE: what".
// The private key's text never appears in a message.
WgQuickConf parse_wg_quick(std::string_view text, const std::string& file, std::vector<std::string>& errors);

// Seconds since the epoch of a timestamp as the Python manager stored it: SQLAlchemy's
// "YYYY-MM-DD HH:MM:SS[.ffffff]" in UTC (also with 'T', 'Z' or a "+HH:MM" offset), or a number.
std::optional<int64_t> parse_python_time(std::string_view text, bool is_number);

// One wg_<fleet>.conf as read: its path, and its text unless it does not exist.
struct ConfFile {
    std::string path;
    std::optional<std::string> text;
};

struct PythonImportInput {
    const model::Config& cfg;  // loaded: the file and its drop-ins (dynamic members included)
    std::string config_path;   // for messages
    std::string node;          // this node: it must be the server of every fleet imported
    std::string db_path;       // for messages
    const PythonTable& table;
    std::map<std::string, ConfFile> confs;  // per fleet (see fleets_to_import)
    std::vector<Client> enrolled;           // serve's store as it is
    int64_t now = 0;                        // the time of a row without a timestamp
};

struct PythonImport {
    std::vector<Client> clients{};
    std::map<std::string, model::SecretKey> server_keys{};  // per fleet: from its wg_<fleet>.conf
    std::map<std::string, size_t> per_fleet{};              // clients of each fleet imported
    std::vector<std::string> errors{};                      // any: nothing may be written
    std::vector<std::string> notes{};                       // what was left aside, and why
};

// The fleets whose wg_<fleet>.conf the import reads: every subnet-style fleet of the file this
// node serves, and every fleet the database names.
std::vector<std::string> fleets_to_import(const model::Config& cfg, const std::string& node, const PythonTable& table);

PythonImport plan_python_import(const PythonImportInput& in);

}  // namespace wgf::serve
