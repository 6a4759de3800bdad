// pack_export_test.cc: PackExport on real files and a real block device, without nbdkit: range
// checks, read-only refusals, FUA paths, that trim, zero and extents act on exactly the requested
// part of the pack while sentinel bytes just outside it never change, that zeroing keeps or gives
// back the space as the client asked (on ext4 and on tmpfs, which lacks ZERO_RANGE), and that a
// fast zero is refused whenever only writing zeroes would do.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "pack_catalog.h"
#include "pack_export.h"
#include "process.h"

using namespace vvm;
using namespace vvm::plugin;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

constexpr uint64_t kK = 1024;
constexpr uint64_t kM = 1024 * 1024;
constexpr uint64_t kPackOffset = 1 * kM;  // pack "p" is [1M, 5M) of a 6M file
constexpr uint64_t kPackSize = 4 * kM;
constexpr uint64_t kFileSize = 6 * kM;
constexpr char kSentinel = '\x77';
constexpr long kTmpfsMagic = 0x01021994;

// A TempDir under `root` rather than $TMPDIR: the file system decides which fallocate modes work.
TempDir temp_dir_under(const std::string& root) {
  const char* old = std::getenv("TMPDIR");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  ::setenv("TMPDIR", root.c_str(), 1);
  Result<TempDir> dir = TempDir::create("vvm-pack-export");
  saved ? ::setenv("TMPDIR", saved->c_str(), 1) : ::unsetenv("TMPDIR");
  return must(std::move(dir));
}

// The places to test zeroing on: $TMPDIR (ext4 here) and, when it is tmpfs, /dev/shm.
std::vector<std::string> file_system_roots() {
  const char* tmp = std::getenv("TMPDIR");
  std::vector<std::string> roots{tmp != nullptr ? tmp : "/tmp"};
  struct statfs fs;
  if (::statfs("/dev/shm", &fs) == 0 && fs.f_type == kTmpfsMagic) roots.push_back("/dev/shm");
  return roots;
}

// 512-byte blocks the file has allocated.
int64_t allocated_blocks(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_blocks;
}

// A sparse backing with 64K of sentinel bytes on each side of the pack, and the catalog for it.
struct Fixture {
  TempDir dir;
  std::string backing = dir.file("disk.img");
  PackCatalog catalog;

  explicit Fixture(const std::string& root = "")
      : dir(root.empty() ? must(TempDir::create("vvm-pack-export")) : temp_dir_under(root)) {
    int fd = ::open(backing.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, kFileSize) == 0);
    std::string sentinel(64 * kK, kSentinel);
    REQUIRE(::pwrite(fd, sentinel.data(), sentinel.size(), kPackOffset - sentinel.size()) ==
            static_cast<ssize_t>(sentinel.size()));
    REQUIRE(::pwrite(fd, sentinel.data(), sentinel.size(), kPackOffset + kPackSize) ==
            static_cast<ssize_t>(sentinel.size()));
    ::close(fd);
    auto table =
        must(parse_packtab("p disk.img 1M 4M exclusive root root 0660\n"
                           "r disk.img 0 64K ro root root 0644\n",
                           "packtab", dir.path()));
    catalog = must(PackCatalog::create(std::move(table)));
  }

  std::unique_ptr<PackExport> open(const std::string& name, bool server_read_only = false) {
    const ExportInfo* info = must(catalog.find(name));
    return must(PackExport::open(*info, server_read_only));
  }

  // The sentinels on both sides are intact.
  void check_sentinels() const {
    int fd = ::open(backing.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    std::string buf(64 * kK, '\0');
    for (uint64_t at : {kPackOffset - buf.size(), kPackOffset + kPackSize}) {
      REQUIRE(::pread(fd, buf.data(), buf.size(), static_cast<off_t>(at)) ==
              static_cast<ssize_t>(buf.size()));
      INFO("sentinel at " << at);
      CHECK(buf == std::string(buf.size(), kSentinel));
    }
    ::close(fd);
  }
};

