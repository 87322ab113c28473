// The Python wg-fleet manager's database (/var/lib/wg-fleet/clients.db), read read-only for
// `serve --import-python`. Its SQLAlchemy model is one table `clients` with the columns id,
// fleet_id, public_key, assigned_ip, http_request_ip, hostname and timestamp (a DATETIME, stored
// as text in UTC); other spellings a hand-made or later schema may use are accepted too (see
// kPythonColumns). Values come back as stored: checking them is the importer's job.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wgf::serve {

struct PythonColumn {
    std::string_view role;                   // what the importer calls it
    std::vector<std::string_view> accepted;  // the column names taken for it, in order of preference
    bool required = true;
};

// The tables tried (the first that exists) and, for each field, the column names accepted.
inline constexpr std::array<std::string_view, 2> kPythonTables = {"clients", "client"};
const std::vector<PythonColumn>& python_columns();

struct PythonRow {
    int64_t id = 0;  // the id column, else SQLite's rowid: what messages name the row by
    std::string fleet{};
    std::string public_key{};
    std::string address{};
    std::string source_ip{};
    std::optional<std::string> host_name{};
    std::optional<std::string> timestamp{};  // text as stored; a number is given as its decimal text
    bool timestamp_is_number = false;        // stored as an INTEGER or REAL: seconds since the epoch
};

struct PythonTable {
    std::string table;                 // the table read
    std::vector<std::string> columns;  // per role of python_columns(): the column used, or ""
    std::vector<PythonRow> rows;
};

// Every row of the clients table at `path`, opened read-only (the file is never written, nor
// journalled). Throws StoreError naming the file: missing, not SQLite, no clients table, or a
// required column missing (the message lists the names accepted).
PythonTable read_python_clients(const std::string& path);

}  // namespace wgf::serve
