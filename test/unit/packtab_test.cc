// packtab_test.cc: the pack table: golden values, every refusal with its origin, line, pack and
// reason, load_packtab, and the example conf/packtab.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "pack/packtab.h"
#include "parse_checks.h"
#include "process.h"

using Catch::Contains;
using Catch::StartsWith;
using vvm::PackMode;
using vvm::PackTable;

namespace fs = std::filesystem;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

PackTable parse_ok(const std::string& text) {
  return vvm::test::require_parsed(vvm::parse_packtab(text, "tab", "/etc/vvm"), text);
}

// `text` must be refused with a message that starts with `prefix` and holds every fragment of
// the reason.
void require_error(const std::string& text, const std::string& prefix,
                   std::initializer_list<std::string> reason) {
  vvm::test::require_refused(vvm::parse_packtab(text, "tab", "/etc/vvm"), text, prefix, reason);
}

const std::string kGood = "a /d/disk.img 0 100M shared root root 0660\n";

}  // namespace

TEST_CASE("a table with comments, blank lines and every field form") {
  PackTable t = parse_ok(
      "# name backing offset size mode owner group perms\n"
      "\n"
      "home0  /dev/sdb       0     100G  exclusive  root  root  0660\n"
      "   \t  # an indented comment\n"
      "tools\tdisks/big.img\t1T\t20G\tro\t4242\t31337\trw-r--r--   # trailing comment\n"
      "sh.a-r_e ../img/x.img 512k 1m shared 0 0 640\n"
      "n0 /data/x#1.img 0 4096 ro root root ---------\n");
  REQUIRE(t.packs.size() == 4);
  CHECK(t.path.empty());

  const auto& home = t.packs[0];
  CHECK(home.name == "home0");
  CHECK(home.backing == "/dev/sdb");
  CHECK(home.offset == 0);
  CHECK(home.size == 100ULL << 30);
  CHECK(home.mode == PackMode::kExclusive);
  CHECK(home.owner == 0);
  CHECK(home.group == 0);
  CHECK(home.perms == 0660);
  CHECK(home.line == 3);

  const auto& tools = t.packs[1];
  CHECK(tools.backing == "/etc/vvm/disks/big.img");
  CHECK(tools.offset == 1ULL << 40);
  CHECK(tools.size == 20ULL << 30);
  CHECK(tools.mode == PackMode::kReadOnly);
  CHECK(tools.owner == 4242);
  CHECK(tools.group == 31337);
  CHECK(tools.perms == 0644);
  CHECK(tools.line == 5);

  CHECK(t.packs[2].name == "sh.a-r_e");
  CHECK(t.packs[2].backing == "/etc/img/x.img");
  CHECK(t.packs[2].offset == 512 * 1024);
  CHECK(t.packs[2].size == 1 << 20);
  CHECK(t.packs[2].mode == PackMode::kShared);
  CHECK(t.packs[2].perms == 0640);
  // '#' inside a field is part of it; only a field that starts with '#' opens a comment.
  CHECK(t.packs[3].backing == "/data/x#1.img");
  CHECK(t.packs[3].perms == 0);

  REQUIRE(t.find("tools") != nullptr);
  CHECK(t.find("tools")->line == 5);
  CHECK(t.find("tool") == nullptr);
  CHECK(t.find("pack/tools") == nullptr);
}

TEST_CASE("permission letters and octal agree") {
  struct Case {
    const char* text;
    mode_t perms;
  };
  const Case cases[] = {{"rwxrwxrwx", 0777}, {"rw-r-----", 0640}, {"r--------", 0400},
                        {"--x--x--x", 0111}, {"0777", 0777},      {"0", 0},
                        {"0007", 07},        {"755", 0755}};
  for (const Case& c : cases) {
    INFO(c.text);
    PackTable t = parse_ok(std::string("p /x 0 1M ro root root ") + c.text + "\n");
    CHECK(t.packs[0].perms == c.perms);
  }
}

TEST_CASE("adjacent packs and overlapping slices of different backings are fine") {
  PackTable t = parse_ok(
      "a /d/disk.img 0 100M shared root root 0660\n"
      "b /d/disk.img 100M 100M ro root root 0644\n"
      "c /d/other.img 50M 100M ro root root 0644\n"
      "d /d/disk.img 16777214T 1T ro root root 0644\n");
  CHECK(t.packs.size() == 4);
  CHECK(vvm::pack_mode_name(PackMode::kReadOnly) == "ro");
  CHECK(vvm::pack_mode_name(PackMode::kExclusive) == "exclusive");
  CHECK(vvm::pack_mode_name(PackMode::kShared) == "shared");
}