std::vector<PackExport::Extent> extents_of(PackExport& pack, uint32_t count, uint64_t offset,
                                           bool req_one = false) {
  std::vector<PackExport::Extent> out;
  IoStatus s = pack.extents(count, offset, req_one, [&](const PackExport::Extent& e) {
    out.push_back(e);
    return true;
  });
  INFO(s.status().message());
  REQUIRE(s.ok());
  return out;
}

std::string read_bytes(PackExport& pack, uint32_t count, uint64_t offset) {
  std::string buf(count, '\0');
  IoStatus s = pack.read(buf.data(), count, offset);
  INFO(s.status().message());
  REQUIRE(s.ok());
  return buf;
}

void write_bytes(PackExport& pack, char c, uint64_t count, uint64_t offset) {
  std::string data(count, c);
  IoStatus s = pack.write(data.data(), static_cast<uint32_t>(count), offset, false);
  INFO(s.status().message());
  REQUIRE(s.ok());
}

std::string read_file_range(const std::string& path, uint64_t count, uint64_t offset) {
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  std::string buf(count, '\0');
  const ssize_t n = ::pread(fd, buf.data(), count, static_cast<off_t>(offset));
  ::close(fd);
  REQUIRE(n == static_cast<ssize_t>(count));
  return buf;
}

}  // namespace

TEST_CASE("reads and writes stay inside the pack; ranges past its end are refused") {
  Fixture f;
  auto pack = f.open("pack/p");
  CHECK(pack->writable());
  CHECK_FALSE(pack->block_device());
  CHECK(pack->minimum_block() == 1);
  write_bytes(*pack, 'd', kPackSize, 0);
  CHECK(read_bytes(*pack, 16, kPackSize - 16) == std::string(16, 'd'));
  REQUIRE(pack->write("fua", 3, 100, true).ok());  // the RWF_DSYNC path
  CHECK(read_bytes(*pack, 3, 100) == "fua");
  REQUIRE(pack->write("end", 3, kPackSize - 3, true).ok());  // the last bytes, with FUA
  CHECK(read_bytes(*pack, 3, kPackSize - 3) == "end");
  f.check_sentinels();

  char buf[2];
  IoStatus r = pack->read(buf, 2, kPackSize - 1);
  CHECK(r.err() == EINVAL);
  CHECK_THAT(r.status().message(), Catch::Contains("pack/p") && Catch::Contains("beyond the end"));
  CHECK(pack->read(buf, 1, kPackSize).err() == EINVAL);
  CHECK(pack->read(buf, 1, UINT64_MAX).err() == EINVAL);  // offset + count overflows
  CHECK(pack->write(buf, 2, kPackSize - 1, false).err() == ENOSPC);
  CHECK(pack->write(buf, 2, kPackSize - 1, true).err() == ENOSPC);
  CHECK(pack->write(buf, 1, kPackSize + 4096, false).err() == ENOSPC);
  CHECK(pack->write(buf, 2, UINT64_MAX - 1, false).err() == ENOSPC);
  CHECK(pack->trim(2, kPackSize - 1, false).err() == EINVAL);
  CHECK(pack->trim(UINT32_MAX, 1, false).err() == EINVAL);
  CHECK(pack->zero(2, kPackSize - 1, true, false, false).err() == ENOSPC);
  CHECK(pack->zero(2, kPackSize - 1, false, true, true).err() == ENOSPC);
  CHECK(pack->zero(1, UINT64_MAX, true, false, false).err() == ENOSPC);
  CHECK(pack->cache(2, kPackSize - 1).err() == EINVAL);
  CHECK(pack->extents(2, kPackSize - 1, false, [](auto&) { return true; }).err() == EINVAL);
  CHECK(pack->extents(1, kPackSize, true, [](auto&) { return true; }).err() == EINVAL);
  // Nothing was written by the refused requests: the pack's last bytes are as they were.
  CHECK(read_bytes(*pack, 3, kPackSize - 3) == "end");
  f.check_sentinels();
}

