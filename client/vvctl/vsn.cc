// vvctl/vsn.cc: `vvctl vsn add` (a tape volume into vvmd's catalogue, and its image for an
// emulated library), `vvctl vsn ls` (the catalogue, page after page, with each VSN's live, dead
// and bad files, and its repack), `vvctl vsn set` (a VSN's state, by hand), `vvctl vsn repack` and
// `vsn reclaim` (a VSN's live copies moved off it, and the emptied VSN written again), `vvctl vsn
// verify` (a VSN's copies read back and checked), and `vvctl drive down/up/ls`.
#include "vvctl/vsn.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/core.h>

#include "common/json.h"
#include "vvctl/printing.h"

namespace vvm::vvctl {

int cmd_vsn_add(const Globals& g, const Args& args) {
  std::string vsn, media, cls;
  po::options_description options;
  options.add_options()("media", po::value(&media)->required())("class", po::value(&cls));
  if (!parse_with_positional("vsn add", args, "vsn", &vsn, options)) return kUsage;
  if (vsn.empty()) return usage_error("vsn add", "a VSN is required");
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "vsn add", rpc::VsnAddRequest{vsn, media, cls}, &config, &rc);
  if (!reply) return rc;
  const Vsn& v = reply->vsn;
  fmt::print("added VSN {}: media {}, class {}, {}, next file {}, capacity {}", v.name, v.media,
             v.vsn_class.empty() ? "any" : v.vsn_class, vsn_state_name(v.state), v.next_file,
             human_size(v.capacity));
  if (config->library_kind == "emulated") {
    fmt::print("; tape image {}/{}.tap", config->library_path, v.name);
  }
  fmt::print("\n");
  return kOk;
}

int cmd_vsn_ls(const Globals& g, const Args& args) {
  uint32_t page_size = 0;
  po::options_description options;
  options.add_options()("json", po::bool_switch())("page-size", po::value(&page_size));
  po::positional_options_description none;
  po::variables_map vm;
  if (!parse_options("vsn ls", args, options, none, &vm)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "vsn ls", &config, &rc);
  if (!client) return rc;
  rpc::VsnListRequest request{"", page_size};
  std::vector<Vsn> vsns;
  for (;;) {
    auto reply = call_vvmd(*client, *config, "vsn ls", request);
    if (!reply) return kFailed;
    auto& page = *reply;
    for (auto& v : page.vsns) vsns.push_back(std::move(v));
    if (!page.more || vsns.empty()) break;
    request.after = vsns.back().name;
  }
  // What the record does not say: the state's note, the class's age, the files counted.
  std::map<std::string, rpc::VsnDetail> details;
  rpc::VsnDetailsRequest more{"", page_size};
  for (;;) {
    auto reply = call_vvmd(*client, *config, "vsn ls", more);
    if (!reply) return kFailed;
    for (auto& d : reply->details) details[d.name] = std::move(d);
    if (!reply->more || reply->details.empty()) break;
    more.after = details.rbegin()->first;
  }
  auto detail = [&](const Vsn& v) {
    auto it = details.find(v.name);
    return it == details.end() ? rpc::VsnDetail{.name = v.name} : it->second;
  };
  // The repacks, running and done, with how far each has come.
  auto repack_list = call_vvmd(*client, *config, "vsn ls", rpc::RepackListRequest{});
  if (!repack_list) return kFailed;
  std::map<std::string, rpc::RepackInfo> repacks;
  for (auto& r : repack_list->repacks) repacks[r.vsn] = std::move(r);
  auto repack_of = [&](const Vsn& v) -> const rpc::RepackInfo* {
    auto it = repacks.find(v.name);
    return it == repacks.end() ? nullptr : &it->second;
  };
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    j.begin_array();
    for (const auto& v : vsns) write_vsn_json(j, v, detail(v), repack_of(v));
    j.end_array();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  constexpr size_t kColumns = 11;
  std::vector<std::array<std::string, kColumns>> rows = {{"VSN", "MEDIA", "CLASS", "STATE",
                                                          "LOCATION", "FILES", "LIVE", "DEAD",
                                                          "USED", "CAPACITY", "ERRORS"}};
  std::vector<std::string> notes;
  for (const auto& v : vsns) {
    const rpc::VsnDetail d = detail(v);
    rows.push_back({v.name, v.media, v.vsn_class.empty() ? "any" : v.vsn_class,
                    std::string(vsn_state_name(v.state)), v.location.empty() ? "-" : v.location,
                    std::to_string(v.next_file > 0 ? v.next_file - 1 : 0),
                    fmt::format("{}/{}", d.live_files, human_size(d.live_bytes)),
                    fmt::format("{}/{}", d.dead_files, human_size(d.dead_bytes)),
                    human_size(v.bytes_used), human_size(v.capacity),
                    fmt::format("{} bad, {} failed", d.bad_files, v.errors)});
    if (!v.vsn_class.empty() && d.class_since != 0) {
      notes.push_back(fmt::format("{}: class {} since {}{}", v.name, v.vsn_class,
                                  format_time(d.class_since),
                                  d.class_how == "first" ? " (taken at its first archive)" : ""));
    }
    if (d.state_since != 0) {
      notes.push_back(fmt::format("{}: {} since {} by {}: {}", v.name, vsn_state_name(v.state),
                                  format_time(d.state_since), d.state_by, d.state_reason));
    }
    if (const rpc::RepackInfo* r = repack_of(v); r != nullptr && r->state == "running") {
      notes.push_back(fmt::format("{}: {}", v.name, repack_progress(*r)));
    }
  }
  print_table(rows);
  for (const auto& n : notes) fmt::print("{}\n", n);
  return kOk;
}

