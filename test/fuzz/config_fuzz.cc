// config_fuzz.cc: libFuzzer target for vvm.conf, read as every daemon reads it: the input is
// written to a file and loaded with load_config (common/config.h). Any file must load or be
// refused with an error that names it, never crash or throw; a configuration that loads must keep
// the promises config.h makes: watermarks in order, every media type a class or a drive names
// and every drive's mover defined, every path absolute, every endpoint printable as it reads.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/config.h"
#include "scratch.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

bool absolute(const std::string& path) { return !path.empty() && path[0] == '/'; }

// An endpoint prints in the form parse() reads, and reads back the same.
bool round_trips(const vvm::Endpoint& e) {
  auto back = vvm::Endpoint::parse(e.to_string());
  return back.ok() && *back == e;
}

void check(const vvm::Config& c, const std::string& path) {
  require(c.path == path);
  require(0 <= c.low_watermark && c.low_watermark < c.high_watermark && c.high_watermark <= 100);
  require(absolute(c.state_dir) && absolute(c.database_dir) && absolute(c.cache_dir));
  require(c.packtab.empty() || absolute(c.packtab));
  for (const auto& [name, media] : c.media) {
    require(name == media.name && !name.empty() && name.size() <= 8 && media.capacity > 0);
  }
  for (const auto& [letter, sc] : c.classes) {
    require(letter == sc.letter && !sc.media.empty());
    for (const auto& m : sc.media) require(c.media.count(m) == 1);
  }
  for (const auto& [name, drive] : c.drives) {
    require(name == drive.name && c.movers.count(drive.mover) == 1 &&
            c.media.count(drive.media) == 1);
  }
  for (const vvm::Endpoint& e : c.vvmd_listen) require(round_trips(e));
  for (const auto& [name, mover] : c.movers) {
    require(name == mover.name && round_trips(mover.listen));
    for (const auto& d : mover.drives)
      require(c.drives.count(d) == 1 && c.drives.at(d).mover == name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = vvm::fuzz::scratch_dir() + "/vvm.conf";
  vvm::fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  auto config = vvm::load_config(path);
  if (config.ok()) {
    check(*config, path);
  } else {
    // Every error names the file first ("PATH:12: cache.high-watermark: ...").
    require(std::string_view(config.status().message()).starts_with(path));
  }
  return 0;
}
