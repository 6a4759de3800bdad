// job_pipe_fuzz.cc: libFuzzer target for the lines a copy child sends its mover (copy/job_pipe.h).
// The input is what the pipe delivers; the mover's EventReader cuts it into lines and parses each.
// Any bytes must give events or errors that say why, never crash; the events must not depend on
// how the reads cut the bytes (the input is fed whole, then in two reads cut where its first byte
// says); and an event must encode to a line that parses back to an event that encodes the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "copy/job_pipe.h"

namespace {

using namespace vvm;
using namespace vvm::mover;

void require(bool ok) {
  if (!ok) std::abort();
}

// The events as lines (errors as their messages), to compare two feeds.
std::vector<std::string> lines_of(const std::vector<Result<JobEvent>>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    if (!e.ok()) {
      require(!e.status().message().empty());
      out.push_back("error: " + e.status().message());
      continue;
    }
    const std::string line = encode_event(*e);
    require(!line.empty() && line.back() == '\n' && line.find('\n') == line.size() - 1);
    auto back = parse_event(std::string_view(line).substr(0, line.size() - 1));
    require(back.ok() && encode_event(*back) == line);
    out.push_back(line);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  EventReader whole;
  const auto all = lines_of(whole.feed(in));
  if (size == 0) return 0;
  const size_t cut = data[0] % (size + 1);
  EventReader split;
  auto first = lines_of(split.feed(in.substr(0, cut)));
  const auto second = lines_of(split.feed(in.substr(cut)));
  first.insert(first.end(), second.begin(), second.end());
  require(first == all);
  return 0;
}
