// status.cc: names of status codes and the errno helper.
#include "common/status.h"

#include <cstring>

namespace vvm {

std::string_view code_name(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kAlreadyExists: return "already exists";
    case Code::kPermissionDenied: return "permission denied";
    case Code::kIoError: return "I/O error";
    case Code::kTimeout: return "timed out";
    case Code::kProtocolError: return "protocol error";
    case Code::kVersionMismatch: return "version mismatch";
    case Code::kUnavailable: return "unavailable";
    case Code::kBusy: return "busy";
    case Code::kInternal: return "internal error";
    case Code::kNoSpace: return "no space";
    case Code::kMismatch: return "mismatch";
  }
  return "unknown error";
}

Status Status::FromErrno(int err, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  Code code = Code::kIoError;
  switch (err) {
    case ENOENT: code = Code::kNotFound; break;
    case EACCES:
    case EPERM: code = Code::kPermissionDenied; break;
    case EEXIST: code = Code::kAlreadyExists; break;
    case EINVAL: code = Code::kInvalidArgument; break;
    case ETIMEDOUT: code = Code::kTimeout; break;
    case EBUSY: code = Code::kBusy; break;
    case ECONNREFUSED:
    case EAGAIN: code = Code::kUnavailable; break;
    default: break;
  }
  return Status(code, std::move(msg));
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  std::string s(code_name(code_));
  s += ": ";
  s += message_;
  return s;
}

}  // namespace vvm
