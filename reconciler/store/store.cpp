#include "store/store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "model/fd.hpp"

namespace wgf::serve {
namespace {

constexpr int kBusyTimeoutMs = 10000;

// SQLite's own busy handler sleeps longer and longer (up to 100 ms) while another connection
// holds the lock: serve's loop reads the store on every converge, and a commit that waited for
// such a read would sleep well past its end. Short sleeps instead, up to the same timeout.
int busy_wait(void*, int tries) {
    constexpr int kSleepUs = 500;
    if (tries >= kBusyTimeoutMs * 1000 / kSleepUs) return 0;
    usleep(kSleepUs);
    return 1;
}

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS clients (
    fleet TEXT NOT NULL,
    public_key TEXT NOT NULL,
    address BLOB NOT NULL,
    source_ip TEXT NOT NULL,
    host_name TEXT,
    registered INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (fleet, public_key),
    UNIQUE (fleet, address),
    UNIQUE (fleet, host_name)
);
)";

// One prepared statement, finalized when it goes.
class Stmt {
public:
    Stmt(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
        if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) fail("prepare");
    }
    ~Stmt() { sqlite3_finalize(s_); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;

    Stmt& text(int i, std::string_view v) {
        check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    Stmt& opt_text(int i, const std::optional<std::string>& v) {
        check(v ? sqlite3_bind_text(s_, i, v->data(), static_cast<int>(v->size()), SQLITE_TRANSIENT) : sqlite3_bind_null(s_, i));
        return *this;
    }
    Stmt& blob(int i, const model::IpAddr& a) {
        check(sqlite3_bind_blob(s_, i, a.bytes.data(), a.is_v4() ? 4 : 16, SQLITE_TRANSIENT));
        return *this;
    }
    Stmt& integer(int i, int64_t v) {
        check(sqlite3_bind_int64(s_, i, v));
        return *this;
    }
    // True for a row, false when done.
    bool step() {
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        fail("step");
    }
    void run() {
        while (step()) {
        }
    }
    void reset() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }

    std::string col_text(int i) const {
        auto* p = sqlite3_column_text(s_, i);
        return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, i))) : std::string();
    }
    bool col_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
    int64_t col_int(int i) const { return sqlite3_column_int64(s_, i); }
    model::IpAddr col_addr(int i) const {
        model::IpAddr a;
        const void* p = sqlite3_column_blob(s_, i);
        int n = sqlite3_column_bytes(s_, i);
        if (!p || (n != 4 && n != 16)) throw StoreError(fmt::format("{}: a client's address is not 4 or 16 bytes", path_));
        a.family = n == 4 ? 4 : 6;
        std::memcpy(a.bytes.data(), p, static_cast<size_t>(n));
        return a;
    }

private:
    sqlite3* db_;
    const std::string& path_;
    sqlite3_stmt* s_ = nullptr;

    void check(int rc) {
        if (rc != SQLITE_OK) fail("bind");
    }
    [[noreturn]] void fail(const char* what) { throw StoreError(fmt::format("{}: {}: {}", path_, what, sqlite3_errmsg(db_))); }
};

void exec(sqlite3* db, const std::string& path, const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db);
        sqlite3_free(err);
        throw StoreError(fmt::format("{}: {}", path, msg));
    }
}

