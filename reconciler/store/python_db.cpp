#include "store/python_db.hpp"

#include <sqlite3.h>
#include <strings.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "store/store.hpp"

namespace wgf::serve {
namespace {

enum Role : size_t { kId, kFleet, kKey, kAddress, kSource, kHost, kTime };

// "file:" URIs take the path percent-encoded; '?' and '#' would otherwise start the query.
std::string uri_path(const std::string& path) {
    std::string out = "file:";
    for (unsigned char c : path) {
        if (c == '%' || c == '?' || c == '#' || c < 0x20 || c >= 0x7f) out += fmt::format("%{:02X}", c);
        else out += static_cast<char>(c);
    }
    return out;
}

std::string quote_ident(std::string_view name) {
    std::string out = "\"";
    for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

}  // namespace

const std::vector<PythonColumn>& python_columns() {
    static const std::vector<PythonColumn> columns = {
        {.role = "id", .accepted = {"id"}, .required = false},
        {.role = "fleet", .accepted = {"fleet_id", "fleet", "fleet_name"}, .required = true},
        {.role = "public key", .accepted = {"public_key", "pubkey", "key"}, .required = true},
        {.role = "address", .accepted = {"assigned_ip", "address", "ip", "ipv6", "assigned_address"}, .required = true},
        {.role = "source address", .accepted = {"http_request_ip", "source_ip", "request_ip", "source"}, .required = false},
        {.role = "host name", .accepted = {"hostname", "host_name", "name"}, .required = false},
        {.role = "timestamp", .accepted = {"timestamp", "last_seen", "updated_at", "created_at"}, .required = false},
    };
    return columns;
}

PythonTable read_python_clients(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw StoreError(fmt::format("{}: cannot read it: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw StoreError(fmt::format("{}: not a regular file", path));
    sqlite3* raw = nullptr;
    // mode=ro: the file is not written, whatever a hot journal next to it says.
    int rc = sqlite3_open_v2(uri_path(path).c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr);
    std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
    if (rc != SQLITE_OK) throw StoreError(fmt::format("{}: cannot open it: {}", path, raw ? sqlite3_errmsg(raw) : "out of memory"));
    sqlite3_busy_timeout(raw, 10000);

    auto fail = [&](std::string_view what) -> StoreError {
        return StoreError(fmt::format("{}: {}: {} (is it the Python wg-fleet's clients.db?)", path, what, sqlite3_errmsg(raw)));
    };
    auto prepare = [&](const std::string& sql) {
        sqlite3_stmt* s = nullptr;
        if (sqlite3_prepare_v2(raw, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) throw fail("cannot read it");
        return std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)>(s, &sqlite3_finalize);
    };

    PythonTable out;
    std::vector<std::string> present;
    for (auto t : kPythonTables) {
        auto info = prepare(fmt::format("PRAGMA table_info({})", quote_ident(t)));
        while ((rc = sqlite3_step(info.get())) == SQLITE_ROW)
            present.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(info.get(), 1)));
        if (rc != SQLITE_DONE) throw fail("cannot read its tables");
        if (!present.empty()) {
            out.table = t;
            break;
        }
    }
    if (out.table.empty())
        throw StoreError(fmt::format("{}: no table {} (is it the Python wg-fleet's clients.db?)", path, fmt::join(kPythonTables, " or ")));

    const auto& roles = python_columns();
    for (const auto& r : roles) {
        std::string found;
        for (auto name : r.accepted)
            for (const auto& p : present)
                if (found.empty() && strcasecmp(p.c_str(), std::string(name).c_str()) == 0) found = p;
        if (found.empty() && r.required)
            throw StoreError(fmt::format("{}: table {} has no column for the {} (accepted: {}; it has: {})", path, out.table, r.role,
                                         fmt::join(r.accepted, ", "), fmt::join(present, ", ")));
        out.columns.push_back(found);
    }

    std::string select = "SELECT " + (out.columns[kId].empty() ? std::string("rowid") : quote_ident(out.columns[kId]));
    for (size_t i = kFleet; i < roles.size(); ++i)
        select += ", " + (out.columns[i].empty() ? std::string("NULL") : quote_ident(out.columns[i]));
    select += " FROM " + quote_ident(out.table) + " ORDER BY 1";
    auto s = prepare(select);
    auto text = [&](size_t i) {
        auto* p = sqlite3_column_text(s.get(), static_cast<int>(i));
        return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s.get(), static_cast<int>(i))))
                 : std::string();
    };
    auto null = [&](size_t i) { return sqlite3_column_type(s.get(), static_cast<int>(i)) == SQLITE_NULL; };
    while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
        const int ttype = sqlite3_column_type(s.get(), static_cast<int>(kTime));
        out.rows.push_back(PythonRow{.id = sqlite3_column_int64(s.get(), 0),
                                     .fleet = text(kFleet),
                                     .public_key = text(kKey),
                                     .address = text(kAddress),
                                     .source_ip = text(kSource),
                                     .host_name = null(kHost) ? std::nullopt : std::optional(text(kHost)),
                                     .timestamp = null(kTime) ? std::nullopt : std::optional(text(kTime)),
                                     .timestamp_is_number = ttype == SQLITE_INTEGER || ttype == SQLITE_FLOAT});
    }
    if (rc != SQLITE_DONE) throw fail("cannot read its clients");
    return out;
}

}  // namespace wgf::serve
