// vsn_catalog_test.cc: vvmd's VSN catalogue over a real database and a real emulated library in
// a temporary folder: add (the image created and labelled, read back with the mover's own
// read_volume_label; an image already there registered with its next file, or refused saying
// what it holds; every refusal naming why; who may add), the mtx kind (a record only), and list
// in pages. The daemon itself, with vvctl and vvtape: test/integration/vsn.sh.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "catalog/vsn_catalog.h"
#include "copy/copy.h"
#include "peers.h"
#include "process.h"
#include "tape/emulated_tape.h"
#include "tape/library.h"

using namespace vvm;
using namespace vvm::vvmd;
using vvm::test::must;
using vvm::test::TempDir;
using vvm::test::unix_peer;

namespace {

const rpc::Peer kRoot = unix_peer(0);
const rpc::Peer kNobody = unix_peer(65534);
const rpc::Peer kDaemon = unix_peer(4242);
constexpr uint64_t kLto9 = 64 << 20, kLto8 = 32 << 20;

struct Fixture {
  TempDir dir = must(TempDir::create());
  std::string kind = "emulated";
  std::unique_ptr<db::Database> db;
  std::unique_ptr<VsnCatalog> vsns;

  Fixture() { reopen(); }
  void reopen() {
    vsns.reset();
    db.reset();
    db = must(open_database(dir.file("db")));
    VsnCatalog::Options o;
    o.media["LTO9"] = MediaType{"LTO9", kLto9, 256 * 1024, 0};
    o.media["LTO8"] = MediaType{"LTO8", kLto8, 256 * 1024, 0};
    o.classes['A'] = StorageClass{'A', {"LTO9", "LTO8"}, "", 0};
    o.classes['B'] = StorageClass{'B', {"LTO9"}, "", 0};
    o.library_kind = kind;
    o.library_path = dir.file("library");
    o.daemon_uid = 4242;  // not the test's uid: root and 4242 alone are privileged here
    vsns = must(VsnCatalog::open(db.get(), o));
  }
  std::string image(const std::string& vsn) const { return dir.file("library/" + vsn + ".tap"); }
  Vsn add(const std::string& vsn, const std::string& media, const std::string& cls = "",
          const rpc::Peer& peer = kRoot) {
    return must(vsns->add(peer, {vsn, media, cls}));
  }
  Status refused(const std::string& vsn, const std::string& media, const std::string& cls = "",
                 const rpc::Peer& peer = kRoot) {
    auto r = vsns->add(peer, {vsn, media, cls});
    REQUIRE_FALSE(r.ok());
    return r.status();
  }
  size_t library_files() const {
    return static_cast<size_t>(
        std::distance(std::filesystem::directory_iterator(dir.file("library")), {}));
  }
  std::vector<std::string> names(rpc::VsnListRequest req = {}) {
    std::vector<std::string> out;
    for (const auto& v : must(vsns->list(req)).vsns) out.push_back(v.name);
    return out;
  }
};

// A labelled image at `path`, made as vvtape label makes one (no capacity sidecar).
void label_image(const std::string& path, const std::string& vsn, const std::string& media) {
  must(tape::EmulatedTape::create_image(path));
  auto t = must(tape::open_tape(path));
  must(tape::write_volume_label(*t, {vsn, media}));
}

// Archives `size` bytes as file `n` of the tape at `path`, as a mover does.
void archive_file(const TempDir& dir, const std::string& path, const std::string& vsn, uint64_t n,
                  uint64_t size) {
  const std::string data = dir.file("vv-data");
  {
    std::ofstream out(data, std::ios::trunc);
    out << std::string(size, 'v');
  }
  auto t = must(tape::open_tape(path));
  tape::ArchiveRequest req;
  req.vsn = vsn;
  req.file_number = n;
  req.vv = {'A', n, 0, size, 1'700'000'000};
  must(tape::archive(*t, req, data));
}

}  // namespace

TEST_CASE("add creates an emulated tape, labels it, and records it blank in its slot") {
  Fixture f;
  auto v = f.add("L90001", "LTO9", "A");
  CHECK(v.name == "L90001");
  CHECK(v.media == "LTO9");
  CHECK(v.vsn_class == "A");
  CHECK(v.state == VsnState::kBlank);
  CHECK(v.location == "slot");
  CHECK(v.next_file == 1);
  CHECK(v.bytes_used == 0);
  CHECK(v.capacity == kLto9);
  CHECK(v.errors == 0);
  CHECK(v.last_mount == 0);

  // The image, read back with the mover's code: the VOL label, no files, the media's capacity.
  CHECK(must(tape::read_capacity(f.image("L90001"))) == kLto9);
  auto t = must(tape::open_tape(f.image("L90001"), /*write_protect=*/true));
  CHECK(must(tape::read_volume_label(*t)) == tape::VolLabel{"L90001", "LTO9"});
  CHECK(must(tape::list_files(*t)).empty());

  // Any class that lists the media: class "".
  auto any = f.add("L80001", "LTO8");
  CHECK(any.vsn_class.empty());
  CHECK(any.capacity == kLto8);
  CHECK(must(tape::read_volume_label(*must(tape::open_tape(f.image("L80001"))))).media_type ==
        "LTO8");
  // vvmd's own user may add, as root may.
  CHECK(f.add("L90002", "LTO9", "B", kDaemon).vsn_class == "B");

  SECTION("the records survive a reopen, in name order") {
    f.reopen();
    CHECK(f.names() == std::vector<std::string>{"L80001", "L90001", "L90002"});
    auto listed = must(f.vsns->list({})).vsns;
    CHECK(listed[1] == v);
  }
}

TEST_CASE("add refuses what it cannot add, naming why, and leaves no image") {
  Fixture f;
  f.add("L90001", "LTO9", "A");
  CHECK(f.library_files() == 2);  // the image and its capacity sidecar

  CHECK_THAT(f.refused("l90002", "LTO9").message(),
             Catch::Contains("bad VSN 'l90002': field vsn: 'l90002' is lowercase"));
  CHECK_THAT(f.refused("L900001", "LTO9").message(),
             Catch::Contains("bad VSN 'L900001': field vsn: 'L900001' is longer than 6"));
  CHECK_THAT(f.refused("L-9001", "LTO9").message(), Catch::Contains("not a letter or digit"));
  CHECK_THAT(f.refused("", "LTO9").message(),
             Catch::Contains("bad VSN '': field vsn: '' is empty"));
  CHECK(f.refused("l90002", "LTO9").code() == Code::kInvalidArgument);
  CHECK_THAT(f.refused("L70001", "LTO7").message(),
             Catch::Contains("no media type 'LTO7' (media types: LTO8, LTO9)"));
  CHECK_THAT(f.refused("L90002", "LTO9", "Z").message(),
             Catch::Contains("no storage class 'Z' (classes: A, B)"));
  CHECK_THAT(f.refused("L90002", "LTO9", "AB").message(), Catch::Contains("no storage class 'AB'"));
  CHECK_THAT(f.refused("L80002", "LTO8", "B").message(),
             Catch::Contains("media LTO8 is not a type of class B (class B keeps its copies on: "
                             "LTO9)"));
  auto twice = f.refused("L90001", "LTO9", "B");
  CHECK(twice.code() == Code::kAlreadyExists);
  CHECK_THAT(
      twice.message(),
      Catch::Contains("VSN L90001 is already in the catalogue (media LTO9, class A, blank)"));

  auto nobody = f.refused("L90002", "LTO9", "", kNobody);
  CHECK(nobody.code() == Code::kPermissionDenied);
  CHECK_THAT(nobody.message(),
             Catch::Contains("may not add VSN L90002: only root and vvmd's user"));
  rpc::Peer tcp;
  tcp.kind = Endpoint::Kind::kTcp;
  tcp.address = "127.0.0.1:5000";
  auto over_tcp = f.refused("L90002", "LTO9", "", tcp);
  CHECK(over_tcp.code() == Code::kPermissionDenied);
  CHECK_THAT(over_tcp.message(), Catch::Contains("TCP peer (127.0.0.1:5000)"));

  CHECK(f.library_files() == 2);
  CHECK(f.names() == std::vector<std::string>{"L90001"});
}

TEST_CASE("an image already in the library is registered when its label says this VSN and media") {
  Fixture f;
  std::filesystem::create_directories(f.dir.file("library"));

  SECTION("a labelled tape with two files: next file 3, hot, its data counted") {
    label_image(f.image("L90005"), "L90005", "LTO9");
    archive_file(f.dir, f.image("L90005"), "L90005", 1, 1000);
    archive_file(f.dir, f.image("L90005"), "L90005", 2, 300000);
    auto v = f.add("L90005", "LTO9", "A");
    CHECK(v.next_file == 3);
    CHECK(v.bytes_used == 301000);
    CHECK(v.state == VsnState::kHot);
    CHECK(v.capacity == kLto9);
    // The sidecar was missing: it now says the media's capacity. The files are untouched.
    CHECK(must(tape::read_capacity(f.image("L90005"))) == kLto9);
    CHECK(must(tape::list_files(*must(tape::open_tape(f.image("L90005"))))).size() == 2);
  }
  SECTION("a labelled tape with no file: blank, next file 1") {
    label_image(f.image("L90006"), "L90006", "LTO9");
    must(tape::write_capacity(f.image("L90006"), kLto9));
    auto v = f.add("L90006", "LTO9");
    CHECK(v.next_file == 1);
    CHECK(v.state == VsnState::kBlank);
  }
  SECTION("a tape that ran out of space (it ends with an empty file): full") {
    label_image(f.image("L90007"), "L90007", "LTO9");
    archive_file(f.dir, f.image("L90007"), "L90007", 1, 5000);
    {
      auto t = must(tape::open_tape(f.image("L90007")));
      REQUIRE(t->position_to_end_of_data().ok());
      REQUIRE(t->write_tape_marks(1, true).ok());
    }
    auto v = f.add("L90007", "LTO9");
    CHECK(v.next_file == 2);
    CHECK(v.state == VsnState::kFull);
    CHECK(v.bytes_used == 5000);
  }
}

TEST_CASE("an image already in the library is refused when it holds something else") {
  Fixture f;
  std::filesystem::create_directories(f.dir.file("library"));
  SECTION("blank") {
    must(tape::EmulatedTape::create_image(f.image("L90001")));
    auto s = f.refused("L90001", "LTO9");
    CHECK(s.code() == Code::kAlreadyExists);
    CHECK_THAT(s.message(), Catch::Contains("the library already has " + f.image("L90001") +
                                            ", which holds no VOL label"));
    CHECK_THAT(s.message(), Catch::Contains("blank tape"));
  }
  SECTION("labelled for another VSN") {
    label_image(f.image("L90001"), "L90009", "LTO9");
    CHECK_THAT(f.refused("L90001", "LTO9").message(),
               Catch::Contains(f.image("L90001") +
                               ", which is labelled VSN L90009, media LTO9 (not VSN L90001, "
                               "media LTO9)"));
  }
  SECTION("labelled for another media type") {
    label_image(f.image("L90001"), "L90001", "LTO8");
    CHECK_THAT(f.refused("L90001", "LTO9").message(),
               Catch::Contains("is labelled VSN L90001, media LTO8 (not VSN L90001, media LTO9)"));
  }
  SECTION("a capacity sidecar that disagrees with the media") {
    label_image(f.image("L90001"), "L90001", "LTO9");
    must(tape::write_capacity(f.image("L90001"), 1 << 20));
    CHECK_THAT(f.refused("L90001", "LTO9").message(),
               Catch::Contains("says 1048576 bytes where media LTO9 holds 67108864"));
  }
  SECTION("not a tape image at all") {
    std::ofstream(f.image("L90001")) << "just some text, long enough to be no SIMH record";
    CHECK_THAT(f.refused("L90001", "LTO9").message(), Catch::Contains(f.image("L90001")));
  }
  // Nothing was recorded, and the image is as it was.
  CHECK(f.names().empty());
  CHECK(std::filesystem::exists(f.image("L90001")));
}

TEST_CASE("a real library (mtx): add records the VSN and makes no image") {
  Fixture f;
  f.kind = "mtx";
  f.reopen();
  auto v = f.add("L90001", "LTO9", "A");
  CHECK(v.state == VsnState::kBlank);
  CHECK(v.next_file == 1);
  CHECK(v.capacity == kLto9);
  CHECK(f.library_files() == 0);  // the folder the fixture's first, emulated, open made
  CHECK(f.refused("L90001", "LTO9").code() == Code::kAlreadyExists);
}

TEST_CASE("list gives every VSN in name order, page by page") {
  Fixture f;
  f.kind = "mtx";  // no images needed to test paging
  f.reopen();
  for (std::string vsn : {"M00003", "L00002", "M00001", "L00001", "A1"}) f.add(vsn, "LTO9");
  const std::vector<std::string> all = {"A1", "L00001", "L00002", "M00001", "M00003"};
  CHECK(f.names() == all);
  rpc::VsnListRequest page{"", 2};
  std::vector<std::string> paged;
  for (int i = 0; i < 10; ++i) {
    auto reply = must(f.vsns->list(page));
    for (const auto& v : reply.vsns) paged.push_back(v.name);
    CHECK(reply.vsns.size() <= 2);
    if (!reply.more) break;
    page.after = reply.vsns.back().name;
  }
  CHECK(paged == all);
  // `after` need not be a VSN in the catalogue; "L" is a prefix of names that follow it.
  CHECK(f.names({"L", 0}) == std::vector<std::string>{"L00001", "L00002", "M00001", "M00003"});
  CHECK(f.names({"M00003", 0}).empty());
  CHECK_FALSE(must(f.vsns->list({"", 5})).more);
  CHECK(must(f.vsns->list({"", 4})).more);
}
