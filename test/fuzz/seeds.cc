// seeds.cc: fuzz_seeds TARGET DIR writes the seed corpus of one fuzz target (test/fuzz/) into DIR,
// made by the real encoders and writers, so that the seeds follow the formats as they change:
//   proto_fuzz        every request and every reply of proto/messages.h, each once with its
//                     defaults and once with every field set, record-marked as on the wire; an
//                     error reply; two records in one stream; a record in two fragments
//   tape_fuzz         .tap images written by the emulated drive as the mover writes them: a VOL
//                     label, files archived by the copy engine, a torn tail
//   journal_fuzz      vvmd's journal after real transactions on its three tables (the target's
//                     first byte is its mode: raw, or with CRCs fixed)
//   export_name_fuzz  the export names the plugin serves, as clients send them
//   record_fuzz       VV and VSN records as vvmd's tables hold them
//   table_open_fuzz   a VSN table written by the database (the target's first byte is its mode:
//                     the file whole, or the records behind a header of the target's own)
//   label_fuzz        the VOL, HDR and EOF labels the mover writes
//   job_pipe_fuzz     a copy child's events, as it writes them to its mover
// vvm.conf's and the packtab's seeds are the files of conf/ (run.sh copies them).
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "catalog/records.h"
#include "catalog/tables.h"
#include "common/status.h"
#include "copy/copy.h"
#include "copy/job_pipe.h"
#include "db/database.h"
#include "proto/frame.h"
#include "proto/messages.h"
#include "tape/emulated_tape.h"
#include "tape/label.h"
#include "tape/library.h"

namespace {

using namespace vvm;
namespace fs = std::filesystem;

[[noreturn]] void die(const std::string& what) {
  std::cerr << "fuzz_seeds: " << what << "\n";
  std::exit(1);
}

template <class T>
T must(Result<T> r, std::string_view what) {
  if (!r.ok()) die(std::string(what) + ": " + r.status().message());
  return std::move(*r);
}

void must(const Status& s, std::string_view what) {
  if (!s.ok()) die(std::string(what) + ": " + s.message());
}

void must(const tape::TapeResult& r, std::string_view what) { must(r.status, what); }

void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) die("cannot write " + path.string());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// --- proto_fuzz ---

// Sets every field of a message to a value of its own, walking its `fields` as the codec does:
// numbers count up, strings name their field, lists get two elements, enumerations their last
// value, optionals and flags are set, failures carry an error.
class Filler {
 public:
  void u32(uint32_t& v) { v = static_cast<uint32_t>(++n_); }
  void u64(uint64_t& v) { v = 0x100000000ull + ++n_; }
  void flag(bool& v) { v = true; }
  void short_string(std::string& s, std::string_view label) { s = std::string(label); }
  void long_string(std::string& s, std::string_view label) { s = std::string(label) + " text"; }
  void opaque(std::string& s, std::string_view label) { s = std::string(label) + "\x01\x02"; }
  template <class E>
  void enumeration(E& e, E, E last, std::string_view, std::string_view) {
    e = last;
  }
  template <class T>
  void nested(T& v) {
    T::fields(*this, v);
  }
  template <class T, size_t N>
  void array(std::array<T, N>& a) {
    for (T& v : a) nested(v);
  }
  template <class T>
  void list(std::vector<T>& v) {
    v.resize(2);
    for (T& x : v) nested(x);
  }
  void list(std::vector<uint32_t>& v, size_t, std::string_view) { v = {7, 8, 9}; }
  void optional(std::optional<uint64_t>& o) { o = 42; }
  void failure(Status& s, bool, std::string_view what) {
    s = Status::NotFound(std::string(what) + ": no such thing");
  }

 private:
  uint64_t n_ = 0;
};

template <class T>
T filled() {
  T v{};
  Filler f;
  T::fields(f, v);
  return v;
}

std::string framed(std::string_view message) { return rpc::frame_record(message); }

template <class... R>
void write_messages(const fs::path& dir, std::variant<R...>*) {
  auto one = [&]<class T>(T*) {
    const std::string name(T::kName);
    for (bool full : {false, true}) {
      rpc::Request request;
      request.xid = 7;
      request.body = full ? filled<T>() : T{};
      write_file(dir / (name + (full ? ".request.full" : ".request")),
                 framed(must(rpc::encode_request(request), name + " request")));
      using Answer = typename T::Reply;
      Answer answer = full ? filled<Answer>() : Answer{};
      if constexpr (rpc::CarriesOp<Answer>) answer.op = T::kOp;
      rpc::Reply reply;
      reply.xid = 7;
      reply.body = std::move(answer);
      write_file(dir / (name + (full ? ".reply.full" : ".reply")),
                 framed(must(rpc::encode_reply(reply), name + " reply")));
    }
  };
  (one(static_cast<R*>(nullptr)), ...);
}