TEST_CASE("a read-only export refuses every change with EROFS, and still reads") {
  Fixture f;
  for (auto [name, server_ro] :
       {std::pair{"pack/p@ro", false}, std::pair{"pack/r", false}, std::pair{"pack/p", true}}) {
    INFO(name << (server_ro ? " under nbdkit -r" : ""));
    auto pack = f.open(name, server_ro);
    CHECK_FALSE(pack->writable());
    IoStatus w = pack->write("x", 1, 0, false);
    CHECK(w.err() == EROFS);
    CHECK_THAT(w.status().message(), Catch::Contains(name) && Catch::Contains("read-only"));
    CHECK(pack->write("x", 1, 0, true).err() == EROFS);
    CHECK(pack->trim(4096, 0, false).err() == EROFS);
    CHECK(pack->zero(4096, 0, true, false, false).err() == EROFS);
    CHECK(pack->zero(4096, 0, true, true, true).err() == EROFS);
    CHECK(read_bytes(*pack, 1, 0).size() == 1);
    CHECK_FALSE(extents_of(*pack, 4096, 0).empty());
    CHECK(pack->cache(4096, 0).ok());
    CHECK(pack->flush().ok());
  }
  f.check_sentinels();
}

TEST_CASE("extents of an untouched pack: one hole to the pack's end, whatever lies beyond") {
  Fixture f;
  auto pack = f.open("pack/p");
  // The sentinel data right after the pack must not show, nor that right before it.
  auto all = extents_of(*pack, kPackSize, 0);
  REQUIRE(all.size() == 1);
  CHECK((all[0].offset == 0 && all[0].length == kPackSize && all[0].hole));
  auto last = extents_of(*pack, 1, kPackSize - 1);
  REQUIRE(last.size() == 1);
  CHECK((last[0].offset == kPackSize - 1 && last[0].length == 1 && last[0].hole));
  // pack/r, [0, 64K) of the file, read-only: a hole too, ending at its own end.
  auto r = f.open("pack/r");
  auto ro = extents_of(*r, 64 * kK, 0);
  REQUIRE(ro.size() == 1);
  CHECK((ro[0].offset == 0 && ro[0].length == 64 * kK && ro[0].hole));
}

TEST_CASE("trim makes a hole of exactly the range, in pack-relative extents") {
  Fixture f;
  auto pack = f.open("pack/p");
  write_bytes(*pack, 'd', kPackSize, 0);
  auto all = extents_of(*pack, kPackSize, 0);
  REQUIRE(all.size() == 1);
  CHECK_FALSE(all[0].hole);
  CHECK(all[0].length == kPackSize);

  REQUIRE(pack->trim(1 * kM, 1 * kM, false).ok());
  // The very edges too: trimming the last megabyte must not reach the sentinel after it.
  REQUIRE(pack->trim(1 * kM, 3 * kM, true).ok());
  CHECK(read_bytes(*pack, 4096, 1 * kM) == std::string(4096, '\0'));
  CHECK(read_bytes(*pack, 4096, 1 * kM - 4096) == std::string(4096, 'd'));
  CHECK(read_bytes(*pack, 4096, 2 * kM) == std::string(4096, 'd'));
  f.check_sentinels();

  auto e = extents_of(*pack, kPackSize, 0);
  REQUIRE(e.size() == 4);
  CHECK((e[0].offset == 0 && e[0].length == 1 * kM && !e[0].hole));
  CHECK((e[1].offset == 1 * kM && e[1].length == 1 * kM && e[1].hole));
  CHECK((e[2].offset == 2 * kM && e[2].length == 1 * kM && !e[2].hole));
  // The last hole ends at the pack's end, not at the sentinel data beyond it.
  CHECK((e[3].offset == 3 * kM && e[3].length == 1 * kM && e[3].hole));

  auto one = extents_of(*pack, 2 * kM, 512 * kK, true);
  REQUIRE(one.size() == 1);
  CHECK((one[0].offset == 512 * kK && one[0].length == 512 * kK && !one[0].hole));
  // Starting inside a hole: the first extent starts where asked.
  auto mid = extents_of(*pack, 4096, 1 * kM + 8192);
  REQUIRE_FALSE(mid.empty());
  CHECK((mid[0].offset == 1 * kM + 8192 && mid[0].hole));
  // A callback that says stop gets no more extents.
  int calls = 0;
  REQUIRE(pack->extents(kPackSize, 0, false, [&](auto&) { return ++calls < 2; }).ok());
  CHECK(calls == 2);
}

