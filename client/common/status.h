// status.h: the error type that crosses module boundaries in vvm.
//
// As in LevelDB, functions that can fail return a Status (or a Result<T>, a value or a Status)
// instead of throwing. A Status carries a code, which the control protocol sends on the wire, and
// a human message that names the thing and the reason ("vvm.conf:12: key 'cache.high-watermark':
// '120%' is not between 0% and 100%").
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace vvm {

// The numeric values are part of the control protocol (vvm_proto.x mirrors them): never renumber.
enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,
  kNotFound = 2,
  kAlreadyExists = 3,
  kPermissionDenied = 4,
  kIoError = 5,
  kTimeout = 6,
  kProtocolError = 7,
  kVersionMismatch = 8,
  kUnavailable = 9,
  kBusy = 10,
  kInternal = 11,
  kNoSpace = 12,   // the medium is full: a tape past its early warning ("VSN full")
  kMismatch = 13,  // what a tape holds is not what was asked for: VSN, label field, checksum
};
// The highest code there is, for decoders that refuse unknown ones.
inline constexpr Code kLastCode = Code::kMismatch;

// A short lowercase name for a code ("invalid argument"), for messages and logs.
std::string_view code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status Timeout(std::string m) { return {Code::kTimeout, std::move(m)}; }
  static Status ProtocolError(std::string m) { return {Code::kProtocolError, std::move(m)}; }
  static Status VersionMismatch(std::string m) { return {Code::kVersionMismatch, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status NoSpace(std::string m) { return {Code::kNoSpace, std::move(m)}; }
  static Status Mismatch(std::string m) { return {Code::kMismatch, std::move(m)}; }
  // An I/O error from errno: "what: strerror(err)".
  static Status FromErrno(int err, std::string_view what);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // The message alone reads best for users; this adds the code for logs: "not found: ...".
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose, like std::expected
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok() && "a Result made from a Status must be an error");
  }

  bool ok() const { return v_.index() == 0; }
  // The error; Status::Ok() when there is a value.
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace vvm

// Return early from a function that returns Status or Result<T> when `expr` fails.
#define VVM_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::vvm::Status vvm_status_ = (expr);        \
    if (!vvm_status_.ok()) return vvm_status_; \
  } while (0)
