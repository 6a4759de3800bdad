// pack_export_test.cc: PackExport on a real sparse file without nbdkit: range checks, read-only
// refusals, and that trim, zero and extents act on exactly the requested part of the pack while
// sentinel bytes just outside it never change.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
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

constexpr uint64_t kM = 1024 * 1024;
constexpr uint64_t kPackOffset = 1 * kM;  // pack "p" is [1M, 5M) of a 6M file
constexpr uint64_t kPackSize = 4 * kM;
constexpr uint64_t kFileSize = 6 * kM;
constexpr char kSentinel = '\x77';

// A sparse backing with 64K of sentinel bytes on each side of the pack, and the catalog for it.
struct Fixture {
  TempDir dir = must(TempDir::create("vvm-pack-export"));
  std::string backing = dir.file("disk.img");
  PackCatalog catalog;

  Fixture() {
    int fd = ::open(backing.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, kFileSize) == 0);
    std::string sentinel(64 * 1024, kSentinel);
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
    std::string buf(64 * 1024, '\0');
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

}  // namespace

TEST_CASE("reads and writes stay inside the pack; ranges past its end are refused") {
  Fixture f;
  auto pack = f.open("pack/p");
  CHECK(pack->writable());
  CHECK_FALSE(pack->block_device());
  CHECK(pack->minimum_block() == 1);
  std::string data(kPackSize, 'd');
  REQUIRE(pack->write(data.data(), static_cast<uint32_t>(data.size()), 0, false).ok());
  CHECK(read_bytes(*pack, 16, kPackSize - 16) == std::string(16, 'd'));
  REQUIRE(pack->write("fua", 3, 100, true).ok());  // the RWF_DSYNC path
  CHECK(read_bytes(*pack, 3, 100) == "fua");
  f.check_sentinels();

  char buf[2];
  IoStatus r = pack->read(buf, 2, kPackSize - 1);
  CHECK(r.err() == EINVAL);
  CHECK_THAT(r.status().message(), Catch::Contains("pack/p") && Catch::Contains("beyond the end"));
  CHECK(pack->write(buf, 2, kPackSize - 1, false).err() == ENOSPC);
  CHECK(pack->write(buf, 1, kPackSize + 4096, false).err() == ENOSPC);
  CHECK(pack->trim(2, kPackSize - 1, false).err() == EINVAL);
  CHECK(pack->zero(2, kPackSize - 1, true, false, false).err() == ENOSPC);
  CHECK(pack->cache(2, kPackSize - 1).err() == EINVAL);
  CHECK(pack->extents(2, kPackSize - 1, false, [](auto&) { return true; }).err() == EINVAL);
  f.check_sentinels();
}

TEST_CASE("a read-only export refuses every change with EROFS") {
  Fixture f;
  for (auto [name, server_ro] :
       {std::pair{"pack/p@ro", false}, std::pair{"pack/r", false}, std::pair{"pack/p", true}}) {
    INFO(name << (server_ro ? " under nbdkit -r" : ""));
    auto pack = f.open(name, server_ro);
    CHECK_FALSE(pack->writable());
    CHECK(pack->write("x", 1, 0, false).err() == EROFS);
    CHECK(pack->trim(4096, 0, false).err() == EROFS);
    CHECK(pack->zero(4096, 0, true, false, false).err() == EROFS);
    CHECK(read_bytes(*pack, 1, 0).size() == 1);
  }
}

TEST_CASE("trim makes a hole of exactly the range, in pack-relative extents") {
  Fixture f;
  auto pack = f.open("pack/p");
  std::string data(kPackSize, 'd');
  REQUIRE(pack->write(data.data(), static_cast<uint32_t>(data.size()), 0, false).ok());
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

  auto one = extents_of(*pack, 2 * kM, 512 * 1024, true);
  REQUIRE(one.size() == 1);
  CHECK((one[0].offset == 512 * 1024 && one[0].length == 512 * 1024 && !one[0].hole));
  // Starting inside a hole: the first extent starts where asked.
  auto mid = extents_of(*pack, 4096, 1 * kM + 8192);
  REQUIRE_FALSE(mid.empty());
  CHECK((mid[0].offset == 1 * kM + 8192 && mid[0].hole));
}

TEST_CASE("zero makes the range read as zeroes, with or without a hole, fast or not") {
  Fixture f;
  auto pack = f.open("pack/p");
  std::string data(kPackSize, 'd');
  REQUIRE(pack->write(data.data(), static_cast<uint32_t>(data.size()), 0, false).ok());
  struct Case {
    bool may_trim, fast, fua;
  };
  uint64_t at = 0;
  for (Case c : {Case{false, false, false}, Case{true, false, true}, Case{false, true, false},
                 Case{true, true, true}}) {
    INFO("may_trim " << c.may_trim << " fast " << c.fast << " fua " << c.fua);
    IoStatus s = pack->zero(64 * 1024, at + 100, c.may_trim, c.fast, c.fua);
    // On this ext4 every method is quick; EOPNOTSUPP would mean "nbdkit writes zeroes".
    INFO(s.status().message());
    REQUIRE(s.ok());
    CHECK(read_bytes(*pack, 64 * 1024, at + 100) == std::string(64 * 1024, '\0'));
    CHECK(read_bytes(*pack, 100, at) == std::string(100, 'd'));
    CHECK(read_bytes(*pack, 100, at + 100 + 64 * 1024) == std::string(100, 'd'));
    at += kM;
  }
  // Up to the last byte of the pack.
  REQUIRE(pack->zero(4096, kPackSize - 4096, false, false, false).ok());
  CHECK(read_bytes(*pack, 4096, kPackSize - 4096) == std::string(4096, '\0'));
  f.check_sentinels();
}

TEST_CASE("cache and flush succeed on a file") {
  Fixture f;
  auto pack = f.open("pack/p");
  CHECK(pack->cache(kPackSize, 0).ok());
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
