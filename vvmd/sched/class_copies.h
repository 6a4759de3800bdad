// sched/class_copies.h: which copies a VV lacks and which it holds in excess, now that a storage
// class's media types may change while VVs of it are on tape.
//
// A VV keeps up to kMaxVvCopies copies in the slots of its record. Which media type a copy is on
// is its VSN's (the VSN table), never the slot's position: a class that gains a media type writes
// the new copy into a free slot, and one that loses a type keeps those copies, now extra, where
// they are until `vvctl class prune` releases them. A VV of a class with media types L lacks the
// types of L that none of its copies is on, and a copy is extra when its media type is not in L
// (or a second copy on a type of L). A new VV's copy i goes to slot i, as it always did.
//
// Derived, never stored: vvm.conf says what a class should have and the catalogue what each VV
// has, so there is nothing to keep in step and a restart derives the same.
//
// A lacking copy is made from an existing one (copy_route()): the cache file when the VV is
// there; else tape to tape, when one mover has a drive up that reads one of the VV's copies and
// one of the lacking media type (one copy process holds both, so each byte moves once, and the
// cache is not used); else the VV is staged into the cache first. Plain data, no I/O.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "common/vv.h"
#include "sched/library_view.h"

namespace vvm::vvmd {

struct ClassCopies {
  struct Lacking {
    std::string media;  // a media type of the class that no copy is on
    size_t slot = 0;    // the free slot its copy goes to; kMaxVvCopies when none is free
  };
  std::vector<Lacking> lacking;          // in the class's order
  std::vector<size_t> extra;             // slots whose copies the class no longer wants
  std::vector<std::string> extra_media;  // the media type of each of `extra`
  bool complete() const { return lacking.empty(); }
};

// `media_of` names the media type of a VSN ("" when the VSN is unknown: such a copy is counted
// as on the media its slot's position gives, if any, so that a lost VSN record makes no copy).
ClassCopies class_copies(const Vv& vv, const std::vector<std::string>& class_media,
                         const std::function<std::string(const std::string& vsn)>& media_of);

// A copy a lacking one may be read from.
struct CopySource {
  size_t copy = 0;  // its slot in the VV's copies
  std::string vsn;
  uint64_t file = 0;
  std::string media;  // its VSN's media type: which drives read it
};

// How a lacking copy is made.
struct CopyRoute {
  enum class Kind { kFromCache, kTapeToTape, kStageFirst };
  Kind kind = Kind::kStageFirst;
  CopySource source;  // kTapeToTape: the copy read
  std::string mover;  // kTapeToTape: the mover whose drives read it and write the new one
  std::string why;    // kStageFirst: why not tape to tape
};

// The route for a copy on `media` of a VV that is `cached` or not, read from the first of
// `sources` (best first) that a mover can copy tape to tape: a drive of the source's media type
// and another of `media`, both up (busy or not: a busy drive is waited for, not a reason to go
// through the cache). Movers are tried in name order.
CopyRoute copy_route(bool cached, const std::vector<CopySource>& sources, const std::string& media,
                     const std::vector<DriveState>& drives);

}  // namespace vvm::vvmd
