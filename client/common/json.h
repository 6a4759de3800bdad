// json.h: a small JSON writer for the --json output of vvm's tools. It writes what it is told in
// order, with commas and string escapes (RFC 8259) done for the caller; it checks no nesting, as
// its callers are a few fixed shapes. Debian's nlohmann-json would do, but a writer is all vvctl
// needs.
//
//   JsonWriter j;
//   j.begin_object().key("name").value("A0000000042").key("size").value(uint64_t{1} << 30);
//   j.end_object();
//   fmt::print("{}\n", j.str());   // {"name":"A0000000042","size":1073741824}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vvm {

class JsonWriter {
 public:
  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view v);
  JsonWriter& value(const char* v) { return value(std::string_view(v)); }
  JsonWriter& value(uint64_t v);
  JsonWriter& value(bool v);
  const std::string& str() const { return out_; }

 private:
  JsonWriter& open(char c);
  JsonWriter& close(char c);
  void separate();  // the comma before a value, unless it follows a key or opens its container

  std::string out_;
  std::vector<bool> has_items_;  // one per open container
  bool after_key_ = false;
};

// `s` as a JSON string, quotes included.
std::string json_quote(std::string_view s);

}  // namespace vvm
