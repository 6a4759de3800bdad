// vvctl/printing.cc: how vvctl prints sizes, times, ages and the JSON of a VV or a VSN
// (printing.h).
#include "vvctl/printing.h"

#include <time.h>

#include <ctime>

#include "common/size.h"

namespace vvm::vvctl {

std::string human_size(uint64_t bytes) {
  std::string exact = format_size(bytes);
  if (bytes < 1024 || exact.back() < '0' || exact.back() > '9') return exact;
  static constexpr std::array<char, 4> kUnits = {'K', 'M', 'G', 'T'};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < kUnits.size()) {
    v /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f}{}", v, kUnits[unit]);
}

std::string format_time(uint64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string format_age(uint64_t s) {
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
}

std::string copy_media(const rpc::VvCopies* copies, const std::string& vsn) {
  if (copies == nullptr) return "";
  for (const rpc::VsnMedia& m : copies->vsns) {
    if (m.vsn == vsn) return m.media;
  }
  return "";
}

bool is_extra(const rpc::VvCopies* copies, uint32_t copy) {
  return copies != nullptr &&
         std::find(copies->extra.begin(), copies->extra.end(), copy) != copies->extra.end();
}

std::string describe_copies(const Vv& v) {
  std::string out;
  for (const auto& c : v.copies) {
    if (!c.vsn.empty()) out += fmt::format("{}{} file {}", out.empty() ? "" : ", ", c.vsn, c.file);
  }
  return out.empty() ? "none" : out;
}

void write_vv_json(JsonWriter& j, const Vv& v, const rpc::VvCopies* copies,
                   const std::vector<CopyMark>* marks) {
  j.begin_object();
  j.key("name").value(v.name).key("class").value(v.vv_class).key("serial").value(v.serial);
  j.key("client_id").value(v.client_id).key("owner").value(v.owner).key("group").value(v.group);
  j.key("perms").value(fmt::format("{:04o}", v.perms)).key("size").value(v.size);
  j.key("state").value(vv_state_name(v.state));
  j.key("cache").value(cache_state_name(v.cache));
  j.key("created").value(v.created).key("finished").value(v.finished);
  j.key("accessed").value(v.accessed).key("checksum").value(v.checksum);
  j.key("copies").begin_array();
  for (size_t i = 0; i < v.copies.size(); ++i) {
    if (v.copies[i].vsn.empty()) continue;
    j.begin_object().key("copy").value(uint64_t{i + 1}).key("media");
    j.value(copy_media(copies, v.copies[i].vsn)).key("vsn").value(v.copies[i].vsn);
    j.key("file").value(v.copies[i].file);
    j.key("extra").value(is_extra(copies, static_cast<uint32_t>(i + 1)));
    if (marks != nullptr) j.key("state").value("good");
    j.end_object();
  }
  if (marks != nullptr) {
    for (const CopyMark& m : *marks) {
      if (m.state != CopyMarkState::kBad) continue;
      j.begin_object().key("copy").value(uint64_t{m.copy}).key("media");
      j.value(copy_media(copies, m.vsn)).key("vsn").value(m.vsn);
      j.key("file").value(m.file).key("state").value(copy_mark_state_name(m.state));
      j.key("since").value(m.since).key("by").value(m.by).key("why").value(m.why);
      j.end_object();
    }
  }
  j.end_array();
  j.key("lacking").begin_array();
  if (copies != nullptr) {
    for (const rpc::LackingCopy& l : copies->lacking) {
      j.begin_object().key("media").value(l.media).key("copy").value(uint64_t{l.copy});
      j.end_object();
    }
  }
  j.end_array().end_object();
}

void write_repack_json(JsonWriter& j, const rpc::RepackInfo& r) {
  j.begin_object();
  j.key("vsn").value(r.vsn).key("media").value(r.media).key("state").value(r.state);
  j.key("since").value(r.since).key("by").value(r.by);
  j.key("files_left").value(r.files_left).key("bytes_left").value(r.bytes_left);
  j.key("files_moved").value(r.files_moved).key("bytes_moved").value(r.bytes_moved);
  j.key("files_moving").value(r.files_moving);
  j.end_object();
}

std::string repack_progress(const rpc::RepackInfo& r) {
  const uint64_t files = r.files_moved + r.files_left;
  const uint64_t bytes = r.bytes_moved + r.bytes_left;
  std::string out = fmt::format("repack {} since {} by {}: {} of {} file(s) moved ({} of {})",
                                r.state, format_time(r.since), r.by, r.files_moved, files,
                                human_size(r.bytes_moved), human_size(bytes));
  if (r.files_moving > 0) out += fmt::format(", {} on the way", r.files_moving);
  return out;
}

void write_vsn_json(JsonWriter& j, const Vsn& v, const rpc::VsnDetail& d,
                    const rpc::RepackInfo* repack) {
  j.begin_object();
  j.key("name").value(v.name).key("media").value(v.media).key("class").value(v.vsn_class);
  j.key("state").value(vsn_state_name(v.state)).key("location").value(v.location);
  j.key("next_file").value(v.next_file).key("bytes_used").value(v.bytes_used);
  j.key("capacity").value(v.capacity).key("errors").value(v.errors);
  j.key("last_mount").value(v.last_mount);
  j.key("bad_files").value(d.bad_files).key("errors_in_row").value(d.errors_in_row);
  j.key("live_files").value(d.live_files).key("live_bytes").value(d.live_bytes);
  j.key("dead_files").value(d.dead_files).key("dead_bytes").value(d.dead_bytes);
  j.key("class_since").value(d.class_since).key("class_how").value(d.class_how);
  j.key("state_since").value(d.state_since).key("state_by").value(d.state_by);
  j.key("state_reason").value(d.state_reason);
  if (repack != nullptr) {
    j.key("repack");
    write_repack_json(j, *repack);
  }
  j.end_object();
}

void write_drive_json(JsonWriter& j, const rpc::DriveDetail& d) {
  j.begin_object();
  j.key("name").value(d.name).key("mover").value(d.mover).key("media").value(d.media);
  j.key("state").value(d.up ? "up" : "down").key("since").value(d.since).key("by").value(d.by);
  j.key("reason").value(d.reason).key("errors_in_row").value(d.errors_in_row);
  j.end_object();
}

}  // namespace vvm::vvctl