TEST_CASE("zero makes the range read as zeroes; may_trim gives the space back, else it stays") {
  for (const std::string& root : file_system_roots()) {
    INFO("file system under " << root);
    Fixture f(root);
    auto pack = f.open("pack/p");
    write_bytes(*pack, 'd', kPackSize, 0);
    REQUIRE(pack->flush().ok());
    struct Case {
      bool may_trim, fast, fua;
    };
    uint64_t at = 0;
    for (Case c : {Case{false, false, false}, Case{true, false, true}, Case{false, true, false},
                   Case{true, true, true}}) {
      INFO("may_trim " << c.may_trim << " fast " << c.fast << " fua " << c.fua);
      // Unaligned: the partial blocks at either end are zeroed in place.
      IoStatus s = pack->zero(64 * kK, at + 100, c.may_trim, c.fast, c.fua);
      // ext4 and tmpfs zero without writing, so even a fast zero is done.
      INFO(s.status().message());
      REQUIRE(s.ok());
      CHECK(read_bytes(*pack, 64 * kK, at + 100) == std::string(64 * kK, '\0'));
      CHECK(read_bytes(*pack, 100, at) == std::string(100, 'd'));
      CHECK(read_bytes(*pack, 100, at + 100 + 64 * kK) == std::string(100, 'd'));

      // Aligned, to count blocks: a hole frees the range (bar a block of file-system metadata
      // that splitting an extent may cost); without may_trim nothing is freed.
      const uint64_t aligned = at + 512 * kK;
      const int64_t before = allocated_blocks(f.backing);
      REQUIRE(pack->zero(64 * kK, aligned, c.may_trim, c.fast, c.fua).ok());
      const int64_t after = allocated_blocks(f.backing);
      CHECK(read_bytes(*pack, 64 * kK, aligned) == std::string(64 * kK, '\0'));
      if (c.may_trim) {
        CHECK(before - after >= static_cast<int64_t>(64 * kK / 512 - 8));
      } else {
        CHECK(after >= before);
      }
      at += kM;
    }
    // Up to the last byte of the pack, and a request of no bytes at all.
    REQUIRE(pack->zero(4096, kPackSize - 4096, false, false, false).ok());
    CHECK(read_bytes(*pack, 4096, kPackSize - 4096) == std::string(4096, '\0'));
    CHECK(pack->zero(0, kPackSize, true, true, false).ok());
    CHECK(pack->trim(0, kPackSize, false).ok());
    f.check_sentinels();
  }
}

TEST_CASE("trim and zero on a pack at odd byte offsets touch not one byte outside it") {
  for (const std::string& root : file_system_roots()) {
    INFO("file system under " << root);
    TempDir dir = temp_dir_under(root);
    const std::string backing = dir.file("odd.img");
    // Every byte of the 64K file is a sentinel; pack "u" is [4196, 16529): it starts and ends
    // inside file-system blocks, whose other bytes must survive every punch and zero.
    constexpr uint64_t kOff = 4096 + 100, kSize = 3 * 4096 + 37, kLen = 64 * kK;
    must(vvm::test::write_file(backing, std::string(kLen, 'S')));
    PackCatalog catalog = must(PackCatalog::create(must(
        parse_packtab("u odd.img 4196 12325 shared root root 0666\n", "packtab", dir.path()))));
    auto pack = must(PackExport::open(*must(catalog.find("pack/u")), false));
    auto check = [&](char inside) {
      const std::string all = read_file_range(backing, kLen, 0);
      CHECK(all.substr(0, kOff) == std::string(kOff, 'S'));
      CHECK(all.substr(kOff, kSize) == std::string(kSize, inside));
      CHECK(all.substr(kOff + kSize) == std::string(kLen - kOff - kSize, 'S'));
    };
    REQUIRE(pack->trim(static_cast<uint32_t>(kSize), 0, false).ok());
    check('\0');
    struct Case {
      bool may_trim, fast;
    };
    for (Case c : {Case{false, false}, Case{true, false}, Case{false, true}, Case{true, true}}) {
      INFO("may_trim " << c.may_trim << " fast " << c.fast);
      write_bytes(*pack, 'd', kSize, 0);
      check('d');
      REQUIRE(pack->zero(static_cast<uint32_t>(kSize), 0, c.may_trim, c.fast, true).ok());
      check('\0');
    }
    // One byte at each end.
    write_bytes(*pack, 'd', kSize, 0);
    REQUIRE(pack->trim(1, 0, false).ok());
    REQUIRE(pack->zero(1, kSize - 1, true, false, false).ok());
    const std::string all = read_file_range(backing, kLen, 0);
    CHECK(all.substr(kOff - 1, 3) == std::string("S\0d", 3));
    CHECK(all.substr(kOff + kSize - 2, 3) == std::string("d\0S", 3));
  }
}

