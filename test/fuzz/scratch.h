// scratch.h: what the fuzz targets that parse files need: a folder of their own (in
// $VVM_FUZZ_SCRATCH, else in /dev/shm when there is one, so that each input written and fsynced
// costs no disk I/O), removed when the target exits, and a whole-file write. Each run of a target
// makes its own, so targets run side by side.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace vvm::fuzz {

// The target's folder, made at the first call. Never destroyed: the exit handler that removes
// the folder runs after the static destructors.
inline const std::string& scratch_dir() {
  static const std::string* const dir = [] {
    // run.sh names a folder of its own, which it removes even after a crash (libFuzzer then
    // leaves without running exit handlers).
    const char* given = std::getenv("VVM_FUZZ_SCRATCH");
    const std::string base = given != nullptr && *given != '\0' ? std::string(given)
                             : ::access("/dev/shm", W_OK) == 0
                                 ? std::string("/dev/shm")
                                 : std::filesystem::temp_directory_path().string();
    auto* made = new std::string(base + "/vvm-fuzz.XXXXXX");
    if (::mkdtemp(made->data()) == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return made;
  }();
  return *dir;
}

// Replaces the file at `path` with `bytes`; aborts if it cannot (the target cannot go on).
inline void write_file(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) std::abort();
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::close(fd);
}

}  // namespace vvm::fuzz
