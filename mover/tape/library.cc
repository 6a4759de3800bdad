// tape/library.cc: the emulated library (a folder of VSN.tap images), the capacity sidecar, and
// reading and writing VOL labels.
#include "tape/library.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>

#include <fmt/core.h>

#include "common/replace_file.h"
#include "tape/st_tape.h"

namespace vvm::tape {

namespace {

// A VOL label is one 80-byte block; a bigger buffer lets a data block where the label should be
// read as "not a label" rather than fail with ENOMEM.
constexpr size_t kLabelBuffer = 64 * 1024;

bool valid_vsn(const std::string& vsn) {
  if (vsn.empty() || vsn.size() > 6) return false;
  return std::all_of(vsn.begin(), vsn.end(),
                     [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

}  // namespace

std::string capacity_path(const std::string& image) { return image + ".capacity"; }

Result<uint64_t> read_capacity(const std::string& image) {
  const std::string path = capacity_path(image);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return uint64_t{0};
    return Status::FromErrno(errno, path);
  }
  std::ifstream in(path);
  if (!in) return Status::IoError(fmt::format("{}: cannot be read", path));
  std::string text;
  std::getline(in, text);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return Status::InvalidArgument(fmt::format("{}: '{}' is not a capacity in bytes", path, text));
  }
  return value;
}

Status write_capacity(const std::string& image, uint64_t capacity) {
  const std::string path = capacity_path(image);
  if (capacity == 0) {
    if (::unlink(path.c_str()) != 0) {
      return errno == ENOENT ? Status::Ok() : Status::FromErrno(errno, path);
    }
    return sync_parent_dir(path);
  }
  // Replaced, never rewritten in place: a mover or vvtape opening the tape meanwhile reads the
  // old capacity or the new one, never an empty sidecar.
  if (Status s = replace_file(path, fmt::format("{}\n", capacity)); !s.ok()) {
    return Status(s.code(), fmt::format("could not write the capacity: {}", s.message()));
  }
  return Status::Ok();
}

Result<std::unique_ptr<TapeDevice>> open_tape(const std::string& path, bool write_protect,
                                              TimeModel time) {
  if (path.starts_with("/dev/")) {
    auto st = StTape::open(path);
    if (!st.ok()) return st.status();
    return std::unique_ptr<TapeDevice>(std::move(*st));
  }
  auto capacity = read_capacity(path);
  if (!capacity.ok()) return capacity.status();
  EmulatedTapeOptions options;
  options.capacity = *capacity;
  options.time = time;
  auto tape = std::make_unique<EmulatedTape>(options);
  if (TapeResult r = tape->load(path, write_protect); !r.ok()) return r.status;
  return std::unique_ptr<TapeDevice>(std::move(tape));
}

Status write_volume_label(TapeDevice& tape, const VolLabel& label) {
  auto bytes = label.encode();
  if (!bytes.ok()) return bytes.status();
  if (TapeResult r = tape.rewind(); !r.ok()) return r.status;
  if (TapeResult r = tape.write_block(*bytes); !r.ok()) return r.status;
  if (TapeResult r = tape.write_tape_marks(1, true); !r.ok()) return r.status;
  return Status::Ok();
}

Result<VolLabel> read_volume_label(TapeDevice& tape) {
  if (TapeResult r = tape.rewind(); !r.ok()) return r.status;
  std::string buffer(kLabelBuffer, '\0');
  ReadResult r = tape.read_block(buffer);
  if (!r.ok()) {
    if (r.err == ENOMEM) {
      return Status::NotFound(
          fmt::format("{}: file 0 starts with a block of more than {} bytes, not a VOL label",
                      tape.name(), kLabelBuffer));
    }
    return r.status;
  }
  if (r.kind == BlockKind::kEndOfData) {
    return Status::NotFound(fmt::format("{}: blank tape (no VOL label)", tape.name()));
  }
  if (r.kind == BlockKind::kTapeMark) {
    return Status::NotFound(fmt::format(
        "{}: file 0 is empty (a tape mark where the VOL label should be)", tape.name()));
  }
  auto vol = VolLabel::decode(std::string_view(buffer.data(), r.size));
  if (!vol.ok()) {
    return Status(vol.status().code(),
                  fmt::format("{}: file 0: {}", tape.name(), vol.status().message()));
  }
  return vol;
}

// --- TapeLibrary ---

TapeLibrary::TapeLibrary(std::string dir, LibraryOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  for (const auto& name : options_.drives) drives_[name];
}

Result<std::unique_ptr<TapeLibrary>> TapeLibrary::open(const std::string& dir,
                                                       LibraryOptions options) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Status::FromErrno(errno, dir);
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(fmt::format("{}: not a folder (a library is a folder)", dir));
  }
  for (size_t i = 0; i < options.drives.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options.drives[i] == options.drives[j]) {
        return Status::InvalidArgument(
            fmt::format("library {}: drive '{}' given twice", dir, options.drives[i]));
      }
    }
  }
  return std::unique_ptr<TapeLibrary>(new TapeLibrary(dir, std::move(options)));
}

