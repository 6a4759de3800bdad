// tape_label_test.cc: HDR, EOF and VOL labels: golden bytes written out by hand, the largest
// values each field holds, every refusal of encode and decode with the field and the text found,
// round trips, and the field-by-field checks the mover makes on read.
#include <catch2/catch.hpp>
#include <random>

#include "process.h"
#include "tape/label.h"

using namespace vvm;
using namespace vvm::tape;
using vvm::test::must;

namespace {

// One field a string, in DESIGN.md's order, so that a reader can check each against the table.
const std::string kGoldenHdr = std::string("HDR")    // label
                               + "A"                 // vv class
                               + "42        "        // vv serial: left-justified, spaces
                               + "0000000007"        // id: zero-padded decimal
                               + "0000000003"        // file number
                               + "0000000000100000"  // size: 1 MiB in hex
                               + "006553F100"        // time finished: 1700000000
                               + "006553F164"        // time written: 1700000100
                               + "VVM1      ";       // version

const std::string kGoldenVol = std::string("VOL")  // label
                               + "V00001"          // vsn
                               + "LTO9    "        // media type
                               + "VVM1      "      // version
                               + "                                                     ";  // 53

FileLabel golden_label() {
  FileLabel l;
  l.kind = LabelKind::kHdr;
  l.vv_class = 'A';
  l.vv_serial = 42;
  l.id = 7;
  l.file_number = 3;
  l.size = 1 << 20;
  l.time_finished = 1700000000;
  l.time_written = 1700000100;
  return l;
}

// `golden` with `text` written over it at `offset`.
std::string patched(std::string golden, size_t offset, std::string_view text) {
  golden.replace(offset, text.size(), text);
  return golden;
}

std::string decode_error(std::string_view bytes) {
  auto r = FileLabel::decode(bytes);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

std::string vol_error(std::string_view bytes) {
  auto r = VolLabel::decode(bytes);
  REQUIRE_FALSE(r.ok());
  return r.status().message();
}

}  // namespace

TEST_CASE("HDR and EOF labels are the 80 bytes DESIGN.md lays out") {
  REQUIRE(kGoldenHdr.size() == kLabelSize);
  FileLabel l = golden_label();
  CHECK(must(l.encode()) == kGoldenHdr);
  CHECK(must(FileLabel::decode(kGoldenHdr)) == l);

  l.kind = LabelKind::kEof;
  std::string eof = "EOF" + kGoldenHdr.substr(3);
  CHECK(must(l.encode()) == eof);
  CHECK(must(FileLabel::decode(eof)) == l);
}

TEST_CASE("the largest and smallest values each field holds") {
  FileLabel big;
  big.vv_class = 'Z';
  big.vv_serial = 9999999999;
  big.id = 9999999999;
  big.file_number = 9999999999;
  big.size = UINT64_MAX;
  big.time_finished = (uint64_t{1} << 40) - 1;
  big.time_written = (uint64_t{1} << 40) - 1;
  const std::string big_text = std::string("HDR") + "Z" + "9999999999" + "9999999999" +
                               "9999999999" + "FFFFFFFFFFFFFFFF" + "FFFFFFFFFF" + "FFFFFFFFFF" +
                               "VVM1      ";
  CHECK(must(big.encode()) == big_text);
  CHECK(must(FileLabel::decode(big_text)) == big);

  FileLabel zero;
  zero.vv_class = '0';
  const std::string zero_text = std::string("HDR") + "0" + "0         " + "0000000000" +
                                "0000000000" + "0000000000000000" + "0000000000" + "0000000000" +
                                "VVM1      ";
  CHECK(must(zero.encode()) == zero_text);
  CHECK(must(FileLabel::decode(zero_text)) == zero);
}

TEST_CASE("encode refuses values that do not fit, naming the field") {
  auto error = [](const FileLabel& l) {
    auto r = l.encode();
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    return r.status().message();
  };
  FileLabel l = golden_label();
  l.id = 10'000'000'000;
  CHECK_THAT(error(l), Catch::Equals("HDR label: field id: 10000000000 has more than 10 decimal "
                                     "digits"));
  l = golden_label();
  l.vv_serial = 12345678901;
  CHECK_THAT(error(l), Catch::Contains("field vv serial: 12345678901 has more than 10"));
  l = golden_label();
  l.file_number = 10'000'000'000;
  CHECK_THAT(error(l), Catch::Contains("field file number: 10000000000"));
  l = golden_label();
  l.kind = LabelKind::kEof;
  l.time_finished = uint64_t{1} << 40;
  CHECK_THAT(error(l), Catch::Equals("EOF label: field time finished: 1099511627776 "
                                     "(0x10000000000) does not fit 40 bits"));
  l = golden_label();
  l.time_written = UINT64_MAX;
  CHECK_THAT(error(l), Catch::Contains("field time written: 18446744073709551615"));
  l = golden_label();
  l.vv_class = 'a';
  CHECK_THAT(error(l), Catch::Contains("field vv class: 'a' is lowercase"));
  l.vv_class = '-';
  CHECK_THAT(error(l), Catch::Contains("field vv class: '-' is not a letter or digit"));
  l.vv_class = '\0';
  CHECK_THAT(error(l), Catch::Contains("field vv class: '\\x00' is not a letter or digit"));
}

TEST_CASE("decode refuses a label of the wrong length") {
  CHECK_THAT(decode_error(kGoldenHdr.substr(0, 79)),
             Catch::Equals("tape label: 79 bytes where a label has 80"));
  CHECK_THAT(decode_error(kGoldenHdr + " "), Catch::Contains("81 bytes where a label has 80"));
  CHECK_THAT(decode_error(""), Catch::Contains("0 bytes"));
  // A serial of 11 digits shifts every later field: the label no longer has 80 bytes.
  std::string long_serial = "HDRA12345678901" + kGoldenHdr.substr(14);
  CHECK_THAT(decode_error(long_serial), Catch::Contains("81 bytes"));
}

TEST_CASE("decode refuses an unknown label kind and lowercase anywhere") {
  CHECK_THAT(decode_error(patched(kGoldenHdr, 0, "XYZ")),
             Catch::Equals("tape label: field label: 'XYZ' is not a label kind this mover knows "
                           "(HDR or EOF)"));
  CHECK_THAT(decode_error(kGoldenVol), Catch::Contains("field label: 'VOL' is not a label kind"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 0, "hdr")),
             Catch::Equals("tape label: field label: 'hdr' is lowercase (labels are all "
                           "uppercase)"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 3, "a")),
             Catch::Equals("HDR label: field vv class: 'a' is lowercase (labels are all "
                           "uppercase)"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 34, "00000000001000a0")),
             Catch::Contains("field size: '00000000001000a0' is lowercase"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 50, "006553f100")),
             Catch::Contains("field time finished: '006553f100' is lowercase"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 70, "vvm1")),
             Catch::Contains("field version: 'vvm1      ' is lowercase"));
}