namespace {
std::string state_words() {
  std::string out;
  for (VsnState s : {VsnState::kHot, VsnState::kFull, VsnState::kReadOnly, VsnState::kDisabled,
                     VsnState::kReclaim, VsnState::kBad, VsnState::kRetired}) {
    out += fmt::format("{}{}", out.empty() ? "" : ", ", vsn_state_name(s));
  }
  return out;
}
}  // namespace

int cmd_vsn_set(const Globals& g, const Args& args) {
  std::vector<std::string> words;
  std::string reason;
  po::options_description options;
  options.add_options()("reason", po::value(&reason))("words", po::value(&words)->multitoken());
  po::positional_options_description positional;
  positional.add("words", -1);
  po::variables_map vm;
  if (!parse_options("vsn set", args, options, positional, &vm)) return kUsage;
  if (words.size() != 2) return usage_error("vsn set", "give a VSN and a state: vsn set VSN STATE");
  auto state = parse_vsn_state(words[1]);
  if (!state || *state == VsnState::kBlank) {
    return usage_error("vsn set", fmt::format("'{}' is not a state a VSN can be set to ({})",
                                              words[1], state_words()));
  }
  if (reason.empty()) return usage_error("vsn set", "say why: --reason TEXT");
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "vsn set", rpc::VsnSetRequest{words[0], *state, reason}, &config, &rc);
  if (!reply) return rc;
  fmt::print("VSN {}: {} since {} by {}: {}\n", reply->vsn.name, vsn_state_name(reply->vsn.state),
             format_time(reply->detail.state_since), reply->detail.state_by,
             reply->detail.state_reason);
  return kOk;
}