std::string TapeLibrary::image_path(const std::string& vsn) const {
  return dir_ + "/" + vsn + ".tap";
}

Status TapeLibrary::create(const std::string& vsn, const std::string& media, uint64_t capacity) {
  if (!valid_vsn(vsn)) {
    return Status::InvalidArgument(
        fmt::format("VSN '{}': expected 1 to 6 uppercase letters or digits", vsn));
  }
  VolLabel label{vsn, media};
  if (auto bytes = label.encode(); !bytes.ok()) return bytes.status();
  const std::string image = image_path(vsn);
  VVM_RETURN_IF_ERROR(EmulatedTape::create_image(image));
  VVM_RETURN_IF_ERROR(write_capacity(image, capacity));
  EmulatedTapeOptions options;
  options.capacity = capacity;
  EmulatedTape tape(options);
  if (TapeResult r = tape.load(image); !r.ok()) return r.status;
  VVM_RETURN_IF_ERROR(write_volume_label(tape, label));
  if (TapeResult r = tape.unload(); !r.ok()) return r.status;
  return Status::Ok();
}

Status TapeLibrary::mount(const std::string& vsn, const std::string& drive) {
  auto it = drives_.find(drive);
  if (it == drives_.end()) {
    return Status::NotFound(fmt::format("library {}: no drive '{}'", dir_, drive));
  }
  if (it->second.vsn == vsn) return Status::Ok();
  for (const auto& [name, d] : drives_) {
    if (d.vsn == vsn) {
      return Status::Busy(
          fmt::format("cannot mount {} in drive {}: it is mounted in drive {}", vsn, drive, name));
    }
  }
  if (!it->second.vsn.empty()) {
    return Status::Busy(
        fmt::format("cannot mount {} in drive {}: the drive holds {}", vsn, drive, it->second.vsn));
  }
  const std::string image = image_path(vsn);
  if (!valid_vsn(vsn) || ::access(image.c_str(), F_OK) != 0) {
    return Status::NotFound(
        fmt::format("library {}: no tape {} ({} is missing)", dir_, vsn, image));
  }
  auto capacity = read_capacity(image);
  if (!capacity.ok()) return capacity.status();
  EmulatedTapeOptions options;
  options.capacity = *capacity;
  options.time = options_.time;
  auto tape = std::make_unique<EmulatedTape>(options);
  if (TapeResult r = tape->load(image); !r.ok()) return r.status;
  it->second.vsn = vsn;
  it->second.tape = std::move(tape);
  return Status::Ok();
}

Status TapeLibrary::unmount(const std::string& drive) {
  auto it = drives_.find(drive);
  if (it == drives_.end()) {
    return Status::NotFound(fmt::format("library {}: no drive '{}'", dir_, drive));
  }
  if (!it->second.tape) return Status::Ok();
  TapeResult r = it->second.tape->unload();
  // The tape is out of the drive whether or not the unload went cleanly (a failed tape mark
  // after writes is reported, but the cartridge still comes out).
  it->second.tape.reset();
  it->second.vsn.clear();
  return r.status;
}

EmulatedTape* TapeLibrary::drive(const std::string& drive) {
  auto it = drives_.find(drive);
  return it == drives_.end() ? nullptr : it->second.tape.get();
}

std::string TapeLibrary::mounted(const std::string& drive) const {
  auto it = drives_.find(drive);
  return it == drives_.end() ? std::string() : it->second.vsn;
}

Result<std::vector<LibraryTape>> TapeLibrary::list() const {
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return Status::FromErrno(errno, dir_);
  std::vector<std::string> vsns;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() > 4 && name.ends_with(".tap")) vsns.push_back(name.substr(0, name.size() - 4));
  }
  ::closedir(d);
  std::sort(vsns.begin(), vsns.end());
  std::vector<LibraryTape> out;
  for (const auto& vsn : vsns) {
    LibraryTape t;
    t.vsn = vsn;
    for (const auto& [name, drive] : drives_) {
      if (drive.vsn == vsn) t.drive = name;
    }
    const std::string image = image_path(vsn);
    auto capacity = read_capacity(image);
    if (capacity.ok()) t.capacity = *capacity;
    // A second, read-only view of the image: reading file 0 there does not move the drive's
    // position, and a scan reads record headers only.
    EmulatedTape view;
    TapeResult r = view.load(image, /*write_protect=*/true);
    if (!r.ok()) {
      t.error = r.status.message();
    } else if (auto vol = read_volume_label(view); !vol.ok()) {
      t.error = vol.status().message();
    } else {
      t.media = vol->media_type;
      if (vol->vsn != vsn) {
        t.error = fmt::format("{}: the VOL label says VSN {}", image, vol->vsn);
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace vvm::tape
