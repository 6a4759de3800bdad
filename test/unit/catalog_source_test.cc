// catalog_source_test.cc: the plugin's view of a packtab that changes while nbdkit runs: a new
// table is served at once, a removed pack is refused by name, a catalog already handed out never
// changes, a bad or missing table keeps the old one and is reported once per change, and many
// threads asking while the table is swapped always get a whole table.
#include <stdio.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "catalog_source.h"
#include "process.h"

using Catch::Contains;
using vvm::plugin::CatalogSource;
using vvm::plugin::PackCatalog;
using vvm::test::must;
using vvm::test::TempDir;

namespace {

// A folder with a 16M backing and a packtab, replaced the way an administrator should: written
// beside it, then renamed over it.
struct Site {
  TempDir dir = must(TempDir::create());
  std::string tab = dir.file("packtab");

  Site() {
    must(vvm::test::write_file(dir.file("disk.img"), ""));
    REQUIRE(::truncate(dir.file("disk.img").c_str(), 16 << 20) == 0);
  }
  void put(const std::string& text) const {
    must(vvm::test::write_file(tab + ".new", text));
    REQUIRE(::rename((tab + ".new").c_str(), tab.c_str()) == 0);
  }
  std::unique_ptr<CatalogSource> open() const {
    auto source = CatalogSource::open(tab);
    INFO(source.status().message());
    REQUIRE(source.ok());
    return std::move(*source);
  }
};

const std::string kA = "a disk.img 0 4M shared root root 0666\n";
const std::string kB = "b disk.img 4M 4M exclusive root root 0666\n";
const std::string kC = "c disk.img 8M 4M ro root root 0644\n";

bool serves(const PackCatalog& catalog, const std::string& pack) {
  return catalog.find("pack/" + pack).ok() && catalog.find("pack/" + pack + "@ro").ok();
}

}  // namespace

TEST_CASE("a bad table at start is refused with its file, line and reason") {
  Site site;
  site.put(kA + "a disk.img 4M 4M ro root root 0644\n");
  auto source = CatalogSource::open(site.tab);
  REQUIRE_FALSE(source.ok());
  CHECK(source.status().message() == site.tab + ":2: pack 'a': name already used on line 1");

  auto missing = CatalogSource::open(site.dir.file("nope"));
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Contains("nope: cannot read"));
}

TEST_CASE("no packtab serves no packs and never reloads") {
  auto source = must(CatalogSource::open(""));
  auto now = source->current();
  CHECK(now.catalog->exports().empty());
  CHECK_FALSE(now.reloaded);
  CHECK_FALSE(now.failed);
  CHECK_THAT(now.catalog->find("pack/a").status().message(),
             Contains("no pack table is configured"));
}

TEST_CASE("a renamed-in table is served to new callers; old catalogs stay as they were") {
  Site site;
  site.put(kA + kB);
  auto source = site.open();
  auto first = source->current();
  CHECK_FALSE(first.reloaded);
  CHECK_FALSE(first.failed);
  REQUIRE(first.catalog->exports().size() == 4);
  CHECK(source->current().catalog == first.catalog);  // unchanged file: the same catalog

  site.put(kA + kC);  // b spun down, c spun up
  auto second = source->current();
  CHECK(second.reloaded);
  CHECK_FALSE(second.failed);
  CHECK(serves(*second.catalog, "a"));
  CHECK(serves(*second.catalog, "c"));
  auto refused = second.catalog->find("pack/b");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == vvm::Code::kNotFound);
  CHECK(refused.status().message() ==
        "unknown export 'pack/b': no such pack in " + site.tab + " (spun down?)");
  CHECK_FALSE(second.catalog->find("pack/b@ro").ok());
  // Whoever still holds the first catalog (an open connection's ExportInfo) still has b.
  CHECK(serves(*first.catalog, "b"));
  CHECK_FALSE(first.catalog->find("pack/c").ok());
  // Read once: the next call serves the same catalog without reading again.
  auto third = source->current();
  CHECK_FALSE(third.reloaded);
  CHECK(third.catalog == second.catalog);
}

TEST_CASE("a table rewritten in place is noticed too") {
  Site site;
  site.put(kA);
  auto source = site.open();
  must(vvm::test::write_file(site.tab, kA + kB));  // same inode, new size
  auto now = source->current();
  CHECK(now.reloaded);
  CHECK(serves(*now.catalog, "b"));
}

TEST_CASE("a bad new table keeps the old one and is reported once per change") {
  Site site;
  site.put(kA + kB);
  auto source = site.open();
  auto good = source->current().catalog;

  site.put(kA + "b disk.img 4M 4M exclusive root root\n");  // 7 fields
  auto bad = source->current();
  REQUIRE(bad.failed);
  CHECK(bad.failed->message() == site.tab +
                                     ":2: pack 'b': 7 fields where 8 belong (NAME BACKING OFFSET "
                                     "SIZE MODE OWNER GROUP PERMS) (still serving the previous "
                                     "table)");
  CHECK_FALSE(bad.reloaded);
  CHECK(bad.catalog == good);
  for (int i = 0; i < 3; ++i) {  // the same bad file again: served from the old table, silently
    auto again = source->current();
    CHECK_FALSE(again.failed);
    CHECK(again.catalog == good);
  }

  site.put(kA + "b disk.img 14M 4M exclusive root root 0666\n");  // another bad one: past the end
  auto past_end = source->current();
  REQUIRE(past_end.failed);
  CHECK_THAT(past_end.failed->message(),
             Contains(site.tab + ":2: pack 'b': ends past the end of its backing"));
  CHECK(past_end.catalog == good);
  CHECK_FALSE(source->current().failed);

  site.put(kA + kC);  // fixed
  auto fixed = source->current();
  CHECK(fixed.reloaded);
  CHECK_FALSE(fixed.failed);
  CHECK(serves(*fixed.catalog, "c"));
  CHECK_FALSE(fixed.catalog->find("pack/b").ok());
}

TEST_CASE("a packtab that disappears keeps the old table, reported once, until it is back") {
  Site site;
  site.put(kA);
  auto source = site.open();
  auto good = source->current().catalog;
  REQUIRE(::unlink(site.tab.c_str()) == 0);
  auto gone = source->current();
  REQUIRE(gone.failed);
  CHECK(gone.failed->message() ==
        site.tab + ": cannot read: No such file or directory (still serving the previous table)");
  CHECK(gone.catalog == good);
  for (int i = 0; i < 3; ++i) CHECK_FALSE(source->current().failed);

  site.put(kA + kB);
  auto back = source->current();
  CHECK(back.reloaded);
  CHECK(serves(*back.catalog, "b"));
}

TEST_CASE("threads asking while the table is swapped always get a whole table") {
  Site site;
  const std::string one = kA + kB, two = kA + kC;
  site.put(one);
  auto source = site.open();
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, asked{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto now = source->current();
        // Either table, whole: a always, and exactly one of b and c.
        const bool a = serves(*now.catalog, "a"), b = serves(*now.catalog, "b"),
                   c = serves(*now.catalog, "c");
        if (!a || b == c || now.catalog->exports().size() != 4) ++torn;
        ++asked;
      }
    });
  }
  // Swap while every reader is at work, and let them ask again after the last swap.
  while (asked.load() < 4) std::this_thread::yield();
  for (int i = 0; i < 200; ++i) site.put(i % 2 == 0 ? two : one);
  const int after = asked.load();
  while (asked.load() < after + 100) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();
  CHECK(torn.load() == 0);
  CHECK(serves(*source->current().catalog, "b"));
  CHECK_FALSE(serves(*source->current().catalog, "c"));
}