int cmd_vsn_repack(const Globals& g, const Args& args) {
  std::string vsn;
  unsigned timeout_s = 0;
  po::options_description options;
  options.add_options()("wait", po::bool_switch())("timeout", po::value(&timeout_s));
  po::variables_map vm;
  if (!parse_with_positional("vsn repack", args, "vsn", &vsn, options, &vm)) return kUsage;
  if (vsn.empty()) return usage_error("vsn repack", "name a VSN: vsn repack VSN");
  const bool wait = vm["wait"].as<bool>();
  if (vm.count("timeout") && !wait) return usage_error("vsn repack", "--timeout goes with --wait");
  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "vsn repack", &config, &rc);
  if (!client) return rc;
  auto started = call_vvmd(*client, *config, "vsn repack", rpc::VsnRepackRequest{vsn});
  if (!started) return kFailed;
  fmt::print(
      "VSN {}: repack started: {} live file(s) ({}) to move to other {} tapes; 'vvctl "
      "status' and 'vvctl vsn ls' show how far\n",
      started->vsn, started->files_left, human_size(started->bytes_left), started->media);
  if (!wait) return kOk;
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    auto list = call_vvmd(*client, *config, "vsn repack", rpc::RepackListRequest{});
    if (!list) return kFailed;
    const rpc::RepackInfo* now = nullptr;
    for (const auto& r : list->repacks) {
      if (r.vsn == vsn) now = &r;
    }
    if (now == nullptr) {
      fmt::print(stderr, "vvctl vsn repack: vvmd no longer lists the repack of {}\n", vsn);
      return kFailed;
    }
    if (now->state != "running") {
      fmt::print("VSN {}: {}; it is reclaim now ('vvctl vsn reclaim {}' writes it again)\n", vsn,
                 repack_progress(*now), vsn);
      return kOk;
    }
    if (vm.count("timeout") &&
        std::chrono::steady_clock::now() - start >= std::chrono::seconds(timeout_s)) {
      fmt::print(stderr, "vvctl vsn repack: not done after {} s: {}\n", timeout_s,
                 repack_progress(*now));
      return kFailed;
    }
    // Often enough that a benchmark timing the wait measures the repack, not the polling.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int cmd_vsn_reclaim(const Globals& g, const Args& args) {
  std::string vsn;
  if (!parse_with_positional("vsn reclaim", args, "vsn", &vsn)) return kUsage;
  if (vsn.empty()) return usage_error("vsn reclaim", "name a VSN: vsn reclaim VSN");
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "vsn reclaim", rpc::VsnReclaimRequest{vsn}, &config, &rc);
  if (!reply) return rc;
  fmt::print("VSN {}: reclaimed: {} from file {}; {} dead file(s) ({}) forgotten\n",
             reply->vsn.name, vsn_state_name(reply->vsn.state), reply->vsn.next_file,
             reply->dead_files, human_size(reply->dead_bytes));
  return kOk;
}

