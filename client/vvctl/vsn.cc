// vvctl/vsn.cc: `vvctl vsn add` (a tape volume into vvmd's catalogue, and its image for an
// emulated library), `vvctl vsn ls` (the catalogue, page after page, with each VSN's live, dead
// and bad files), `vvctl vsn set` (a VSN's state, by hand), and `vvctl drive down/up/ls`.
#include "vvctl/vsn.h"

#include <array>
#include <map>
#include <string>
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
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    j.begin_array();
    for (const auto& v : vsns) write_vsn_json(j, v, detail(v));
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