TEST_CASE("bad lines are refused naming the origin, the line, the pack and the reason") {
  require_error("# c\na /d/disk.img 0 100M shared root root\n",
                "tab:2: pack 'a': ", {"7 fields where 8 belong"});
  require_error("a /d/disk.img 0 100M shared root root 0660 extra\n",
                "tab:1: pack 'a': ", {"9 fields"});
  require_error("bad@name /d 0 1M ro root root 0644\n",
                "tab:1: pack 'bad@name': ", {"bad character '@'"});
  std::string long_name(65, 'n');
  require_error(long_name + " /d 0 1M ro root root 0644\n",
                "tab:1: pack '" + long_name + "': ", {"more than 64"});
  CHECK(parse_ok(std::string(64, 'n') + " /d 0 1M ro root root 0644\n").packs.size() == 1);
  require_error(kGood + "c /d/disk.img 200M 10Q shared root root 0660\n",
                "tab:2: pack 'c': ", {"bad size '10Q'", "unknown suffix 'Q'"});
  require_error(kGood + "c /d/disk.img -5 10M shared root root 0660\n",
                "tab:2: pack 'c': ", {"bad offset '-5'", "negative"});
  require_error(kGood + "c /d/disk.img 1.5G 10M shared root root 0660\n",
                "tab:2: pack 'c': ", {"bad offset '1.5G'", "whole number"});
  require_error("z /d/disk.img 0 0 ro root root 0644\n", "tab:1: pack 'z': ", {"size is zero"});
  require_error("z /d/disk.img 16777215T 1T ro root root 0644\n",
                "tab:1: pack 'z': ", {"offset 16777215T + size 1T", "2^64"});
  require_error("z /d/disk.img 18446744073709551615 1 ro root root 0644\n",
                "tab:1: pack 'z': ", {"2^64"});
  require_error("z /d 0 1M readonly root root 0644\n",
                "tab:1: pack 'z': ", {"bad mode 'readonly'", "ro, exclusive or shared"});
  require_error("z /d 0 1M ro vvm-no-such-user-x root 0644\n",
                "tab:1: pack 'z': ", {"bad owner", "no such user 'vvm-no-such-user-x'"});
  require_error("z /d 0 1M ro root vvm-no-such-group-x 0644\n",
                "tab:1: pack 'z': ", {"bad group", "no such group 'vvm-no-such-group-x'"});
  require_error("z /d 0 1M ro root root 0778\n", "tab:1: pack 'z': ", {"bad perms '0778'"});
  require_error("z /d 0 1M ro root root 1777\n",
                "tab:1: pack 'z': ", {"bad perms '1777'", "0777 at most"});
  require_error("z /d 0 1M ro root root rwxwr-r--\n",
                "tab:1: pack 'z': ", {"bad perms 'rwxwr-r--'", "'w' where 'r'"});
  require_error("z /d 0 1M ro root root rw-r--r\n", "tab:1: pack 'z': ", {"bad perms 'rw-r--r'"});
  require_error("z /d 0 1M ro root root rw-r--r--x\n", "tab:1: pack 'z': ", {"bad perms"});
}

TEST_CASE("a name given twice names both lines") {
  require_error(
      "a /d/disk.img 0 100M shared root root 0660\n"
      "b /d/disk.img 100M 100M ro root root 0644\n"
      "\n"
      "a /d/disk.img 300M 10M shared root root 0660\n",
      "tab:4: pack 'a': ", {"name already used on line 1"});
}

TEST_CASE("overlapping packs in one backing name both packs and lines") {
  require_error(
      "a /d/disk.img 0 100M shared root root 0660\n"
      "b /d/disk.img 100M 100M ro root root 0644\n"
      "c /d/disk.img 150M 100M ro root root 0644\n",
      "tab:3: pack 'c': ",
      {"bytes 150M..250M of /d/disk.img overlap pack 'b' (line 2, bytes 100M..200M)"});
  // The same backing written two ways is still one backing.
  require_error(
      "a /etc/vvm/disk.img 0 100M shared root root 0660\n"
      "b ./disk.img 99M 1M ro root root 0644\n",
      "tab:2: pack 'b': ", {"overlap pack 'a' (line 1"});
  // One pack inside another.
  require_error(
      "a /d/disk.img 0 1G shared root root 0660\n"
      "b /d/disk.img 10M 1M ro root root 0644\n",
      "tab:2: pack 'b': ", {"overlap pack 'a'"});
}