void proto_seeds(const fs::path& dir) {
  write_messages(dir, static_cast<rpc::RequestBody*>(nullptr));
  rpc::Reply error = rpc::error_reply({rpc::kProtocolMagic, rpc::kProtocolVersion, 9},
                                      Status::NotFound("no VV A0000000001"));
  write_file(dir / "error.reply", framed(must(rpc::encode_reply(error), "error reply")));
  // Two requests in one stream, as a client that pipelines sends them.
  rpc::Request ping;
  ping.body = rpc::PingRequest{"hello"};
  const std::string p = must(rpc::encode_request(ping), "ping");
  write_file(dir / "two.requests", framed(p) + framed(p));
  // One request in two fragments: a peer may split a record anywhere.
  const size_t half = p.size() / 2;
  auto first = rpc::encode_mark({static_cast<uint32_t>(half), false});
  auto last = rpc::encode_mark({static_cast<uint32_t>(p.size() - half), true});
  write_file(dir / "ping.fragments", std::string(first.data(), first.size()) + p.substr(0, half) +
                                         std::string(last.data(), last.size()) + p.substr(half));
}

// --- tape_fuzz ---

void tape_seeds(const fs::path& dir, const fs::path& scratch) {
  const std::string image = (scratch / "V00001.tap").string();
  must(tape::EmulatedTape::create_image(image), "create a tape image");
  {
    tape::EmulatedTape blank;
    must(blank.load(image), "load the blank tape");
  }
  write_file(dir / "blank.tap", read_file(image));
  {
    tape::EmulatedTape drive;
    must(drive.load(image), "load the tape");
    must(tape::write_volume_label(drive, {"V00001", "LTO9"}), "label the tape");
  }
  write_file(dir / "labelled.tap", read_file(image));
  // Two VVs archived as the mover archives them, in small blocks (one of odd length) so that
  // the image stays small.
  const std::vector<std::string> datas = {std::string(1500, 'a'), std::string(77, 'b')};
  for (size_t i = 0; i < datas.size(); ++i) {
    const fs::path src = scratch / ("vv" + std::to_string(i));
    write_file(src, datas[i]);
    tape::EmulatedTape drive;
    must(drive.load(image), "load the tape");
    tape::ArchiveRequest request{
        "V00001", i + 1, {'A', i + 1, 100 + i, datas[i].size(), 1700000000}, 1700000100, 512};
    must(tape::archive(drive, request, src.string()), "archive a VV");
  }
  const std::string archived = read_file(image);
  write_file(dir / "archived.tap", archived);
  // The same cut in the middle of a record: a crash while the drive wrote.
  write_file(dir / "torn.tap", archived.substr(0, archived.size() - 300));
}

// --- journal_fuzz ---

Vv seed_vv(const std::string& name, uint64_t client) {
  Vv vv;
  vv.name = name;
  vv.vv_class = name.substr(0, 1);
  vv.serial = std::stoull(name.substr(1));
  vv.client_id = client;
  vv.owner = "root";
  vv.group = "root";
  vv.size = 1 << 20;
  return vv;
}

void journal_seeds(const fs::path& dir, const fs::path& scratch) {
  const fs::path db_dir = scratch / "db";
  // Checkpoints far away: every frame stays in the journal.
  auto db = must(db::Database::open(db_dir.string(), vvmd::table_specs(), 1 << 20), "open");
  auto journal_now = [&] {
    std::string bytes = read_file(db_dir / "journal");
    // The frames, without the zeros the journal keeps after them.
    const size_t end = bytes.find_last_not_of('\0');
    bytes.resize(end == std::string::npos ? 0 : (end + 4) / 4 * 4);
    return bytes;
  };
  auto write_both = [&](const std::string& name, const std::string& journal) {
    write_file(dir / (name + ".raw"), std::string(1, '\0') + journal);
    write_file(dir / (name + ".crc"), std::string(1, '\1') + journal);
  };
  db::Transaction first;
  first.insert(vvmd::kVvTable, vvmd::vv_values(seed_vv("A0000000001", 1)));
  first.insert(vvmd::kVsnTable,
               vvmd::vsn_values({"V00001", "LTO9", "A", VsnState::kHot, "slot:1", 1, 0, 1 << 30}));
  must(vvmd::set_counter(*db, first, "serial.A", 1), "counter");
  const auto slots = must(db->commit(first), "commit the first transaction");
  write_both("one-frame", journal_now());
  db::Transaction second;
  Vv vv = seed_vv("A0000000001", 1);
  vv.state = VvState::kFinished;
  second.update(vvmd::kVvTable, slots[0], vvmd::vv_values(vv));
  second.insert(vvmd::kVvTable, vvmd::vv_values(seed_vv("B0000000001", 2)));
  must(db->commit(second), "commit the second transaction");
  db::Transaction third;
  third.erase(vvmd::kVvTable, slots[0]);
  must(db->commit(third), "commit the third transaction");
  write_both("three-frames", journal_now());
}

