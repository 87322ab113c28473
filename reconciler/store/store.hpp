// serve's store: the clients enrolled through the API, in state_dir/serve.db (SQLite, 0600). One
// row per client: fleet, public key, address, source address, host name, registration and last
// ping. No private key is ever stored: a key pair serve generates for a client goes back in the
// response only. Every change is one transaction, so concurrent registrations (threads of one
// serve, or another process) never share an address and a failed request stores nothing. The
// store is also read read-only by every command that builds the desired state (inputs/enrolled).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/net.hpp"

struct sqlite3;

namespace wgf::serve {

inline constexpr std::string_view kStoreFile = "serve.db";

std::string store_path(const std::string& state_dir);

// A failure of the database itself (open, read, write): the message names the file.
class StoreError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Client {
    std::string fleet{};
    model::Key public_key{};
    model::IpAddr address{};
    std::string source_ip{};
    std::optional<std::string> host_name{};
    int64_t registered = 0;  // seconds since the epoch
    int64_t last_seen = 0;   // the registration or the last ping

    auto operator<=>(const Client&) const = default;
};

// Where a fleet's clients get their addresses.
struct Pool {
    model::Prefix subnet;
    std::optional<model::IpAddr> server;  // the server's own address: never a client's
    // Addresses other members of the fleet hold (the file's, Headscale nodes): never a client's.
    const std::set<model::IpAddr>* reserved = nullptr;
};

// Host names as the API accepts them, numbered suffix included: ^[a-z0-9_-]{1,63}$.
bool valid_host_name(std::string_view name);

// The name a client asking for `wanted` gets, given the names other live clients of its fleet
// hold (`taken`) and the one it holds now: its own name when that is `wanted` or a numbered form
// of it (a client keeps its name), else `wanted`, else the first free `wanted--N` from N = 2.
// nullopt when that name would break the host name rule (too long).
std::optional<std::string> dedup_host_name(std::string_view wanted, const std::optional<std::string>& current,
                                           const std::vector<std::string>& taken);

struct Registration {
    std::optional<Client> client;  // unset: the pool is full
    bool existing = false;         // the key was enrolled already: its address is kept
};

// What an import did: clients added, and clients found enrolled already with the same key and address.
struct ImportCount {
    size_t added = 0;
    size_t unchanged = 0;
};

enum class PingOutcome { ok, unknown_client, bad_host_name };

struct PingResult {
    PingOutcome outcome = PingOutcome::ok;
    std::optional<std::string> host_name{};  // the name the client holds after the ping
};

class Store {
public:
    // Opens state_dir/serve.db for writing, creating it (and state_dir) when missing; the file is
    // made 0600 whatever the umask or its mode before. Throws StoreError.
    explicit Store(const std::string& state_dir);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    const std::string& path() const { return path_; }

    // Enrolls `key` in `fleet` with the lowest free address of the pool after the highest one
    // given out (then any gap), or returns the address it has already. It returns once the
    // registration is committed; registrations that arrive while another commit is under way
    // share the next transaction (a commit costs a few fsyncs, not a registration each).
    Registration register_client(const std::string& fleet, const Pool& pool, const model::Key& key, const std::string& source_ip,
                                 int64_t now);
    // The client of `fleet` at `address`: last seen now, and the host name asked for, if any,
    // numbered past other clients' names and `reserved` (the names the fleet's file members hold).
    PingResult ping(const std::string& fleet, const model::IpAddr& address, const std::optional<std::string>& host_name, int64_t now,
                    const std::set<std::string>& reserved = {});
    // Removes these clients of `fleet`; returns how many there were.
    size_t remove(const std::string& fleet, const std::vector<model::Key>& keys);
    // Adds these clients as they are (address, key, host name, times; `serve --import-python`), all
    // in one transaction or none. A client enrolled already with the same key and address is left
    // as it is; any other clash (its key at another address, its address or host name another
    // client's) throws StoreError naming both, and nothing is stored.
    ImportCount import_clients(const std::vector<Client>& clients);
    // Every client (of one fleet, when given), ordered by fleet and address.
    std::vector<Client> clients(const std::optional<std::string>& fleet = std::nullopt);
    // How many clients each fleet has (fleets without any are left out).
    std::map<std::string, size_t> counts();

private:
    struct Pending;

    std::string path_;
    sqlite3* db_ = nullptr;
    std::mutex mu_;  // one connection, one statement at a time
    // Registrations waiting for the next commit, and whether a thread is committing them.
    std::mutex queue_mu_;
    std::condition_variable queue_cv_;
    std::deque<std::shared_ptr<Pending>> queue_;
    bool committing_ = false;

    Registration register_one(const std::string& fleet, const Pool& pool, const model::Key& key, const std::string& source_ip, int64_t now);
    void commit_batch(const std::vector<std::shared_ptr<Pending>>& batch);
};

// Every client in the store at `path`, read-only. A missing file is no clients; any other
// failure throws StoreError naming the file.
std::vector<Client> read_clients(const std::string& path);

}  // namespace wgf::serve