TEST_CASE("cache and flush succeed on a file") {
  Fixture f;
  auto pack = f.open("pack/p");
  CHECK(pack->cache(kPackSize, 0).ok());
  CHECK(pack->cache(1, kPackSize - 1).ok());
  CHECK(pack->flush().ok());
}

TEST_CASE("a backing that shrank since the table was loaded is refused at open") {
  Fixture f;
  REQUIRE(::truncate(f.backing.c_str(), 2 * kM) == 0);
  const ExportInfo* info = must(f.catalog.find("pack/p"));
  auto r = PackExport::open(*info, false);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("pack/p") && Catch::Contains("pack ends at"));
}

namespace {

// A loop device over a file, made with LO_FLAGS_AUTOCLEAR: the kernel detaches it when its last
// descriptor closes, so even a test that crashes leaves none behind. `path` is empty when there
// is none to be had here (not root, no loop driver).
struct LoopDevice {
  std::string path;
  int fd = -1;  // keeps the device attached while the test runs

  explicit LoopDevice(const std::string& file) {
    const int backing = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
    const int control = ::open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    std::string why = control == -1 ? "/dev/loop-control: " + std::string(strerror(errno)) : "";
    // Another process may take the free device between the two calls: try a few times.
    for (int attempt = 0; attempt < 5 && backing != -1 && control != -1 && fd == -1; ++attempt) {
      const int n = ::ioctl(control, LOOP_CTL_GET_FREE);
      if (n < 0) {
        why = "LOOP_CTL_GET_FREE: " + std::string(strerror(errno));
        break;
      }
      const std::string dev = "/dev/loop" + std::to_string(n);
      const int dev_fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
      if (dev_fd == -1) {
        why = dev + ": " + strerror(errno);
        continue;
      }
      loop_config config{};
      config.fd = static_cast<uint32_t>(backing);
      config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
      if (::ioctl(dev_fd, LOOP_CONFIGURE, &config) == 0) {
        fd = dev_fd;
        path = dev;
      } else {
        why = dev + ": LOOP_CONFIGURE: " + strerror(errno);
        ::close(dev_fd);
      }
    }
    if (backing != -1) ::close(backing);
    if (control != -1) ::close(control);
    if (path.empty()) WARN("no loop device, block-device checks not run: " << why);
  }
  ~LoopDevice() {
    if (fd != -1) ::close(fd);
  }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;

  // Whether the device zeroes by itself (REQ_OP_WRITE_ZEROES), which makes a fast zero possible.
  bool has_write_zeroes() const {
    std::ifstream in("/sys/block/" + path.substr(path.rfind('/') + 1) +
                     "/queue/write_zeroes_max_bytes");
    uint64_t max = 0;
    return (in >> max) && max > 0;
  }
};

}  // namespace