// --- record_fuzz, table_open_fuzz and label_fuzz ---

Vsn seed_vsn(const std::string& name) {
  return {name, "LTO9",    "A", VsnState::kHot, "slot:1", 3, 1 << 20, uint64_t{1} << 40,
          0,    1700000000};
}

void record_seeds(const fs::path& dir) {
  Vv vv = seed_vv("A0000000042", 7);
  vv.state = VvState::kArchived;
  vv.copies[0] = {"V00001", 3};
  const std::string rec = must(vvmd::vv_schema().encode(db::kLive, vvmd::vv_values(vv)), "vv");
  write_file(dir / "vv.record", rec);
  // The target reads an input of odd length as a VSN record (cut to its size).
  const std::string vsn =
      must(vvmd::vsn_schema().encode(db::kLive, vvmd::vsn_values(seed_vsn("V00001"))), "vsn");
  write_file(dir / "vsn.record", vsn + " ");
  write_file(
      dir / "vsn.deleted",
      must(vvmd::vsn_schema().encode(db::kDeleted, vvmd::vsn_values(seed_vsn("V00002"))), "vsn") +
          " ");
}

void table_seeds(const fs::path& dir, const fs::path& scratch) {
  const fs::path db_dir = scratch / "db";
  {
    auto db = must(db::Database::open(db_dir.string(), vvmd::table_specs(), 1 << 20), "open");
    db::Transaction txn;
    for (const char* name : {"V00001", "V00002", "V00003"}) {
      txn.insert(vvmd::kVsnTable, vvmd::vsn_values(seed_vsn(name)));
    }
    const auto slots = must(db->commit(txn), "commit the VSNs");
    db::Transaction erase;
    erase.erase(vvmd::kVsnTable, slots[1]);
    must(db->commit(erase), "erase a VSN");
  }
  const std::string table = read_file(db_dir / "vsn.tab");
  write_file(dir / "vsn.tab", std::string(1, '\0') + table);
  // Mode 1: the target puts its own header in front of what follows the first byte.
  write_file(dir / "vsn.records",
             std::string(1, '\1') + table.substr(vvmd::vsn_schema().record_size()));
}

void label_seeds(const fs::path& dir) {
  write_file(dir / "vol", must(tape::VolLabel{"V00001", "LTO9"}.encode(), "VOL label"));
  tape::FileLabel label{tape::LabelKind::kHdr, 'A', 42, 7, 3, 1 << 20, 1700000000, 1700000100};
  write_file(dir / "hdr", must(label.encode(), "HDR label"));
  label.kind = tape::LabelKind::kEof;
  write_file(dir / "eof", must(label.encode(), "EOF label"));
}

// --- job_pipe_fuzz: a copy that progresses then succeeds, and one that fails ---

void job_pipe_seeds(const fs::path& dir) {
  using mover::JobEvent;
  const std::string progress = mover::encode_event({JobEvent::Kind::kProgress, 0}) +
                               mover::encode_event({JobEvent::Kind::kProgress, 1 << 20});
  write_file(dir / "done", progress + mover::encode_event(
                                          {JobEvent::Kind::kDone, 2 << 20, 0x0123456789abcdefull}));
  write_file(
      dir / "failed",
      progress + mover::encode_event({JobEvent::Kind::kFailed, 0, 0,
                                      Status::IoError("V00001: read block 7: medium error")}));
}

// --- export_name_fuzz: the names of the packs the target's own table serves ---

void export_name_seeds(const fs::path& dir) {
  const std::vector<std::string> names = {
      "pack/scratch",   "pack/home@ro", "pack/tools", "vv/A0000000001",
      "vv/Z9999999999", "pack/",        "vv/"};
  for (size_t i = 0; i < names.size(); ++i)
    write_file(dir / ("name" + std::to_string(i)), names[i]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) die("usage: fuzz_seeds TARGET DIR");
  const std::string target = argv[1];
  const fs::path dir = argv[2];
  fs::create_directories(dir);
  char scratch_template[] = "/tmp/fuzz_seeds.XXXXXX";
  if (::mkdtemp(scratch_template) == nullptr) die("cannot make a temporary folder");
  const fs::path scratch = scratch_template;
  if (target == "proto_fuzz") {
    proto_seeds(dir);
  } else if (target == "tape_fuzz") {
    tape_seeds(dir, scratch);
  } else if (target == "journal_fuzz") {
    journal_seeds(dir, scratch);
  } else if (target == "export_name_fuzz") {
    export_name_seeds(dir);
  } else if (target == "record_fuzz") {
    record_seeds(dir);
  } else if (target == "table_open_fuzz") {
    table_seeds(dir, scratch);
  } else if (target == "label_fuzz") {
    label_seeds(dir);
  } else if (target == "job_pipe_fuzz") {
    job_pipe_seeds(dir);
  }
  fs::remove_all(scratch);
  return 0;
}
