// tape/library.h: an emulated tape library, a folder of VSN.tap images and a set of drives.
//
// DESIGN.md, "Devices": loading an image into a drive is a mount. The library keeps which VSN is
// in which drive, so that one tape is never in two drives and a drive never holds two tapes, as a
// robot guarantees. That state lives in this object: one mover owns a library and its drives.
//
// A tape's capacity is not part of the SIMH image format, so it lives beside the image in a
// one-line sidecar, VSN.tap.capacity ("19791209299968\n", bytes); no sidecar means no limit.
// vvtape reads the same sidecar, so a tape made by the library fills up the same way in both.
// vvmd, vvtape and the library replace the sidecar whole (common/replace_file.h), never rewrite it
// in place: a mover that opens the tape meanwhile reads the old capacity or the new one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "tape/device.h"
#include "tape/emulated_tape.h"
#include "tape/label.h"

namespace vvm::tape {

// The sidecar that holds an image's capacity: "<image>.capacity".
std::string capacity_path(const std::string& image);
// The capacity recorded beside `image`: 0 when there is no sidecar (no limit).
Result<uint64_t> read_capacity(const std::string& image);
// Replaces the sidecar (durably: the file and its folder fsynced); 0 removes it.
Status write_capacity(const std::string& image, uint64_t capacity);

// Opens a tape as vvtape names it: a path under /dev/ is a drive (StTape); anything else is an
// emulated image, loaded with the capacity of its sidecar and `time` (write-protected if asked).
Result<std::unique_ptr<TapeDevice>> open_tape(const std::string& path, bool write_protect = false,
                                              TimeModel time = {});

// Writes the VOL label of a blank (or to be relabelled) tape as file 0: the VOL block and a
// synchronous tape mark, from the beginning of the tape, so whatever followed is cut off.
Status write_volume_label(TapeDevice& tape, const VolLabel& label);
// Rewinds and reads file 0's VOL label. NotFound when the tape is blank or file 0 does not
// start with a VOL label; the message names the tape either way.
Result<VolLabel> read_volume_label(TapeDevice& tape);

// One tape of the library, as list() shows it.
struct LibraryTape {
  std::string vsn;
  std::string media;  // from its VOL label; "" when the label cannot be read
  uint64_t capacity = 0;
  std::string drive;  // the drive it is mounted in; "" when it is in its slot
  std::string error;  // why the VOL label could not be read ("blank tape", ...); "" when fine
};

struct LibraryOptions {
  std::vector<std::string> drives;  // the drive names, "d1", "d2", ...
  TimeModel time;                   // given to every mounted tape
};

class TapeLibrary {
 public:
  // A library on the folder `dir`, which must exist.
  static Result<std::unique_ptr<TapeLibrary>> open(const std::string& dir, LibraryOptions options);

  const std::string& dir() const { return dir_; }
  std::string image_path(const std::string& vsn) const;

  // Makes a blank image VSN.tap (AlreadyExists if there is one), records its capacity (0: no
  // limit) and writes its VOL label, synced.
  Status create(const std::string& vsn, const std::string& media, uint64_t capacity);

  // Loads VSN.tap into `drive`: Busy, naming both, when that VSN is in another drive or the drive
  // holds another tape; NotFound for an unknown drive or VSN. Mounting a tape where it already
  // is succeeds.
  Status mount(const std::string& vsn, const std::string& drive);
  // Unloads the tape in `drive` (a no-op when it is empty).
  Status unmount(const std::string& drive);

  // The tape device of `drive`, or nullptr when the drive is empty or unknown. Valid until the
  // tape is unmounted.
  EmulatedTape* drive(const std::string& drive);
  // Which VSN `drive` holds, "" when empty.
  std::string mounted(const std::string& drive) const;

  // Every VSN.tap in the folder, sorted by VSN.
  Result<std::vector<LibraryTape>> list() const;

 private:
  struct Drive {
    std::string vsn;
    std::unique_ptr<EmulatedTape> tape;
  };
  TapeLibrary(std::string dir, LibraryOptions options);

  std::string dir_;
  LibraryOptions options_;
  std::map<std::string, Drive> drives_;
};

}  // namespace vvm::tape
