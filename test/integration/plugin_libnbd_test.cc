// plugin_libnbd_test.cc: the vvm nbdkit plugin serving packs, driven by libnbd from C++.
//
// Four packs share one backing file filled with a known pattern: a (exclusive) and c (shared)
// are adjacent, b (shared) has an odd offset and size, d is read-only. Every write is checked on
// the backing itself with pread, and so is every byte outside the packs.
#include <fcntl.h>
#include <libnbd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "process.h"

namespace vvm::test {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kBackingSize = 24 * kMiB;

struct PackSpec {
  std::string name;
  uint64_t offset;
  uint64_t size;
  std::string mode;
};
const std::vector<PackSpec> kPacks = {
    {"a", 0, 4 * kMiB, "exclusive"},
    {"c", 4 * kMiB, 4 * kMiB, "shared"},  // right after a: a's last byte is c's neighbour
    {"b", 8 * kMiB + 512, 3 * kMiB + 1, "shared"},
    {"d", 16 * kMiB, 4 * kMiB, "ro"},
};

const PackSpec& pack(std::string_view name) {
  return *std::find_if(kPacks.begin(), kPacks.end(), [&](auto& p) { return p.name == name; });
}

// The byte the backing holds at `pos` before any write: varies with every address bit, so a
// write at a wrong offset cannot go unnoticed.
uint8_t pattern(uint64_t pos) {
  return static_cast<uint8_t>((pos * 131) ^ (pos >> 8) ^ (pos >> 16) ^ 0x5a);
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

using Nbd = std::unique_ptr<nbd_handle, decltype(&nbd_close)>;

Nbd new_handle() {
  Nbd h(nbd_create(), &nbd_close);
  REQUIRE(h != nullptr);
  return h;
}

// Connected to `uri`, or a test failure carrying libnbd's message.
Nbd connect(const std::string& uri) {
  Nbd h = new_handle();
  INFO(uri);
  if (nbd_connect_uri(h.get(), uri.c_str()) == -1) FAIL(nbd_get_error());
  return h;
}

// nbdkit with the vvm plugin on a fresh backing file and pack table.
class PackServer {
 public:
  PackServer() : dir_(must(TempDir::create("vvm-plugin-test"))) {
    backing_ = dir_.file("disk.img");
    packtab_ = dir_.file("packtab");
    const int fd = ::open(backing_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd != -1);
    REQUIRE(::ftruncate(fd, kBackingSize) == 0);  // sparse, then every byte written
    std::vector<uint8_t> chunk(kMiB);
    for (uint64_t base = 0; base < kBackingSize; base += kMiB) {
      for (uint64_t i = 0; i < kMiB; ++i) chunk[i] = pattern(base + i);
      REQUIRE(::pwrite(fd, chunk.data(), kMiB, static_cast<off_t>(base)) == kMiB);
    }
    ::close(fd);
    expected_.resize(kBackingSize);
    for (uint64_t i = 0; i < kBackingSize; ++i) expected_[i] = pattern(i);

    std::string table = "# name backing offset size mode owner group perms\n";
    for (const auto& p : kPacks) {
      // A relative backing: the plugin resolves it against the table's folder.
      table += p.name + " disk.img " + std::to_string(p.offset) + " " + std::to_string(p.size) +
               " " + p.mode + " root root 0660\n";
    }
    write_text(packtab_, table);
    server_.emplace(must(NbdkitServer::start(dir_, {"packtab=" + packtab_})));
  }
  // nbdkit must also shut down cleanly: a sanitizer report at exit (a leak in the plugin, say)
  // makes its exit status non-zero.
  ~PackServer() {
    const Result<int> status = server_->stop();
    const std::string log = server_->log();
    INFO("nbdkit's log ends with:\n" << log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
    CHECK(status.ok());
    CHECK((status.ok() ? *status : -1) == 0);
  }

  NbdkitServer& server() { return *server_; }
  std::string uri(std::string_view export_name) { return server_->uri(export_name); }
  const std::string& packtab() const { return packtab_; }

  // Reads the backing file directly, bypassing NBD.
  std::vector<uint8_t> backing_bytes(uint64_t offset, uint64_t count) const {
    std::vector<uint8_t> buf(count);
    const int fd = ::open(backing_.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd != -1);
    const ssize_t n = ::pread(fd, buf.data(), count, static_cast<off_t>(offset));
    ::close(fd);
    REQUIRE(n == static_cast<ssize_t>(count));
    return buf;
  }

  // Records a write the test made through pack `name`, for check_whole_backing().
  void expect_write(const PackSpec& p, uint64_t offset, const std::vector<uint8_t>& data) {
    std::copy(data.begin(), data.end(), expected_.begin() + static_cast<long>(p.offset + offset));
  }
  // What the backing should hold at `pos`.
  uint8_t expected(uint64_t pos) const { return expected_.at(pos); }
  // Every byte of the backing is the pattern, except what the test wrote where it wrote it.
  void check_whole_backing() const {
    const std::vector<uint8_t> actual = backing_bytes(0, kBackingSize);
    const auto diff = std::mismatch(actual.begin(), actual.end(), expected_.begin());
    INFO("first difference at backing offset " << (diff.first - actual.begin()));
    CHECK(diff.first == actual.end());
  }

 private:
  TempDir dir_;
  std::string backing_;
  std::string packtab_;
  std::vector<uint8_t> expected_;
  std::optional<NbdkitServer> server_;  // declared after dir_: stopped before dir_ is removed
};

std::vector<uint8_t> fill(size_t count, uint8_t first) {
  std::vector<uint8_t> data(count);
  for (size_t i = 0; i < count; ++i) data[i] = static_cast<uint8_t>(first + i * 7);
  return data;
}

TEST_CASE_METHOD(PackServer, "every pack is listed under both names with a description",
                 "[plugin]") {
  Nbd h = new_handle();
  REQUIRE(nbd_set_opt_mode(h.get(), true) == 0);
  if (nbd_connect_uri(h.get(), uri("").c_str()) == -1) FAIL(nbd_get_error());
  std::map<std::string, std::string> listed;
  auto on_export = [](void* user, const char* name, const char* description) {
    (*static_cast<std::map<std::string, std::string>*>(user))[name] = description;
    return 0;
  };
  REQUIRE(nbd_opt_list(h.get(), nbd_list_callback{on_export, &listed, nullptr}) >= 0);
  nbd_opt_abort(h.get());

  std::vector<std::string> names;
  for (const auto& [name, description] : listed) names.push_back(name);
  CHECK(names == std::vector<std::string>{"pack/a", "pack/a@ro", "pack/b", "pack/b@ro", "pack/c",
                                          "pack/c@ro", "pack/d", "pack/d@ro"});
  CHECK_THAT(listed["pack/a"], Catch::Contains("4M") && Catch::Contains("exclusive"));
  CHECK_THAT(listed["pack/a@ro"], Catch::Contains("4M") && Catch::Contains("read-only"));
  CHECK_THAT(listed["pack/b"], Catch::Contains("3145729") && Catch::Contains("shared"));
  CHECK_THAT(listed["pack/d"], Catch::Contains("4M") && Catch::Contains(", ro,"));
  CHECK_THAT(listed["pack/c"], Catch::Contains("disk.img"));

  SECTION("a connection gets the same description, the size and the block sizes") {
    Nbd c = new_handle();
    REQUIRE(nbd_set_full_info(c.get(), true) == 0);
    if (nbd_connect_uri(c.get(), uri("pack/b").c_str()) == -1) FAIL(nbd_get_error());
    std::unique_ptr<char, decltype(&free)> description(nbd_get_export_description(c.get()), &free);
    REQUIRE(description != nullptr);
    CHECK(description.get() == listed["pack/b"]);
    CHECK(nbd_get_size(c.get()) == static_cast<int64_t>(pack("b").size));
    CHECK(nbd_get_block_size(c.get(), LIBNBD_SIZE_MINIMUM) == 1);
    CHECK(nbd_get_block_size(c.get(), LIBNBD_SIZE_PREFERRED) == 4096);
    CHECK(nbd_get_block_size(c.get(), LIBNBD_SIZE_MAXIMUM) == 32 * kMiB);
    CHECK(nbd_can_multi_conn(c.get()) == 1);
  }
}

TEST_CASE_METHOD(PackServer, "writes land in the pack's slice of the backing and nowhere else",
                 "[plugin]") {
  for (const char* name : {"a", "b", "c"}) {
    const PackSpec& p = pack(name);
    INFO("pack " << name);
    Nbd h = connect(uri("pack/" + p.name));
    REQUIRE(nbd_get_size(h.get()) == static_cast<int64_t>(p.size));
    REQUIRE(nbd_is_read_only(h.get()) == 0);

    // Single bytes at the start, the middle and the end, then ranges that touch the ends.
    struct Write {
      uint64_t offset;
      size_t count;
    };
    const std::vector<Write> writes = {
        {0, 1},    {p.size / 2, 1},           {p.size - 1, 1},
        {1, 5000}, {p.size / 2 - 3000, 6000}, {p.size - 70000, 70000}};
    uint8_t seed = 1;
    for (const Write& w : writes) {
      INFO("write of " << w.count << " bytes at " << w.offset);
      const std::vector<uint8_t> data = fill(w.count, seed += 17);
      REQUIRE(nbd_pwrite(h.get(), data.data(), w.count, w.offset, 0) == 0);
      expect_write(p, w.offset, data);
      std::vector<uint8_t> back(w.count);
      REQUIRE(nbd_pread(h.get(), back.data(), w.count, w.offset, 0) == 0);
      CHECK(back == data);
      CHECK(backing_bytes(p.offset + w.offset, w.count) == data);
    }
    // The bytes just outside the pack never change (a's last byte, before c, was written).
    if (p.offset > 0) CHECK(backing_bytes(p.offset - 1, 1)[0] == expected(p.offset - 1));
    CHECK(backing_bytes(p.offset + p.size, 1)[0] == expected(p.offset + p.size));
  }
  check_whole_backing();

  SECTION("reads through NBD return what the backing holds") {
    const PackSpec& d = pack("d");
    Nbd h = connect(uri("pack/d"));
    for (uint64_t offset : {uint64_t{0}, d.size / 2, d.size - 1}) {
      uint8_t byte = 0;
      REQUIRE(nbd_pread(h.get(), &byte, 1, offset, 0) == 0);
      CHECK(byte == pattern(d.offset + offset));
    }
    std::vector<uint8_t> all(d.size);
    REQUIRE(nbd_pread(h.get(), all.data(), all.size(), 0, 0) == 0);
    CHECK(all == backing_bytes(d.offset, d.size));
  }
}

TEST_CASE_METHOD(PackServer, "reads and writes past the end of a pack fail", "[plugin]") {
  const PackSpec& p = pack("a");  // c follows right after it in the backing
  Nbd h = connect(uri("pack/a"));
  // libnbd refuses such requests itself; let them reach the server.
  REQUIRE(nbd_set_strict_mode(h.get(), nbd_get_strict_mode(h.get()) & ~LIBNBD_STRICT_BOUNDS) == 0);
  std::vector<uint8_t> buf(2, 0xee);
  CHECK(nbd_pread(h.get(), buf.data(), 2, p.size - 1, 0) == -1);
  CHECK(nbd_pread(h.get(), buf.data(), 1, p.size, 0) == -1);
  CHECK(nbd_pwrite(h.get(), buf.data(), 2, p.size - 1, 0) == -1);
  CHECK(nbd_pwrite(h.get(), buf.data(), 1, p.size, 0) == -1);
  CHECK(nbd_pwrite(h.get(), buf.data(), 1, UINT64_MAX, 0) == -1);
  // The connection still works, and nothing was written.
  uint8_t last = 0;
  CHECK(nbd_pread(h.get(), &last, 1, p.size - 1, 0) == 0);
  CHECK(last == pattern(p.size - 1));
  check_whole_backing();
}

TEST_CASE_METHOD(PackServer, "read-only exports refuse writes", "[plugin]") {
  for (const char* name : {"pack/a@ro", "pack/b@ro", "pack/d", "pack/d@ro"}) {
    INFO(name);
    Nbd h = connect(uri(name));
    CHECK(nbd_is_read_only(h.get()) == 1);
    std::vector<uint8_t> data(4096, 0xcc);
    CHECK(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0) == -1);
    // Past libnbd's own check, the server refuses it too.
    REQUIRE(nbd_set_strict_mode(h.get(), 0) == 0);
    CHECK(nbd_pwrite(h.get(), data.data(), data.size(), 0, 0) == -1);
    CHECK(nbd_get_errno() == EPERM);
    uint8_t byte = 0;
    CHECK(nbd_pread(h.get(), &byte, 1, 0, 0) == 0);
  }
  check_whole_backing();
  Nbd rw = connect(uri("pack/a"));
  CHECK(nbd_is_read_only(rw.get()) == 0);
}

TEST_CASE_METHOD(PackServer, "unknown exports are refused by name", "[plugin]") {
  for (const std::string name : {"pack/x", "pack/a@rw", "vv/A0000000001", "a"}) {
    INFO(name);
    Nbd h = new_handle();
    REQUIRE(nbd_connect_uri(h.get(), uri(name).c_str()) == -1);
    CHECK_THAT(nbd_get_error(), Catch::Contains(name));
    CHECK_THAT(server().log(), Catch::Contains("unknown export '" + name + "'"));
  }
  CHECK_THAT(server().log(),
             Catch::Contains("unknown export 'pack/x': no such pack in " + packtab()));
  // There is no default export.
  Nbd h = new_handle();
  CHECK(nbd_connect_uri(h.get(), uri("").c_str()) == -1);
}

TEST_CASE_METHOD(PackServer, "flush and FUA writes succeed and every connection sees them",
                 "[plugin]") {
  const PackSpec& p = pack("c");
  Nbd writer = connect(uri("pack/c"));
  Nbd reader = connect(uri("pack/c"));
  CHECK(nbd_can_flush(writer.get()) == 1);
  CHECK(nbd_can_fua(writer.get()) == 1);
  CHECK(nbd_can_multi_conn(writer.get()) == 1);

  const std::vector<uint8_t> fua_data = fill(8192, 3);
  REQUIRE(nbd_pwrite(writer.get(), fua_data.data(), fua_data.size(), 4096, LIBNBD_CMD_FLAG_FUA) ==
          0);
  expect_write(p, 4096, fua_data);
  const std::vector<uint8_t> plain = fill(100, 9);
  REQUIRE(nbd_pwrite(writer.get(), plain.data(), plain.size(), p.size - 100, 0) == 0);
  expect_write(p, p.size - 100, plain);
  REQUIRE(nbd_flush(writer.get(), 0) == 0);

  std::vector<uint8_t> back(fua_data.size());
  REQUIRE(nbd_pread(reader.get(), back.data(), back.size(), 4096, 0) == 0);
  CHECK(back == fua_data);
  back.resize(plain.size());
  REQUIRE(nbd_pread(reader.get(), back.data(), back.size(), p.size - 100, 0) == 0);
  CHECK(back == plain);
  check_whole_backing();
}

// --- configuration errors: nbdkit must not start, and must say where and why ---

struct StartResult {
  int status;
  std::string err;
};

StartResult start_nbdkit_expecting_failure(const TempDir& dir, const std::string& key) {
  const std::string plugin = must(plugin_path());
  const CommandResult r = must(
      run_command({"nbdkit", "-f", "-U", dir.file("never.sock"), plugin, key}, nbdkit_env(), 60s));
  return {r.status, r.err};
}

TEST_CASE("a bad pack table stops nbdkit with the file, the line and the reason", "[plugin]") {
  const TempDir dir = must(TempDir::create("vvm-plugin-test"));
  const std::string disk = dir.file("disk.img");
  {
    std::ofstream(disk).close();
    REQUIRE(::truncate(disk.c_str(), 16 * kMiB) == 0);
  }
  const std::string good = "# packs\na disk.img 0 4M shared root root 0660\n";
  const std::string tab = dir.file("bad.tab");
  std::vector<std::string> wanted;

  SECTION("a bad size") {
    write_text(tab, good + "b disk.img 4M 10Q shared root root 0660\n");
    wanted = {tab + ":3:", "10Q"};
  }
  SECTION("a pack that does not fit in its backing") {
    write_text(tab, good + "b disk.img 12M 8M shared root root 0660\n");
    wanted = {tab + ":3:", "pack 'b'", disk, "ends at"};
  }
  SECTION("a backing that does not exist") {
    write_text(tab, good + "b nowhere.img 0 8M shared root root 0660\n");
    wanted = {tab + ":3:", "pack 'b'", dir.file("nowhere.img"), "No such file"};
  }
  SECTION("a duplicate name") {
    write_text(tab, good + "a disk.img 8M 1M shared root root 0660\n");
    wanted = {tab + ":3:", "'a'"};
  }
  SECTION("an unknown mode") {
    write_text(tab, good + "b disk.img 8M 1M sometimes root root 0660\n");
    wanted = {tab + ":3:", "sometimes"};
  }
  const StartResult r = start_nbdkit_expecting_failure(dir, "packtab=" + tab);
  INFO(r.err);
  CHECK(r.status != 0);
  for (const auto& w : wanted) CHECK_THAT(r.err, Catch::Contains(w));
  CHECK(::access(dir.file("never.sock").c_str(), F_OK) != 0);
}

TEST_CASE("nbdkit refuses missing files and missing keys", "[plugin]") {
  const TempDir dir = must(TempDir::create("vvm-plugin-test"));
  SECTION("a pack table that does not exist") {
    const StartResult r = start_nbdkit_expecting_failure(dir, "packtab=" + dir.file("none.tab"));
    INFO(r.err);
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Catch::Contains(dir.file("none.tab")));
  }
  SECTION("an unknown key") {
    const StartResult r = start_nbdkit_expecting_failure(dir, "colour=blue");
    INFO(r.err);
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Catch::Contains("colour"));
  }
  SECTION("neither packtab= nor conf=") {
    const CommandResult r = must(run_command(
        {"nbdkit", "-f", "-U", dir.file("never.sock"), must(plugin_path())}, nbdkit_env(), 60s));
    INFO(r.err);
    CHECK(r.status != 0);
    CHECK_THAT(r.err, Catch::Contains("packtab=PATH or conf=PATH"));
  }
}

}  // namespace
}  // namespace vvm::test
