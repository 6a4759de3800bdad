// vvctl/db.cc: `vvctl db stats`, `vvctl db check` and `vvctl db backup DIR`; see db.h.
#include "vvctl/db.h"

#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "common/json.h"
#include "vvctl/printing.h"

namespace vvm::vvctl {

namespace {

void stats_json(JsonWriter& j, const rpc::DbStatsReply& st) {
  j.key("dir").value(st.dir);
  j.key("journal_bytes").value(st.journal_bytes).key("checkpoint_bytes").value(st.checkpoint_bytes);
  j.key("tables").begin_array();
  for (const auto& t : st.tables) {
    j.begin_object();
    j.key("name").value(t.name).key("file").value(t.file).key("records").value(t.records);
    j.key("slots").value(t.slots).key("free_slots").value(t.free_slots);
    j.key("record_size").value(t.record_size);
    j.end_object();
  }
  j.end_array();
}

void stats_table(const rpc::DbStatsReply& st) {
  fmt::print("database {}: journal {} used (emptied past {})\n", st.dir,
             human_size(st.journal_bytes), human_size(st.checkpoint_bytes));
  std::vector<std::array<std::string, 5>> rows = {{"TABLE", "RECORDS", "SLOTS", "FREE", "FILE"}};
  for (const auto& t : st.tables) {
    rows.push_back({t.name, std::to_string(t.records), std::to_string(t.slots),
                    std::to_string(t.free_slots), t.file});
  }
  print_table(rows);
}

}  // namespace

int cmd_db_stats(const Globals& g, const Args& args) {
  bool json = false;
  if (!parse_json_only("db stats", args, &json)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "db stats", rpc::DbStatsRequest{}, &config, &rc);
  if (!reply) return rc;
  if (json) {
    JsonWriter j;
    j.begin_object();
    stats_json(j, *reply);
    j.end_object();
    fmt::print("{}\n", j.str());
    return kOk;
  }
  stats_table(*reply);
  return kOk;
}

int cmd_db_check(const Globals& g, const Args& args) {
  bool json = false;
  if (!parse_json_only("db check", args, &json)) return kUsage;
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "db check", rpc::DbCheckRequest{}, &config, &rc);
  if (!reply) return rc;
  const bool sound = reply->problems.empty();
  if (json) {
    JsonWriter j;
    j.begin_object();
    stats_json(j, reply->stats);
    j.key("sound").value(sound).key("problems").begin_array();
    for (const auto& p : reply->problems) j.value(p.what);
    j.end_array();
    j.end_object();
    fmt::print("{}\n", j.str());
    return sound ? kOk : kFailed;
  }
  uint64_t records = 0;
  for (const auto& t : reply->stats.tables) records += t.records;
  if (sound) {
    fmt::print("database {}: sound ({} records in {} tables, every index and copy checked)\n",
               reply->stats.dir, records, reply->stats.tables.size());
    return kOk;
  }
  for (const auto& p : reply->problems) fmt::print("vvctl db check: {}\n", p.what);
  fmt::print("database {}: {} problem(s) found\n", reply->stats.dir, reply->problems.size());
  return kFailed;
}

int cmd_db_backup(const Globals& g, const Args& args) {
  std::string dir;
  po::options_description options;
  options.add_options()("dir", po::value(&dir));
  po::positional_options_description positional;
  positional.add("dir", 1);
  po::variables_map vm;
  if (!parse_options("db backup", args, options, positional, &vm)) return kUsage;
  if (dir.empty()) {
    fmt::print(stderr, "vvctl db backup: give the folder to copy the database into\n");
    return kUsage;
  }
  // vvmd writes the copy: it gets the folder as this command means it.
  std::error_code ec;
  const std::string absolute = std::filesystem::absolute(dir, ec).lexically_normal().string();
  std::optional<Config> config;
  int rc = kOk;
  auto reply = ask_vvmd(g, "db backup", rpc::DbBackupRequest{absolute}, &config, &rc);
  if (!reply) return rc;
  fmt::print("database copied to {}: {} files, {}\n", reply->dir, reply->files,
             human_size(reply->bytes));
  return kOk;
}

}  // namespace vvm::vvctl