TEST_CASE("a pack on a block device: sectors, BLKZEROOUT, fast zero only by offload, discard") {
  TempDir dir = must(TempDir::create("vvm-pack-export"));
  const std::string image = dir.file("dev.img");
  must(vvm::test::write_file(image, std::string(4 * kM, 'S')));
  LoopDevice loop(image);
  if (loop.path.empty()) return;  // not root, or no loop devices: nothing to test here
  // Pack "b" is [1M, 3M) of the device; the rest of the device is sentinel bytes.
  PackCatalog catalog = must(PackCatalog::create(must(
      parse_packtab("b " + loop.path + " 1M 2M shared root root 0666\n", "packtab", dir.path()))));
  auto pack = must(PackExport::open(*must(catalog.find("pack/b")), false));
  CHECK(pack->block_device());
  CHECK(pack->minimum_block() == 512);
  auto check_sentinels = [&] {
    // Through the device, whose page cache the pack's writes went through.
    const std::string head = read_file_range(loop.path, kM, 0);
    const std::string tail = read_file_range(loop.path, kM, 3 * kM);
    CHECK(head == std::string(kM, 'S'));
    CHECK(tail == std::string(kM, 'S'));
  };

  write_bytes(*pack, 'd', 2 * kM, 0);
  REQUIRE(pack->write("fua", 3, 2 * kM - 3, true).ok());
  CHECK(read_bytes(*pack, 3, 2 * kM - 3) == "fua");
  auto e = extents_of(*pack, 2 * kM, 0);
  REQUIRE(e.size() == 1);
  CHECK((e[0].offset == 0 && e[0].length == 2 * kM && !e[0].hole));

  // A client that wants the range kept allocated cannot have a fast zero: BLKZEROOUT may write.
  IoStatus s = pack->zero(64 * kK, 0, false, true, false);
  CHECK(s.err() == EOPNOTSUPP);
  CHECK(read_bytes(*pack, 64 * kK, 0) == std::string(64 * kK, 'd'));
  // With may_trim it is the device's own WRITE ZEROES, or refused.
  s = pack->zero(64 * kK, 0, true, true, true);
  if (loop.has_write_zeroes()) {
    INFO(s.status().message());
    REQUIRE(s.ok());
    CHECK(read_bytes(*pack, 64 * kK, 0) == std::string(64 * kK, '\0'));
  } else {
    CHECK(s.err() == EOPNOTSUPP);
  }
  // Not fast: BLKZEROOUT (or the offload, with may_trim).
  REQUIRE(pack->zero(64 * kK, 128 * kK, false, false, true).ok());
  CHECK(read_bytes(*pack, 64 * kK, 128 * kK) == std::string(64 * kK, '\0'));
  REQUIRE(pack->zero(64 * kK, 256 * kK, true, false, false).ok());
  CHECK(read_bytes(*pack, 64 * kK, 256 * kK) == std::string(64 * kK, '\0'));
  // Not whole sectors: left to nbdkit, which writes the zeroes (and refuses a fast zero).
  CHECK(pack->zero(1000, 512 * kK + 100, false, false, false).err() == EOPNOTSUPP);
  CHECK(pack->zero(1000, 512 * kK + 100, true, true, false).err() == EOPNOTSUPP);
  CHECK(read_bytes(*pack, 1000, 512 * kK + 100) == std::string(1000, 'd'));

  // Trim discards only the whole sectors inside the range: [768K+512, 768K+1024) here.
  REQUIRE(pack->trim(1000, 768 * kK + 100, false).ok());
  CHECK(read_bytes(*pack, 412, 768 * kK + 100) == std::string(412, 'd'));
  CHECK(read_bytes(*pack, 76, 768 * kK + 1024) == std::string(76, 'd'));
  // The last sectors of the pack, with FUA.
  REQUIRE(pack->trim(64 * kK, 2 * kM - 64 * kK, true).ok());
  REQUIRE(pack->zero(64 * kK, 2 * kM - 64 * kK, false, false, true).ok());
  CHECK(read_bytes(*pack, 64 * kK, 2 * kM - 64 * kK) == std::string(64 * kK, '\0'));
  CHECK(pack->cache(2 * kM, 0).ok());
  CHECK(pack->flush().ok());
  CHECK(pack->zero(512, 2 * kM, true, false, false).err() == ENOSPC);
  CHECK(pack->trim(512, 2 * kM, false).err() == EINVAL);
  check_sentinels();
}
