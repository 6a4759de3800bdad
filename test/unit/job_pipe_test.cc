// job_pipe_test.cc: the lines a copy child writes to its parent mover (mover/copy/job_pipe.h).
#include "copy/job_pipe.h"

#include <catch2/catch.hpp>

namespace vvm::mover {
namespace {

TEST_CASE("events encode as one line each and parse back") {
  JobEvent progress{JobEvent::Kind::kProgress, 123456, 0, {}};
  CHECK(encode_event(progress) == "progress 123456\n");
  JobEvent done{JobEvent::Kind::kDone, 104857600, 0xfedcba9876543210ull, {}};
  CHECK(encode_event(done) == "done 104857600 fedcba9876543210\n");
  JobEvent failed{JobEvent::Kind::kFailed, 0, 0, Status::NoSpace("VSN T1 is full\nsecond line")};
  CHECK(encode_event(failed) == "failed 12 VSN T1 is full second line\n");

  auto p = parse_event("progress 123456");
  REQUIRE(p.ok());
  CHECK(p->kind == JobEvent::Kind::kProgress);
  CHECK(p->bytes == 123456);
  auto d = parse_event("done 104857600 fedcba9876543210");
  REQUIRE(d.ok());
  CHECK(d->kind == JobEvent::Kind::kDone);
  CHECK(d->bytes == 104857600);
  CHECK(d->checksum == 0xfedcba9876543210ull);
  auto f = parse_event("failed 13 file 3 of T1: HDR serial: expected 1, found 2");
  REQUIRE(f.ok());
  CHECK(f->kind == JobEvent::Kind::kFailed);
  CHECK(f->failure.code() == Code::kMismatch);
  CHECK(f->failure.message() == "file 3 of T1: HDR serial: expected 1, found 2");

  JobEvent mounted{JobEvent::Kind::kMounted, 0, 0, {}, 1250000};
  CHECK(encode_event(mounted) == "mounted 1250000\n");
  auto m = parse_event("mounted 1250000");
  REQUIRE(m.ok());
  CHECK(m->kind == JobEvent::Kind::kMounted);
  CHECK(m->micros == 1250000);

  // A failed tape copy's tape to blame, and none ("").
  JobEvent blame{JobEvent::Kind::kBlame};
  blame.vsn = "L90001";
  CHECK(encode_event(blame) == "blame L90001\n");
  auto b = parse_event("blame L90001");
  REQUIRE(b.ok());
  CHECK(b->kind == JobEvent::Kind::kBlame);
  CHECK(b->vsn == "L90001");
  blame.vsn.clear();
  b = parse_event(encode_event(blame).substr(0, encode_event(blame).size() - 1));
  REQUIRE(b.ok());
  CHECK(b->kind == JobEvent::Kind::kBlame);
  CHECK(b->vsn.empty());
}

TEST_CASE("anything else is a protocol error naming the line") {
  for (const char* line : {"", "progress", "progress x", "progress 1 2", "done 1", "done 1 xyz",
                           "failed 0 ok is no failure", "failed 99 unknown code", "hello 1",
                           "mounted", "mounted -1", "mounted 1.5"}) {
    INFO(line);
    auto e = parse_event(line);
    REQUIRE_FALSE(e.ok());
    CHECK(e.status().code() == Code::kProtocolError);
  }
}

TEST_CASE("the reader cuts lines whatever the read sizes") {
  EventReader reader;
  CHECK(reader.feed("progress 1\nprog").size() == 1);
  CHECK(reader.feed("ress 2").empty());
  auto events = reader.feed("\ndone 2 ab\nbogus\n");
  REQUIRE(events.size() == 3);
  CHECK(events[0]->bytes == 2);
  CHECK(events[1]->checksum == 0xab);
  CHECK_FALSE(events[2].ok());
}

}  // namespace
}  // namespace vvm::mover
