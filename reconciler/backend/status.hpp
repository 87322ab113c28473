// Results of effects: a value or an error that names the operation and the errno, e.g.
// "add route fd00::/56 dev wg-mesh: File exists (EEXIST)".
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace wgf::backend {

struct Error {
    int code = 0;         // errno value, or 0 when not from a system call
    std::string message;  // operation and reason, never secret material
};

// "what: strerror (ENAME)"
Error errno_error(int err, const std::string& what);

class Status {
public:
    Status() = default;
    Status(Error e) : error_(std::move(e)) {}  // NOLINT: implicit, so `return Error{...}` reads well
    static Status ok() { return {}; }
    bool is_ok() const { return !error_; }
    explicit operator bool() const { return is_ok(); }
    const Error& error() const { return *error_; }

private:
    std::optional<Error> error_;
};

template <class T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT
    Result(Error e) : error_(std::move(e)) {}      // NOLINT
    bool is_ok() const { return value_.has_value(); }
    explicit operator bool() const { return is_ok(); }
    T& value() { return *value_; }
    const T& value() const { return *value_; }
    T& operator*() { return *value_; }
    const T& operator*() const { return *value_; }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    const Error& error() const { return error_; }
    Status status() const { return is_ok() ? Status::ok() : Status(error_); }

private:
    std::optional<T> value_;
    Error error_;
};

}  // namespace wgf::backend
