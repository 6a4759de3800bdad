// vv_export_test.cc: what the plugin says when it serves a VV read-only to a connection that asked
// to write: the VV, why (its state, or its mode for that peer) and how to read it instead.
#include <catch2/catch.hpp>
#include <string>

#include "proto/messages.h"
#include "vv_export.h"

using vvm::plugin::read_only_note;
using vvm::plugin::read_only_reason;

namespace {

vvm::rpc::VvOpenRequest asked(bool writable) {
  vvm::rpc::VvOpenRequest r;
  r.name = "A0000000042";
  r.writable = writable;
  return r;
}

vvm::rpc::VvOpenReply answered(vvm::VvState state, uint32_t perms, bool writable) {
  vvm::rpc::VvOpenReply r;
  r.vv.name = "A0000000042";
  r.vv.state = state;
  r.vv.perms = perms;
  r.vv.owner = "root";
  r.vv.group = "disk";
  r.writable = writable;
  return r;
}

}  // namespace

TEST_CASE("a VV served as asked needs no reason") {
  CHECK(read_only_reason(asked(true), answered(vvm::VvState::kHot, 0666, true), "uid 7").empty());
  // A connection that asked to read only (nbdkit -r) is served as it asked.
  CHECK(read_only_reason(asked(false), answered(vvm::VvState::kFinished, 0644, false), "uid 7")
            .empty());
}

TEST_CASE("a finished or archived VV is read-only because of its state") {
  CHECK(read_only_reason(asked(true), answered(vvm::VvState::kFinished, 0666, false), "uid 7") ==
        "VV A0000000042 is finished, and only a hot VV can be written");
  CHECK(read_only_reason(asked(true), answered(vvm::VvState::kArchived, 0666, false),
                         "host 10.0.0.7") ==
        "VV A0000000042 is archived, and only a hot VV can be written");
}

TEST_CASE("a hot VV is read-only to a peer its mode lets read, not write") {
  CHECK(read_only_reason(asked(true), answered(vvm::VvState::kHot, 0644, false), "uid 7") ==
        "VV A0000000042 is hot, but its mode rw-r--r-- for root:disk lets uid 7 read it, not write "
        "it");
}

TEST_CASE("the note names the export, the reason and the way out") {
  const std::string note = read_only_note("vv/A0000000042", "VV A0000000042 is finished");
  CHECK(note.starts_with("vv/A0000000042: served read-only, "));
  CHECK_THAT(note, Catch::Contains(": VV A0000000042 is finished; ") &&
                       Catch::Contains("open it read-only (qemu-io -r"));
}