TEST_CASE("load_packtab resolves backings from the table's folder and names the file") {
  auto dir = must(TempDir::create());
  fs::path tab = dir.file("packtab");
  std::ofstream(tab) << "a disk.img 0 1M ro root root 0644\nb ../x.img 0 1M ro root root 0644\n";
  auto t = vvm::load_packtab(tab.string());
  INFO(t.status().message());
  REQUIRE(t.ok());
  CHECK(t->path == tab.string());
  CHECK(t->packs[0].backing == dir.file("disk.img"));
  CHECK(t->packs[1].backing == fs::path(dir.path()).parent_path() / "x.img");

  fs::path bad = dir.file("bad.tab");
  std::ofstream(bad) << "a disk.img 0 1M ro root root 0644\na disk.img 1M 1M ro root root 0644\n";
  auto b = vvm::load_packtab(bad.string());
  REQUIRE_FALSE(b.ok());
  CHECK_THAT(b.status().message(), StartsWith(bad.string() + ":2: pack 'a': "));

  std::string missing = dir.file("nope");
  auto m = vvm::load_packtab(missing);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == vvm::Code::kNotFound);
  CHECK(m.status().message() == missing + ": cannot read: No such file or directory");
}

TEST_CASE("the example conf/packtab loads") {
  const char* src = std::getenv("VVM_SOURCE_DIR");
  REQUIRE(src != nullptr);
  auto t = vvm::load_packtab((fs::path(src) / "conf" / "packtab").string());
  INFO(t.status().message());
  REQUIRE(t.ok());
  REQUIRE(t->packs.size() == 3);
  CHECK(t->packs[0].name == "scratch");
  CHECK(t->packs[0].mode == PackMode::kShared);
  CHECK(t->packs[1].name == "home");
  CHECK(t->packs[1].offset == 256ULL << 20);
  CHECK(t->packs[1].mode == PackMode::kExclusive);
  CHECK(t->packs[2].name == "tools");
  CHECK(t->packs[2].mode == PackMode::kReadOnly);
  CHECK(t->packs[2].perms == 0644);
  for (const auto& p : t->packs) CHECK(p.backing == "/var/lib/vvm/packs.img");
}

// --- check_backings: what only the backing files can tell ---

namespace {

// `text` parsed in `dir` and named "tab" as load_packtab names a file, ready for check_backings.
PackTable in_dir(const TempDir& dir, const std::string& text) {
  PackTable t = vvm::test::require_parsed(vvm::parse_packtab(text, "tab", dir.path()), text);
  t.path = "tab";
  return t;
}

// A file of `size` bytes, all of them a hole.
void make_backing(const std::string& path, off_t size) {
  must(vvm::test::write_file(path, ""));
  REQUIRE(::truncate(path.c_str(), size) == 0);
}

void require_backing_error(const vvm::Status& s, const std::string& prefix,
                           std::initializer_list<std::string> reason) {
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), StartsWith(prefix));
  for (const auto& fragment : reason) CHECK_THAT(s.message(), Contains(fragment));
}

}  // namespace

TEST_CASE("backings that exist and hold every pack pass") {
  auto dir = must(TempDir::create());
  make_backing(dir.file("disk.img"), 8 << 20);
  make_backing(dir.file("other.img"), 1 << 20);
  // Adjacent packs, the last one ending exactly at the end; the same bytes in another file.
  PackTable t = in_dir(dir,
                       "a disk.img 0 4M shared root root 0660\n"
                       "b disk.img 4M 4M ro root root 0644\n"
                       "c other.img 0 1M ro root root 0644\n");
  vvm::Status s = vvm::check_backings(t);
  INFO(s.message());
  CHECK(s.ok());
  // One file through a symlink, at bytes no other pack uses, is fine too.
  fs::create_symlink("disk.img", dir.file("link.img"));
  t = in_dir(dir,
             "a disk.img 0 4M shared root root 0660\n"
             "b link.img 4M 4M ro root root 0644\n");
  s = vvm::check_backings(t);
  INFO(s.message());
  CHECK(s.ok());
  CHECK(vvm::check_backings(PackTable{}).ok());  // a site without packs
}