int cmd_vsn_verify(const Globals& g, const Args& args) {
  std::string vsn;
  unsigned timeout_s = 0;
  po::options_description options;
  options.add_options()("wait", po::bool_switch())("timeout", po::value(&timeout_s))(
      "json", po::bool_switch())("list", po::bool_switch());
  po::variables_map vm;
  if (!parse_with_positional("vsn verify", args, "vsn", &vsn, options, &vm)) return kUsage;
  if (vsn.empty()) return usage_error("vsn verify", "name a VSN: vsn verify VSN");
  const bool wait = vm["wait"].as<bool>();
  const bool list = vm["list"].as<bool>();
  if (vm.count("timeout") && !wait) return usage_error("vsn verify", "--timeout goes with --wait");
  if (list && wait) return usage_error("vsn verify", "--list reads nothing back: no --wait");
  std::optional<Config> config;
  int rc = kOk;
  auto client = connect_vvmd(g, "vsn verify", &config, &rc);
  if (!client) return rc;
  // What is recorded before this verify: the marks it leaves are the ones newer than these.
  auto before = call_vvmd(*client, *config, "vsn verify", rpc::VerifyListRequest{vsn});
  if (!before) return kFailed;
  auto print_marks = [&](const std::vector<VerifyMark>& marks) {
    if (vm["json"].as<bool>()) {
      JsonWriter j;
      j.begin_array();
      for (const auto& m : marks) {
        j.begin_object();
        j.key("vsn").value(m.vsn).key("file").value(m.file).key("vv").value(m.vv);
        j.key("copy").value(uint64_t{m.copy}).key("when").value(m.when).key("how").value(m.how);
        j.key("good").value(m.good).key("why").value(m.why);
        j.end_object();
      }
      j.end_array();
      fmt::print("{}\n", j.str());
      return;
    }
    for (const auto& m : marks) {
      fmt::print("{} file {}: VV {} copy {}: {} by {} at {}{}\n", m.vsn, m.file, m.vv, m.copy,
                 m.good ? "good" : "BAD", m.how, format_time(m.when), m.good ? "" : ": " + m.why);
    }
  };
  if (list) {
    print_marks(before->marks);
    if (!vm["json"].as<bool>() && before->queued > 0) {
      fmt::print("VSN {}: {} read(s) still to do\n", vsn, before->queued);
    }
    return kOk;
  }
  auto queued = call_vvmd(*client, *config, "vsn verify", rpc::VsnVerifyRequest{vsn});
  if (!queued) return kFailed;
  if (!vm["json"].as<bool>()) {
    fmt::print("VSN {}: {} cop{} ({}) queued to be read back\n", queued->vsn, queued->files,
               queued->files == 1 ? "y" : "ies", human_size(queued->bytes));
  }
  if (!wait) return kOk;
  std::fflush(stdout);
  std::map<uint64_t, VerifyMark> old;
  for (const auto& m : before->marks) old[m.file] = m;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    auto now = call_vvmd(*client, *config, "vsn verify", rpc::VerifyListRequest{vsn});
    if (!now) return kFailed;
    if (now->queued == 0) {
      std::vector<VerifyMark> fresh;
      for (const auto& m : now->marks) {
        // A read within the second of the last one leaves an equal mark: the time says it is new.
        auto it = old.find(m.file);
        if (m.when >= queued->since || it == old.end() || !(it->second == m)) fresh.push_back(m);
      }
      size_t bad = 0;
      for (const auto& m : fresh) bad += !m.good;
      print_marks(fresh);
      if (!vm["json"].as<bool>()) {
        fmt::print("VSN {}: {} cop{} read back: {} good, {} bad{}\n", vsn, fresh.size(),
                   fresh.size() == 1 ? "y" : "ies", fresh.size() - bad, bad,
                   bad ? " (marked bad, made again from a good copy)" : "");
      }
      return bad ? kFailed : kOk;
    }
    if (vm.count("timeout") &&
        std::chrono::steady_clock::now() - start >= std::chrono::seconds(timeout_s)) {
      fmt::print(stderr, "vvctl vsn verify: {} read(s) of {} still to do after {} s\n", now->queued,
                 vsn, timeout_s);
      return kFailed;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

namespace {
void print_drive(const rpc::DriveDetail& d) {
  if (d.up) {
    fmt::print("drive {} (mover {}, {}): up{}\n", d.name, d.mover, d.media,
               d.since ? fmt::format(" since {} by {}", format_time(d.since), d.by) : "");
  } else {
    fmt::print("drive {} (mover {}, {}): down since {} by {}: {}\n", d.name, d.mover, d.media,
               format_time(d.since), d.by, d.reason);
  }
}

int set_drive(const Globals& g, const Args& args, bool up) {
  const char* command = up ? "drive up" : "drive down";
  std::string name, reason;
  po::options_description options;
  options.add_options()("reason", po::value(&reason));
  po::variables_map vm;
  if (!parse_with_positional(command, args, "drive", &name, options, &vm)) return kUsage;
  if (name.empty()) return usage_error(command, "name a drive (vvm.conf's [drive NAME])");
  if (!up && reason.empty()) return usage_error(command, "say why: --reason TEXT");
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, command, rpc::DriveSetRequest{name, up, reason}, &config, &rc);
  if (!reply) return rc;
  print_drive(*reply);
  return kOk;
}
}  // namespace

int cmd_drive_down(const Globals& g, const Args& args) { return set_drive(g, args, false); }
int cmd_drive_up(const Globals& g, const Args& args) { return set_drive(g, args, true); }

int cmd_drive_ls(const Globals& g, const Args& args) {
  bool json = false;
  if (!parse_json_only("drive ls", args, &json)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "drive ls", rpc::DriveListRequest{}, &config, &rc);
  if (!reply) return rc;
  if (json) {
    JsonWriter j;
    j.begin_array();
    for (const auto& d : reply->drives) write_drive_json(j, d);
    j.end_array();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  for (const auto& d : reply->drives) print_drive(d);
  return kOk;
}

}  // namespace vvm::vvctl