// BEGIN IMMEDIATE takes the write lock at once, so two writers never both read the free
// addresses before either writes; anything but commit rolls back.
class Transaction {
public:
    Transaction(sqlite3* db, const std::string& path) : db_(db), path_(path) { exec(db, path, "BEGIN IMMEDIATE"); }
    ~Transaction() {
        if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void commit() {
        exec(db_, path_, "COMMIT");
        done_ = true;
    }

private:
    sqlite3* db_;
    const std::string& path_;
    bool done_ = false;
};

std::optional<model::Key> parse_key(const std::string& text) { return model::Key::from_base64(text); }

Client read_row(const Stmt& s, const std::string& path) {
    auto key = parse_key(s.col_text(1));
    if (!key) throw StoreError(fmt::format("{}: a client's public key is not a WireGuard key", path));
    return Client{.fleet = s.col_text(0),
                  .public_key = *key,
                  .address = s.col_addr(2),
                  .source_ip = s.col_text(3),
                  .host_name = s.col_null(4) ? std::nullopt : std::optional(s.col_text(4)),
                  .registered = s.col_int(5),
                  .last_seen = s.col_int(6)};
}

constexpr const char* kSelect = "SELECT fleet, public_key, address, source_ip, host_name, registered, last_seen FROM clients";

std::vector<Client> select_clients(sqlite3* db, const std::string& path, const std::optional<std::string>& fleet) {
    std::string sql = std::string(kSelect) + (fleet ? " WHERE fleet = ?1" : "") + " ORDER BY fleet, address";
    Stmt s(db, path, sql.c_str());
    if (fleet) s.text(1, *fleet);
    std::vector<Client> out;
    while (s.step()) out.push_back(read_row(s, path));
    return out;
}

// a + 1 within the address's width; false on wrap-around.
bool increment(model::IpAddr& a) {
    int lo = a.is_v4() ? 3 : 15;
    for (int i = lo; i >= 0; --i)
        if (++a.bytes[static_cast<size_t>(i)] != 0) return true;
    return false;
}

// The last address of a subnet (all host bits set).
model::IpAddr last_of(const model::Prefix& p) {
    model::IpAddr a = p.masked().addr;
    unsigned bits = a.bits();
    for (unsigned b = p.len; b < bits; ++b) a.bytes[b / 8] |= static_cast<uint8_t>(0x80u >> (b % 8));
    return a;
}

// Whether a client may hold `a`: inside the subnet, not its first address (the subnet-router
// anycast, or IPv4's network), not IPv4's broadcast, not the server's.
bool usable(const Pool& pool, const model::IpAddr& a) {
    if (!pool.subnet.contains(a) || a == pool.subnet.masked().addr) return false;
    if (a.is_v4() && pool.subnet.len < 31 && a == last_of(pool.subnet)) return false;
    return !(pool.server && *pool.server == a) && !(pool.reserved && pool.reserved->count(a));
}

std::optional<model::IpAddr> allocate(sqlite3* db, const std::string& path, const std::string& fleet, const Pool& pool) {
    // Fast path: right after the highest address given out (registrations are mostly appends).
    Stmt top(db, path, "SELECT address FROM clients WHERE fleet = ?1 ORDER BY address DESC LIMIT 1");
    top.text(1, fleet);
    model::IpAddr next = pool.subnet.masked().addr;
    if (top.step()) next = top.col_addr(0);
    for (int i = 0; i < 2; ++i) {  // past the server's address, if it is next
        if (!increment(next)) break;
        if (usable(pool, next)) return next;
    }
    // Else the first gap: walk the taken addresses in order.
    Stmt all(db, path, "SELECT address FROM clients WHERE fleet = ?1 ORDER BY address");
    all.text(1, fleet);
    std::set<model::IpAddr> taken;
    while (all.step()) taken.insert(all.col_addr(0));
    model::IpAddr a = pool.subnet.masked().addr;
    const model::IpAddr last = last_of(pool.subnet);
    while (a != last && increment(a))
        if (usable(pool, a) && !taken.count(a)) return a;
    return std::nullopt;
}

}  // namespace

std::string store_path(const std::string& state_dir) { return state_dir + "/" + std::string(kStoreFile); }

bool valid_host_name(std::string_view name) {
    if (name.empty() || name.size() > 63) return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; });
}

std::optional<std::string> dedup_host_name(std::string_view wanted, const std::optional<std::string>& current,
                                           const std::vector<std::string>& taken) {
    if (current) {
        std::string_view c = *current;
        if (c == wanted) return std::string(wanted);
        if (c.size() > wanted.size() + 2 && c.substr(0, wanted.size()) == wanted && c.substr(wanted.size(), 2) == "--") {
            std::string_view n = c.substr(wanted.size() + 2);
            if (n[0] != '0' && std::all_of(n.begin(), n.end(), [](char d) { return d >= '0' && d <= '9'; })) return std::string(c);
        }
    }
    std::set<std::string_view> used(taken.begin(), taken.end());
    std::string name(wanted);
    for (size_t n = 2; used.count(name); ++n) name = fmt::format("{}--{}", wanted, n);
    if (!valid_host_name(name)) return std::nullopt;
    return name;
}

Store::Store(const std::string& state_dir) : path_(store_path(state_dir)) {
    if (mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw StoreError(fmt::format("{}: cannot create it: {}", state_dir, std::strerror(errno)));
    // Created here, not by SQLite, so that it is 0600 whatever the umask; an existing file that
    // others may read is made private again. SQLite gives its journal the file's mode.
    model::Fd fd(open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.fd < 0) throw StoreError(fmt::format("{}: cannot open it: {}", path_, std::strerror(errno)));
    struct stat st {};
    if (fstat(fd.fd, &st) != 0 || !S_ISREG(st.st_mode)) throw StoreError(fmt::format("{}: not a regular file", path_));
    if ((st.st_mode & 07777) != 0600 && fchmod(fd.fd, 0600) != 0)
        throw StoreError(fmt::format("{}: cannot make it 0600: {}", path_, std::strerror(errno)));
    if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        throw StoreError(fmt::format("{}: cannot open it: {}", path_, msg));
    }
    sqlite3_busy_handler(db_, busy_wait, nullptr);
    try {
        // A write-ahead log: the loop reads every client on each converge, and in WAL mode such
        // a read neither waits for a commit nor holds one up; a commit is one fsync of the log.
        // (The desired-state cache digests the log with the database.)
        exec(db_, path_, "PRAGMA journal_mode = WAL");
        exec(db_, path_, kSchema);
    } catch (...) {
        sqlite3_close(db_);
        throw;
    }
}