TEST_CASE("a missing backing is refused naming the line, the pack and the path") {
  auto dir = must(TempDir::create());
  make_backing(dir.file("disk.img"), 1 << 20);
  vvm::Status s = vvm::check_backings(in_dir(dir,
                                             "a disk.img 0 1M ro root root 0644\n"
                                             "# the next one is not there\n"
                                             "b nope.img 0 1M ro root root 0644\n"));
  require_backing_error(
      s, "tab:3: pack 'b': ", {"backing " + dir.file("nope.img") + ": No such file or directory"});
  CHECK(s.code() == vvm::Code::kNotFound);
}

TEST_CASE("a pack past the end of its backing is refused with both lengths") {
  auto dir = must(TempDir::create());
  make_backing(dir.file("disk.img"), 8 << 20);
  require_backing_error(
      vvm::check_backings(in_dir(dir, "x disk.img 6M 4M ro root root 0644\n")), "tab:1: pack 'x': ",
      {"ends past the end of its backing", dir.file("disk.img") + " is 8388608 bytes long",
       "the pack ends at 10485760 (offset 6M + size 4M)"});
  // One byte too long is too long.
  require_backing_error(
      vvm::check_backings(in_dir(dir, "x disk.img 4M 4194305 ro root root 0644\n")),
      "tab:1: pack 'x': ", {"ends past the end of its backing"});
  // Wholly past the end.
  require_backing_error(vvm::check_backings(in_dir(dir, "x disk.img 1G 1M ro root root 0644\n")),
                        "tab:1: pack 'x': ", {"ends past the end of its backing"});
}

TEST_CASE("a backing that is neither a regular file nor a block device is refused") {
  auto dir = must(TempDir::create());
  fs::create_directory(dir.file("folder"));
  require_backing_error(
      vvm::check_backings(in_dir(dir, "x folder 0 1M ro root root 0644\n")),
      "tab:1: pack 'x': ", {dir.file("folder") + " is not a regular file or a block device"});
  require_backing_error(vvm::check_backings(in_dir(dir, "x /dev/null 0 1M ro root root 0644\n")),
                        "tab:1: pack 'x': ", {"/dev/null is not a regular file or a block device"});
}

TEST_CASE("packs overlapping in one file reached by two paths are refused") {
  auto dir = must(TempDir::create());
  make_backing(dir.file("disk.img"), 8 << 20);
  SECTION("a symlink") {
    fs::create_symlink("disk.img", dir.file("link.img"));
    require_backing_error(
        vvm::check_backings(in_dir(dir,
                                   "x disk.img 0 2M ro root root 0644\n"
                                   "y link.img 1M 2M ro root root 0644\n")),
        "tab:2: pack 'y': ",
        {"bytes 1M..3M of " + dir.file("link.img") + " overlap pack 'x' (line 1), whose backing " +
         dir.file("disk.img") + " is the same file"});
  }
  SECTION("a hard link, second in the table") {
    fs::create_hard_link(dir.file("disk.img"), dir.file("hard.img"));
    require_backing_error(vvm::check_backings(in_dir(dir,
                                                     "y hard.img 4M 4M ro root root 0644\n"
                                                     "x disk.img 0 5M ro root root 0644\n")),
                          "tab:2: pack 'x': ", {"overlap pack 'y' (line 1)", "is the same file"});
  }
  SECTION("a symlink to the folder") {
    fs::create_directory_symlink(dir.path(), dir.file("again"));
    require_backing_error(vvm::check_backings(in_dir(dir,
                                                     "x disk.img 0 8M ro root root 0644\n"
                                                     "y again/disk.img 7M 1M ro root root 0644\n")),
                          "tab:2: pack 'y': ", {"overlap pack 'x' (line 1)"});
  }
  SECTION("a symlink to another file is another backing") {
    make_backing(dir.file("other.img"), 8 << 20);
    fs::create_symlink("other.img", dir.file("link.img"));
    vvm::Status s = vvm::check_backings(in_dir(dir,
                                               "x disk.img 0 8M ro root root 0644\n"
                                               "y link.img 0 8M ro root root 0644\n"));
    INFO(s.message());
    CHECK(s.ok());
  }
}
