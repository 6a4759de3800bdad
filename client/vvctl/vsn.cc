// vvctl/vsn.cc: `vvctl vsn add` (a tape volume into vvmd's catalogue, and its image for an
// emulated library) and `vvctl vsn ls` (the catalogue, page after page).
#include "vvctl/vsn.h"

#include <array>
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
  if (vm["json"].as<bool>()) {
    JsonWriter j;
    j.begin_array();
    for (const auto& v : vsns) write_vsn_json(j, v);
    j.end_array();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  constexpr size_t kColumns = 9;
  std::vector<std::array<std::string, kColumns>> rows = {
      {"VSN", "MEDIA", "CLASS", "STATE", "LOCATION", "FILES", "USED", "CAPACITY", "ERRORS"}};
  for (const auto& v : vsns) {
    rows.push_back({v.name, v.media, v.vsn_class.empty() ? "any" : v.vsn_class,
                    std::string(vsn_state_name(v.state)), v.location.empty() ? "-" : v.location,
                    std::to_string(v.next_file > 0 ? v.next_file - 1 : 0), human_size(v.bytes_used),
                    human_size(v.capacity), std::to_string(v.errors)});
  }
  print_table(rows);
  return kOk;
}

}  // namespace vvm::vvctl
