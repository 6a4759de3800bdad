// st_tape.h: a real tape drive through the Linux st driver, /dev/nstN (never /dev/stN, which
// rewinds on close), in variable block mode: one write() is one block.
//
// Every TapeDevice operation is one read(), write() or MTIOCTOP ioctl, so st's semantics are the
// drive's (tape/device.h describes them; EmulatedTape imitates them). Spacing counts above
// 0x7FFFFF are split, as CTA does, since some drivers reject larger SPACE counts.
//
// To try it on a real drive (no test here can): check with `mt -f /dev/nst0 status` that the drive
// answers with a scratch tape loaded, then from a small program StTape::open("/dev/nst0"),
// write_block, write_tape_marks(1), rewind, read_block and compare; `mt -f /dev/nst0 tell` and
// `mt -f /dev/nst0 status` show where st thinks the tape is.
#pragma once

#include <memory>
#include <string>

#include "tape/device.h"

namespace vvm::tape {

class StTape : public TapeDevice {
 public:
  // Opens `device` for reading and writing (read-only, and write-protected, when the tape is
  // protected: st refuses O_RDWR with EROFS), checks that it is a tape drive (MTIOCGET) and sets
  // variable block mode (MTSETBLK 0). A file that is not a tape drive is refused with a message
  // saying so.
  static Result<std::unique_ptr<StTape>> open(const std::string& device);
  // Closes the device: st itself writes a tape mark if the last operation was a data write.
  ~StTape() override;
  StTape(const StTape&) = delete;
  StTape& operator=(const StTape&) = delete;

  std::string name() const override { return device_; }
  TapeResult write_block(std::span<const char> data) override;
  ReadResult read_block(std::span<char> buffer) override;
  TapeResult write_tape_marks(uint32_t count, bool sync = true) override;
  TapeResult rewind() override;
  TapeResult space_forward(uint32_t count) override;
  TapeResult space_back(uint32_t count) override;
  TapeResult space_forward_blocks(uint32_t count) override;
  TapeResult space_back_blocks(uint32_t count) override;
  TapeResult position_to_file(uint64_t n) override;
  TapeResult position_to_end_of_data() override;
  StateResult status() override;
  TapeResult unload() override;

 private:
  StTape(std::string device, int fd, bool write_protected)
      : device_(std::move(device)), fd_(fd), write_protected_(write_protected) {}
  TapeResult fail(int err, std::string_view op, std::string_view detail = {}) const;
  // One MTIOCTOP; counts above what one SPACE command takes are split.
  TapeResult mt(short op, uint64_t count, std::string_view what);

  std::string device_;
  int fd_ = -1;
  bool write_protected_ = false;  // opened read-only
  bool zero_read_ = false;        // the last read returned 0 bytes: another 0 is end of data
};

}  // namespace vvm::tape
