// export_name_fuzz.cc: libFuzzer target for the export names an NBD client sends to the plugin.
// nbdkit-vvm-plugin's .open (vvm_plugin.cc, which needs nbdkit to link) splits them as this
// target does: "vv/NAME" goes to vvmd as the name of a VV_OPEN request, anything else is looked up
// in the pack catalogue (PackCatalog::find), whose exports are "pack/NAME" and "pack/NAME@ro".
// The input is the name, as nbdkit hands it over: a C string. It must be served or refused with a
// message that quotes it, never crash:
// - a pack export found is the one of that exact name, read-only exactly when its table says ro
//   or its name ends in "@ro";
// - a VV name reaches vvmd unchanged, or is refused before it is sent because it is too long;
//   vvmd's parse_vv_name takes only the canonical form it prints.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "catalog/vv_names.h"
#include "pack/packtab.h"
#include "pack_catalog.h"
#include "proto/messages.h"
#include "scratch.h"
#include "vv_client.h"

namespace {

using namespace vvm;
using namespace vvm::plugin;

void require(bool ok) {
  if (!ok) std::abort();
}

// The catalogue of conf/packtab's three packs, one of each mode, on a sparse file of its own.
const PackCatalog& catalog() {
  static const PackCatalog c = [] {
    const std::string backing = fuzz::scratch_dir() + "/packs.img";
    fuzz::write_file(backing, "");
    require(::truncate(backing.c_str(), 1 << 30) == 0);
    const std::string text = "scratch " + backing + " 0 256M shared root root 0660\n" + "home " +
                             backing + " 256M 256M exclusive root root 0660\n" + "tools " +
                             backing + " 512M 128M ro root root 0644\n";
    auto table = parse_packtab(text, "packtab", fuzz::scratch_dir());
    require(table.ok());
    auto made = PackCatalog::create(std::move(*table));
    require(made.ok() && made->exports().size() == 6);
    for (const ExportInfo& e : made->exports()) {
      auto found = made->find(e.name);
      require(found.ok() && *found == &e);
    }
    return std::move(*made);
  }();
  return c;
}

void check_vv(std::string_view vv) {
  rpc::Request request;
  request.body = rpc::VvOpenRequest{.name = std::string(vv)};
  auto encoded = rpc::encode_request(request);
  if (vv.size() > rpc::kMaxName) {
    require(!encoded.ok() && encoded.status().code() == Code::kInvalidArgument);
    return;
  }
  require(encoded.ok());
  auto decoded = rpc::decode_request(*encoded);
  require(decoded.ok());
  require(std::get<rpc::VvOpenRequest>(decoded->body).name == vv);
  auto name = vvmd::parse_vv_name(vv);
  if (name.ok()) {
    require(vvmd::format_vv_name(name->vv_class, name->serial) == vv);
  } else {
    require(name.status().message().find(vv) != std::string::npos);
  }
}

void check_pack(std::string_view name) {
  auto found = catalog().find(name);
  if (!found.ok()) {
    require(found.status().code() == Code::kNotFound);
    require(found.status().message().find(name) != std::string::npos);
    return;
  }
  const ExportInfo& e = **found;
  require(e.name == name && name.starts_with(kPackPrefix));
  const bool ro_name = name.ends_with(kReadOnlySuffix);
  require(e.read_only == (ro_name || e.pack.mode == PackMode::kReadOnly));
  const std::string_view pack =
      name.substr(kPackPrefix.size(),
                  name.size() - kPackPrefix.size() - (ro_name ? kReadOnlySuffix.size() : 0));
  require(e.pack.name == pack);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* text = reinterpret_cast<const char*>(data);
  const std::string_view name(text, strnlen(text, size));
  if (name.starts_with(kVvPrefix)) {
    check_vv(name.substr(kVvPrefix.size()));
  } else {
    check_pack(name);
  }
  return 0;
}
