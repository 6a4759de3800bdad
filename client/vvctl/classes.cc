// vvctl/classes.cc: `vvctl reload`, `vvctl class ls` and `vvctl class prune` (vvctl/classes.h).
#include "vvctl/classes.h"

#include <array>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/json.h"
#include "vvctl/printing.h"

namespace vvm::vvctl {

int cmd_reload(const Globals& g, const Args& args) {
  bool json = false;
  if (!parse_json_only("reload", args, &json)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "reload", rpc::ReloadRequest{}, &config, &rc);
  if (!reply) return rc;
  if (json) {
    JsonWriter j;
    j.begin_object().key("path").value(reply->path).key("applied").begin_array();
    for (const auto& l : reply->applied) j.value(l.text);
    j.end_array().key("restart").begin_array();
    for (const auto& l : reply->restart) j.value(l.text);
    j.end_array().end_object();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  fmt::print("vvmd read {} again\n", reply->path);
  if (reply->applied.empty()) fmt::print("applied: nothing changed\n");
  for (const auto& l : reply->applied) fmt::print("applied: {}\n", l.text);
  for (const auto& l : reply->restart) fmt::print("needs a restart: {}\n", l.text);
  return kOk;
}

namespace {
std::string limit(uint32_t n) { return n == 0 ? std::string("-") : std::to_string(n); }
}  // namespace

int cmd_class_ls(const Globals& g, const Args& args) {
  bool json = false;
  if (!parse_json_only("class ls", args, &json)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "class ls", rpc::ClassListRequest{true}, &config, &rc);
  if (!reply) return rc;
  if (json) {
    JsonWriter j;
    j.begin_array();
    for (const auto& c : reply->classes) {
      j.begin_object().key("class").value(c.name).key("description").value(c.description);
      j.key("vvs").value(c.vvs);
      j.key("read_max_drives").value(static_cast<uint64_t>(c.read_max_drives));
      j.key("write_max_drives").value(static_cast<uint64_t>(c.write_max_drives));
      j.key("reading").value(static_cast<uint64_t>(c.reading));
      j.key("writing").value(static_cast<uint64_t>(c.writing));
      j.key("media").begin_array();
      for (const auto& m : c.media) {
        j.begin_object().key("media").value(m.media).key("listed").value(m.listed);
        j.key("copies").value(m.copies).key("bytes").value(m.bytes);
        j.key("lacking").value(m.lacking).key("lacking_bytes").value(m.lacking_bytes);
        j.key("on_way").value(m.on_way).end_object();
      }
      j.end_array().end_object();
    }
    j.end_array();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  constexpr size_t kColumns = 7;
  std::vector<std::array<std::string, kColumns>> rows = {
      {"CLASS", "MEDIA", "VVS", "COPIES", "LACKING", "EXTRA", "DRIVES R/W"}};
  for (const auto& c : reply->classes) {
    std::string media, copies, lacking, extra;
    auto add = [](std::string& to, const std::string& what) {
      to += (to.empty() ? "" : " ") + what;
    };
    for (const auto& m : c.media) {
      if (m.listed) {
        add(media, m.media);
        add(copies, fmt::format("{}:{}", m.media, m.copies));
        if (m.lacking > 0) {
          add(lacking, fmt::format("{}:{}", m.media, m.lacking) +
                           (m.on_way > 0 ? fmt::format(" ({} on the way)", m.on_way) : ""));
        }
      } else {
        add(extra, fmt::format("{}:{}/{}", m.media, m.copies, human_size(m.bytes)));
      }
    }
    rows.push_back({c.name, media, std::to_string(c.vvs), copies, lacking.empty() ? "-" : lacking,
                    extra.empty() ? "-" : extra,
                    fmt::format("{}/{} of {}/{}", c.reading, c.writing, limit(c.read_max_drives),
                                limit(c.write_max_drives))});
  }
  print_table(rows);
  for (const auto& c : reply->classes) {
    for (const auto& m : c.media) {
      if (!m.listed && m.copies > 0) {
        fmt::print("class {}: {} extra cop{} on {} ({}), kept until 'vvctl class prune {}'\n",
                   c.name, m.copies, m.copies == 1 ? "y" : "ies", m.media, human_size(m.bytes),
                   c.name);
      }
    }
  }
  return kOk;
}

int cmd_class_prune(const Globals& g, const Args& args) {
  std::string name;
  po::options_description options;
  if (!parse_with_positional("class prune", args, "class", &name, options)) return kUsage;
  if (name.empty()) return usage_error("class prune", "a class is required");
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "class prune", rpc::ClassPruneRequest{name}, &config, &rc);
  if (!reply) return rc;
  fmt::print("class {}: {} extra cop{} released ({}), their tape files dead", reply->name,
             reply->files, reply->files == 1 ? "y" : "ies", human_size(reply->bytes));
  if (reply->kept > 0) {
    fmt::print("; {} kept: their VVs lack one of the class's copies yet", reply->kept);
  }
  fmt::print("\n");
  return kOk;
}

}  // namespace vvm::vvctl