Store::~Store() { sqlite3_close(db_); }

struct Store::Pending {
    std::string fleet;
    Pool pool;
    model::Key key;
    std::string source_ip;
    int64_t now = 0;
    Registration result{};
    std::exception_ptr error{};
    bool done = false;  // committed (or failed): result or error is set
};

Registration Store::register_client(const std::string& fleet, const Pool& pool, const model::Key& key, const std::string& source_ip,
                                    int64_t now) {
    auto me = std::make_shared<Pending>(Pending{
        .fleet = fleet, .pool = pool, .key = key, .source_ip = source_ip, .now = now, .result = {}, .error = nullptr, .done = false});
    std::unique_lock lk(queue_mu_);
    queue_.push_back(me);
    // Group commit: while one thread commits, the others queue up; when it is done, one waiting
    // thread commits everything queued by then in one transaction. A thread commits only until
    // its own registration is in, so no caller waits behind an endless stream of others.
    for (;;) {
        queue_cv_.wait(lk, [&] { return me->done || !committing_; });
        if (me->done) break;
        committing_ = true;
        std::vector<std::shared_ptr<Pending>> batch(queue_.begin(), queue_.end());
        queue_.clear();
        lk.unlock();
        commit_batch(batch);
        lk.lock();
        for (auto& p : batch) p->done = true;
        committing_ = false;
        queue_cv_.notify_all();
    }
    if (me->error) std::rethrow_exception(me->error);
    return me->result;
}

// One transaction for the batch: either every registration in it is stored or none is (each
// caller then gets the error).
void Store::commit_batch(const std::vector<std::shared_ptr<Pending>>& batch) {
    try {
        std::lock_guard lock(mu_);
        Transaction tx(db_, path_);
        for (auto& p : batch) p->result = register_one(p->fleet, p->pool, p->key, p->source_ip, p->now);
        tx.commit();
    } catch (...) {
        auto e = std::current_exception();
        for (auto& p : batch) {
            p->result = Registration{};
            p->error = e;
        }
    }
}

Registration Store::register_one(const std::string& fleet, const Pool& pool, const model::Key& key, const std::string& source_ip,
                                 int64_t now) {
    {
        Stmt s(db_, path_, (std::string(kSelect) + " WHERE fleet = ?1 AND public_key = ?2").c_str());
        s.text(1, fleet).text(2, key.base64());
        if (s.step()) {
            Client c = read_row(s, path_);
            return Registration{.client = c, .existing = true};
        }
    }
    auto addr = allocate(db_, path_, fleet, pool);
    if (!addr) return Registration{};
    Client c{.fleet = fleet,
             .public_key = key,
             .address = *addr,
             .source_ip = source_ip,
             .host_name = std::nullopt,
             .registered = now,
             .last_seen = now};
    Stmt ins(
        db_, path_,
        "INSERT INTO clients (fleet, public_key, address, source_ip, host_name, registered, last_seen) VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?5)");
    ins.text(1, fleet).text(2, key.base64()).blob(3, *addr).text(4, source_ip).integer(5, now);
    ins.run();
    return Registration{.client = c, .existing = false};
}

PingResult Store::ping(const std::string& fleet, const model::IpAddr& address, const std::optional<std::string>& host_name, int64_t now,
                       const std::set<std::string>& reserved) {
    std::lock_guard lock(mu_);
    Transaction tx(db_, path_);
    std::optional<std::string> current;
    {
        Stmt s(db_, path_, "SELECT host_name FROM clients WHERE fleet = ?1 AND address = ?2");
        s.text(1, fleet).blob(2, address);
        if (!s.step()) return PingResult{.outcome = PingOutcome::unknown_client, .host_name = std::nullopt};
        if (!s.col_null(0)) current = s.col_text(0);
    }
    std::optional<std::string> name = current;
    if (host_name) {
        std::vector<std::string> taken(reserved.begin(), reserved.end());
        Stmt s(db_, path_, "SELECT host_name FROM clients WHERE fleet = ?1 AND address != ?2 AND host_name IS NOT NULL");
        s.text(1, fleet).blob(2, address);
        while (s.step()) taken.push_back(s.col_text(0));
        name = dedup_host_name(*host_name, current, taken);
        if (!name) return PingResult{.outcome = PingOutcome::bad_host_name, .host_name = std::nullopt};
    }
    Stmt up(db_, path_, "UPDATE clients SET last_seen = ?1, host_name = ?2 WHERE fleet = ?3 AND address = ?4");
    up.integer(1, now).opt_text(2, name).text(3, fleet).blob(4, address);
    up.run();
    tx.commit();
    return PingResult{.outcome = PingOutcome::ok, .host_name = name};
}