TEST_CASE("decode refuses bad digits, bad padding and bytes that are not ASCII") {
  CHECK_THAT(decode_error(patched(kGoldenHdr, 14, "00000000X7")),
             Catch::Equals("HDR label: field id: '00000000X7' is not a decimal number"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 24, "000000000A")),
             Catch::Contains("field file number: '000000000A' is not a decimal number"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 24, "        03")),
             Catch::Contains("field file number: '        03' is padded with spaces"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 34, "000000000010000G")),
             Catch::Contains("field size: '000000000010000G' is not a hex number"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 60, "6553F164  ")),
             Catch::Contains("field time written: '6553F164  ' is padded with spaces"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 3, "-")),
             Catch::Contains("field vv class: '-' is not a letter or digit"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 15, std::string("\x01", 1))),
             Catch::Equals("HDR label: field id: '0\\x0100000007' holds a byte that is not "
                           "printable ASCII"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 30, "\xff")),
             Catch::Contains("field file number: '000000\\xFF003' holds a byte"));
  // The serial: decimal, left-justified, padded with spaces, one way to write each number.
  CHECK_THAT(decode_error(patched(kGoldenHdr, 4, "  42      ")),
             Catch::Equals("HDR label: field vv serial: '  42      ' is not left-justified"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 4, "42   7    ")),
             Catch::Contains("field vv serial: '42   7    ' has text after its padding"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 4, "4X2       ")),
             Catch::Contains("field vv serial: '4X2       ' is not a decimal number"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 4, "X42       ")),
             Catch::Contains("field vv serial: 'X42       ' is not a decimal number"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 4, "0042      ")),
             Catch::Contains("field vv serial: '0042      ' has a leading zero"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 4, "          ")),
             Catch::Contains("field vv serial: '          ' is blank"));
  // The version.
  CHECK_THAT(decode_error(patched(kGoldenHdr, 70, " VVM1     ")),
             Catch::Contains("field version: ' VVM1     ' is not left-justified"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 70, "VVM1    X ")),
             Catch::Contains("field version: 'VVM1    X ' has text after its padding"));
  CHECK_THAT(decode_error(patched(kGoldenHdr, 70, "VVM1.     ")),
             Catch::Contains("field version: 'VVM1.     ' holds a character that is not"));
  auto v2 = FileLabel::decode(patched(kGoldenHdr, 70, "VVM2"));
  CHECK(v2.status().code() == Code::kVersionMismatch);
  CHECK_THAT(v2.status().message(),
             Catch::Equals("HDR label: field version: unknown label version 'VVM2' (this mover "
                           "reads VVM1)"));
}

