// label_fuzz.cc: libFuzzer target for the tape label decoders. Any bytes must decode or be refused
// with a message, never crash; whatever decodes must encode back to the very same 80 bytes (labels
// are canonical) and decode again to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tape/label.h"

namespace {

using namespace vvm::tape;

void check(std::string_view bytes) {
  if (auto l = FileLabel::decode(bytes); l.ok()) {
    auto again = l->encode();
    if (!again.ok() || *again != bytes) std::abort();
    auto back = FileLabel::decode(*again);
    if (!back.ok() || !(*back == *l)) std::abort();
    if (!check_label(*l, *back).ok()) std::abort();
    FileLabel eof = *l;
    eof.kind = LabelKind::kEof;
    if (!check_eof(*l, eof).ok()) std::abort();
  } else if (l.status().message().empty()) {
    std::abort();  // every refusal explains itself
  }
  if (auto v = VolLabel::decode(bytes); v.ok()) {
    auto again = v->encode();
    if (!again.ok() || *again != bytes) std::abort();
    auto back = VolLabel::decode(*again);
    if (!back.ok() || !(*back == *v)) std::abort();
  } else if (v.status().message().empty()) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string raw(reinterpret_cast<const char*>(data), size);
  check(raw);  // as given: mostly the wrong length
  std::string padded = raw;
  padded.resize(kLabelSize, ' ');
  check(padded);  // cut or padded to a label
  if (size > 0) {
    // The rest of the input written over a valid label from an offset the first byte picks, so
    // that the fuzzer reaches every field's checks without having to find a whole label first.
    static const std::string templates[] = {
        "HDRA42        00000000070000000003000000000010000000"
        "6553F100006553F164VVM1      ",
        "EOF0987654321099999999990000000000FFFFFFFFFFFFFFFF"
        "FFFFFFFFFF0000000000VVM1      ",
        "VOLV00001LTO9    VVM1      " + std::string(53, ' '),
    };
    std::string t = templates[data[0] % 3];
    size_t at = (data[0] / 3) % kLabelSize;
    std::string_view rest = std::string_view(raw).substr(1);
    t.replace(at, std::min(rest.size(), kLabelSize - at), rest.substr(0, kLabelSize - at));
    check(t);
  }
  return 0;
}