size_t Store::remove(const std::string& fleet, const std::vector<model::Key>& keys) {
    std::lock_guard lock(mu_);
    Transaction tx(db_, path_);
    Stmt del(db_, path_, "DELETE FROM clients WHERE fleet = ?1 AND public_key = ?2");
    size_t n = 0;
    for (const auto& k : keys) {
        del.text(1, fleet).text(2, k.base64());
        del.run();
        n += static_cast<size_t>(sqlite3_changes(db_));
        del.reset();
    }
    tx.commit();
    return n;
}

ImportCount Store::import_clients(const std::vector<Client>& clients) {
    std::lock_guard lock(mu_);
    Transaction tx(db_, path_);
    ImportCount n;
    Stmt by_key(db_, path_, (std::string(kSelect) + " WHERE fleet = ?1 AND public_key = ?2").c_str());
    Stmt by_addr(db_, path_, (std::string(kSelect) + " WHERE fleet = ?1 AND address = ?2").c_str());
    Stmt by_name(db_, path_, (std::string(kSelect) + " WHERE fleet = ?1 AND host_name = ?2").c_str());
    Stmt ins(
        db_, path_,
        "INSERT INTO clients (fleet, public_key, address, source_ip, host_name, registered, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    auto clash = [&](const Client& c, const Client& other, std::string_view what) {
        return StoreError(fmt::format("{}: fleet {}: client {} at {}: {} enrolled client {} at {}; nothing imported", path_, c.fleet,
                                      c.public_key.base64(), c.address.str(), what, other.public_key.base64(), other.address.str()));
    };
    for (const auto& c : clients) {
        std::optional<Client> same_key, same_addr, same_name;
        by_key.text(1, c.fleet).text(2, c.public_key.base64());
        if (by_key.step()) same_key = read_row(by_key, path_);
        by_key.reset();
        by_addr.text(1, c.fleet).blob(2, c.address);
        if (by_addr.step()) same_addr = read_row(by_addr, path_);
        by_addr.reset();
        if (c.host_name) {
            by_name.text(1, c.fleet).text(2, *c.host_name);
            if (by_name.step()) same_name = read_row(by_name, path_);
            by_name.reset();
        }
        if (same_key && same_key->address == c.address) {
            ++n.unchanged;
            continue;
        }
        if (same_key) throw clash(c, *same_key, "its key is that of the");
        if (same_addr) throw clash(c, *same_addr, "its address is that of the");
        if (same_name) throw clash(c, *same_name, fmt::format("its host name {} is that of the", *c.host_name));
        ins.text(1, c.fleet)
            .text(2, c.public_key.base64())
            .blob(3, c.address)
            .text(4, c.source_ip)
            .opt_text(5, c.host_name)
            .integer(6, c.registered)
            .integer(7, c.last_seen);
        ins.run();
        ins.reset();
        ++n.added;
    }
    tx.commit();
    return n;
}

std::vector<Client> Store::clients(const std::optional<std::string>& fleet) {
    std::lock_guard lock(mu_);
    return select_clients(db_, path_, fleet);
}

std::map<std::string, size_t> Store::counts() {
    std::lock_guard lock(mu_);
    Stmt s(db_, path_, "SELECT fleet, COUNT(*) FROM clients GROUP BY fleet");
    std::map<std::string, size_t> out;
    while (s.step()) out.emplace(s.col_text(0), static_cast<size_t>(s.col_int(1)));
    return out;
}

std::vector<Client> read_clients(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return {};
        throw StoreError(fmt::format("{}: cannot read it: {}", path, std::strerror(errno)));
    }
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
        std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        throw StoreError(fmt::format("{}: cannot read it: {}", path, msg));
    }
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> owner(db, &sqlite3_close);
    sqlite3_busy_handler(db, busy_wait, nullptr);
    try {
        return select_clients(db, path, std::nullopt);
    } catch (const StoreError& e) {
        throw StoreError(std::string(e.what()) + " (is it wg-fleet serve's store?)");
    }
}

}  // namespace wgf::serve