TEST_CASE("labels round-trip, and equal labels are equal bytes") {
  std::mt19937_64 rng(5);
  const std::string classes = "ABCZ0159";
  for (int i = 0; i < 2000; ++i) {
    FileLabel l;
    l.kind = rng() % 2 ? LabelKind::kHdr : LabelKind::kEof;
    l.vv_class = classes[rng() % classes.size()];
    l.vv_serial = rng() % 10'000'000'000 >> (rng() % 34);
    l.id = rng() % 10'000'000'000;
    l.file_number = rng() % 10'000'000'000 >> (rng() % 34);
    l.size = rng() >> (rng() % 64);
    l.time_finished = rng() % (uint64_t{1} << 40);
    l.time_written = rng() % (uint64_t{1} << 40);
    std::string bytes = must(l.encode());
    REQUIRE(bytes.size() == kLabelSize);
    REQUIRE(must(FileLabel::decode(bytes)) == l);
    REQUIRE(must(must(FileLabel::decode(bytes)).encode()) == bytes);
  }
}

TEST_CASE("VOL labels: golden bytes, round trips and refusals") {
  REQUIRE(kGoldenVol.size() == kLabelSize);
  VolLabel v{"V00001", "LTO9"};
  CHECK(must(v.encode()) == kGoldenVol);
  CHECK(must(VolLabel::decode(kGoldenVol)) == v);
  VolLabel full{"ABCDEF", "LTO9TEST"};
  CHECK(must(full.encode()).substr(0, 27) == "VOLABCDEFLTO9TESTVVM1      ");
  CHECK(must(VolLabel::decode(must(full.encode()))) == full);

  auto enc_error = [](const VolLabel& l) { return l.encode().status().message(); };
  CHECK_THAT(enc_error({"v00001", "LTO9"}),
             Catch::Equals("VOL label: field vsn: 'v00001' is lowercase"));
  CHECK_THAT(enc_error({"V000001", "LTO9"}),
             Catch::Contains("field vsn: 'V000001' is longer than 6 characters"));
  CHECK_THAT(enc_error({"", "LTO9"}), Catch::Contains("field vsn: '' is empty"));
  CHECK_THAT(enc_error({"V 1", "LTO9"}), Catch::Contains("field vsn: 'V 1' holds a character"));
  CHECK_THAT(enc_error({"V00001", "LTO9-HALF"}),
             Catch::Contains("field media type: 'LTO9-HALF' is longer than 8"));
  CHECK_THAT(enc_error({"V00001", "lto9"}), Catch::Contains("field media type: 'lto9' is lower"));

  CHECK_THAT(vol_error(kGoldenVol.substr(1)), Catch::Contains("79 bytes where a label has 80"));
  CHECK_THAT(vol_error(kGoldenHdr),
             Catch::Equals("VOL label: field label: 'HDR' is not a volume label (VOL)"));
  CHECK_THAT(vol_error(patched(kGoldenVol, 3, "v")),
             Catch::Equals("VOL label: field vsn: 'v00001' is lowercase (labels are all "
                           "uppercase)"));
  CHECK_THAT(vol_error(patched(kGoldenVol, 3, " V0001")),
             Catch::Contains("field vsn: ' V0001' is not left-justified"));
  CHECK_THAT(vol_error(patched(kGoldenVol, 9, "LTO9   X")),
             Catch::Contains("field media type: 'LTO9   X' has text after its padding"));
  CHECK_THAT(vol_error(patched(kGoldenVol, 9, "        ")),
             Catch::Contains("field media type: '        ' is blank"));
  CHECK_THAT(vol_error(patched(kGoldenVol, 17, "VVM9")), Catch::Contains("unknown label version"));
  CHECK(VolLabel::decode(patched(kGoldenVol, 17, "VVM9")).status().code() ==
        Code::kVersionMismatch);
  CHECK_THAT(vol_error(patched(kGoldenVol, 60, "X")),
             Catch::Contains("field reserved: '" + std::string(33, ' ') + "X"));
  CHECK_THAT(vol_error(patched(kGoldenVol, 79, "x")), Catch::Contains("field reserved: '"));
  CHECK_THAT(vol_error(patched(kGoldenVol, 79, "x")), Catch::Contains("is lowercase"));
}

