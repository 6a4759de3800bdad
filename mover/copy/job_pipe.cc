// job_pipe.cc: the text lines between a copy child and its parent (job_pipe.h).
#include "copy/job_pipe.h"

#include <fmt/core.h>

#include <charconv>

namespace vvm::mover {
namespace {

// Tape and file names end up in messages; a newline in one must not end the line early.
std::string one_line(std::string_view text) {
  std::string out(text.substr(0, 3000));  // far below PIPE_BUF (4096) with the prefix
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

bool parse_number(std::string_view text, uint64_t* out, int base = 10) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

// The next blank-separated word of `rest`, which loses it and the blank after it.
std::string_view next_word(std::string_view* rest) {
  size_t blank = rest->find(' ');
  std::string_view word = rest->substr(0, blank);
  *rest = blank == std::string_view::npos ? std::string_view() : rest->substr(blank + 1);
  return word;
}

}  // namespace

std::string encode_event(const JobEvent& event) {
  switch (event.kind) {
    case JobEvent::Kind::kProgress: return fmt::format("progress {}\n", event.bytes);
    case JobEvent::Kind::kDone: return fmt::format("done {} {:x}\n", event.bytes, event.checksum);
    case JobEvent::Kind::kFailed:
      return fmt::format("failed {} {}\n", static_cast<int>(event.failure.code()),
                         one_line(event.failure.message()));
    case JobEvent::Kind::kMounted: return fmt::format("mounted {}\n", event.micros);
    case JobEvent::Kind::kBlame: return fmt::format("blame {}\n", one_line(event.vsn));
  }
  return "";
}

Result<JobEvent> parse_event(std::string_view line) {
  auto bad = [&] {
    return Status::ProtocolError(
        fmt::format("copy child sent '{}', not a progress, mounted, done, failed or blame line",
                    one_line(line)));
  };
  std::string_view rest = line;
  std::string_view word = next_word(&rest);
  JobEvent event;
  if (word == "progress") {
    if (!parse_number(rest, &event.bytes)) return bad();
    return event;
  }
  if (word == "mounted") {
    event.kind = JobEvent::Kind::kMounted;
    if (!parse_number(rest, &event.micros)) return bad();
    return event;
  }
  if (word == "done") {
    event.kind = JobEvent::Kind::kDone;
    if (!parse_number(next_word(&rest), &event.bytes) || !parse_number(rest, &event.checksum, 16)) {
      return bad();
    }
    return event;
  }
  if (word == "blame") {
    event.kind = JobEvent::Kind::kBlame;
    event.vsn = std::string(rest);
    return event;
  }
  if (word == "failed") {
    event.kind = JobEvent::Kind::kFailed;
    uint64_t code = 0;
    if (!parse_number(next_word(&rest), &code) || code == 0 ||
        code > static_cast<uint64_t>(kLastCode)) {
      return bad();
    }
    event.failure = Status(static_cast<Code>(code), std::string(rest));
    return event;
  }
  return bad();
}

std::vector<Result<JobEvent>> EventReader::feed(std::string_view data) {
  pending_.append(data);
  std::vector<Result<JobEvent>> events;
  size_t start = 0;
  for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
    events.push_back(parse_event(std::string_view(pending_).substr(start, nl - start)));
  }
  pending_.erase(0, start);
  return events;
}

}  // namespace vvm::mover
