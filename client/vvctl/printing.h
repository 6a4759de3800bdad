// vvctl/printing.h: how vvctl prints: aligned tables, sizes, times and ages as people read them,
// and the JSON objects of a VV and a VSN that --json prints.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/config.h"
#include "common/copy_mark.h"
#include "common/json.h"
#include "common/vsn.h"
#include "common/vv.h"
#include "proto/messages.h"

namespace vvm::vvctl {

// "18T" when a binary unit divides the size exactly (as format_size), else one decimal in the
// largest unit below it ("1.5G"); bytes below 1K as they are.
std::string human_size(uint64_t bytes);

// "2026-11-23 12:05:04" in local time; "-" for 0 (not yet).
std::string format_time(uint64_t unix_seconds);

// "1h02m", "45s"
std::string format_age(uint64_t s);

// Prints `rows` (the first is the header) as aligned columns.
template <size_t N>
void print_table(const std::vector<std::array<std::string, N>>& rows) {
  std::array<size_t, N> width{};
  for (const auto& row : rows) {
    for (size_t i = 0; i < N; ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < N; ++i) {
      line += i + 1 < N ? fmt::format("{:<{}}  ", row[i], width[i]) : row[i];
    }
    fmt::print("{}\n", line);
  }
}

// The media type of the tape `vsn` as vvmd said in VV_COPIES ("" if it did not say): a copy's
// media type is its tape's, never guessed from a slot's position and the local vvm.conf.
std::string copy_media(const rpc::VvCopies* copies, const std::string& vsn);
// Whether copy `copy` (1-based) is one the VV's class no longer wants, as vvmd said.
bool is_extra(const rpc::VvCopies* copies, uint32_t copy);

// "L00001 file 3, M00002 file 7", or "none".
std::string describe_copies(const Vv& v);

// The object `show --json` prints (and `ls --json` an array of), copies named by the media type
// of their tape (`copies`, from vvmd: "" without), with "extra": true for those the class no
// longer wants, then "lacking": the class's media types no copy is on yet. With `marks` (show):
// each copy says "state": "good", and the VV's bad copies follow in the same list with
// "state": "bad", when and why.
void write_vv_json(JsonWriter& j, const Vv& v, const rpc::VvCopies* copies,
                   const std::vector<CopyMark>* marks = nullptr);

// One VSN as `vsn ls --json` prints it: every field of its record, then its detail (the state's
// note, the class's age, its live, dead and bad files), and its repack if it has one.
void write_vsn_json(JsonWriter& j, const Vsn& v, const rpc::VsnDetail& d,
                    const rpc::RepackInfo* repack = nullptr);
// A repack as `vsn ls --json`, `vsn repack` and `status --json` print it.
void write_repack_json(JsonWriter& j, const rpc::RepackInfo& r);
// "repack running since ... by root: 3 of 5 files moved (12M of 20M), 1 moving" (vsn ls, status).
std::string repack_progress(const rpc::RepackInfo& r);
// One drive as `drive ls --json` and `status --json` print its state.
void write_drive_json(JsonWriter& j, const rpc::DriveDetail& d);

}  // namespace vvm::vvctl