TEST_CASE("check_label names every field that differs, as the label holds it") {
  FileLabel want = golden_label();
  CHECK(check_label(want, want).ok());
  FileLabel found = want;
  found.id = 8;
  found.size = 0xFFF;
  Status s = check_label(want, found);
  CHECK(s.code() == Code::kIoError);
  CHECK_THAT(s.message(), Catch::Equals("field id: expected 0000000007, found 0000000008; "
                                        "field size: expected 0000000000100000, found "
                                        "0000000000000FFF"));
  found = want;
  found.kind = LabelKind::kEof;
  found.vv_class = 'B';
  found.vv_serial = 43;
  found.file_number = 4;
  found.time_finished = 1;
  found.time_written = 2;
  s = check_label(want, found);
  for (const char* part :
       {"field label: expected HDR, found EOF", "field vv class: expected A, found B",
        "field vv serial: expected 42, found 43",
        "field file number: expected 0000000003, found 0000000004",
        "field time finished: expected 006553F100, found 0000000001",
        "field time written: expected 006553F164, found 0000000002"}) {
    CHECK_THAT(s.message(), Catch::Contains(part));
  }
  // Fields left out are not compared: the database need not know when a copy was written.
  found = want;
  found.time_written = 5;
  CHECK_FALSE(check_label(want, found).ok());
  CHECK(check_label(want, found, kAllFields & ~kFieldTimeWritten).ok());
}

TEST_CASE("check_eof: the EOF label repeats its HDR") {
  FileLabel hdr = golden_label();
  FileLabel eof = hdr;
  eof.kind = LabelKind::kEof;
  CHECK(check_eof(hdr, eof).ok());
  CHECK_THAT(check_eof(hdr, hdr).message(), Catch::Equals("field label: expected EOF, found HDR"));
  eof.size = 5;
  CHECK_THAT(check_eof(hdr, eof).message(),
             Catch::Equals("field size: expected 0000000000100000, found 0000000000000005"));
}
