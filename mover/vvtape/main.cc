// vvtape/main.cc: the administrator's tape tool. Labels tapes, lists and verifies what is on them,
// copies a file's data out, and (for tests and admins) archives a file without the daemons. It
// uses the mover's own code (tape/library, copy/copy), so what it reads and writes is exactly what
// vvmover does. Each command is one entry in kCommands, as in vvctl.
//
//   vvtape label TAPE --vsn VSN --media MEDIA [--capacity SIZE] [--force]
//   vvtape ls TAPE [--json]
//   vvtape verify TAPE [--checksum FILE=HEX]...
//   vvtape cat TAPE FILE [--sync]
//   vvtape write TAPE --vsn VSN --file N --class C --serial S --id I [--finished T]
//                [--block-size SIZE] PATH
//
// TAPE is an emulated tape image (a .tap file; its capacity in TAPE.capacity) or a drive,
// /dev/nstN. Exit codes: 0 success, 1 the operation failed or verify found a problem, 2 a usage
// error, 3 write: the tape is full (the VV must go to another VSN).
#include <sys/stat.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/core.h>

#include "common/cli.h"
#include "common/size.h"
#include "copy/copy.h"
#include "tape/emulated_tape.h"
#include "tape/label.h"
#include "tape/library.h"

namespace vvm::tape {
namespace {

namespace po = boost::program_options;
using cli::Args;
using cli::wants_help;

int usage_error(std::string_view command, std::string_view message) {
  return cli::usage_error("vvtape", command, message);
}

bool parse_options(std::string_view command, const Args& args,
                   const po::options_description& options,
                   const po::positional_options_description& positional, po::variables_map* vm) {
  return cli::parse_options("vvtape", command, args, options, positional, vm);
}

using cli::kFailed, cli::kOk, cli::kUsage;
constexpr int kFull = 3;  // write: the tape is full

struct Command {
  std::string_view name;
  std::string_view summary;
  std::string_view usage;
  std::function<int(const Args&)> run;
};

const std::vector<Command>& commands();

int failed(std::string_view command, const Status& s) {
  fmt::print(stderr, "vvtape {}: {}\n", command, s.message());
  return kFailed;
}

std::string utc(uint64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  struct tm tm;
  char buf[32];
  if (!::gmtime_r(&tt, &tm) || std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    return fmt::format("@{}", t);
  }
  return buf;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_label(const std::optional<FileLabel>& l) {
  if (!l) return "null";
  return fmt::format(
      "{{\"class\": \"{}\", \"serial\": {}, \"id\": {}, \"file_number\": {}, \"size\": {}, "
      "\"time_finished\": {}, \"time_written\": {}}}",
      l->vv_class, l->vv_serial, l->id, l->file_number, l->size, l->time_finished, l->time_written);
}

// What ls and verify say about a file as a whole.
std::string file_state(const FileSummary& f) {
  if (!f.problems.empty()) return "BAD";
  if (f.empty) return "end";        // the empty file that ends a tape that ran out of space
  if (f.partial) return "partial";  // an interrupted archive, overwritten by the next one
  return "ok";
}

Result<std::unique_ptr<TapeDevice>> open_for(const std::string& path, bool write) {
  return open_tape(path, /*write_protect=*/!write);
}

// --- label ---

int cmd_label(const Args& args) {
  std::string tape_path, vsn, media, capacity_text;
  bool force = false;
  po::options_description options;
  options.add_options()("tape", po::value(&tape_path))("vsn", po::value(&vsn))(
      "media", po::value(&media))("capacity", po::value(&capacity_text))("force",
                                                                         po::bool_switch(&force));
  po::positional_options_description positional;
  positional.add("tape", 1);
  po::variables_map vm;
  if (!parse_options("label", args, options, positional, &vm)) return kUsage;
  if (tape_path.empty()) return usage_error("label", "which TAPE?");
  if (vsn.empty() || media.empty()) return usage_error("label", "--vsn and --media are required");
  VolLabel label{vsn, media};
  if (auto bytes = label.encode(); !bytes.ok())
    return usage_error("label", bytes.status().message());
  const bool device = tape_path.starts_with("/dev/");
  uint64_t capacity = 0;
  if (!capacity_text.empty()) {
    if (device) return usage_error("label", "--capacity is for tape images, not drives");
    auto c = parse_size(capacity_text);
    if (!c.ok()) return usage_error("label", "--capacity " + c.status().message());
    capacity = *c;
  }
  if (!device && ::access(tape_path.c_str(), F_OK) != 0) {
    if (Status s = EmulatedTape::create_image(tape_path); !s.ok()) return failed("label", s);
  }
  if (!capacity_text.empty()) {
    if (Status s = write_capacity(tape_path, capacity); !s.ok()) return failed("label", s);
  }
  auto tape = open_for(tape_path, true);
  if (!tape.ok()) return failed("label", tape.status());
  if (!force) {
    // A tape with files on it is somebody's data: relabelling would cut them all off.
    if (auto old = read_volume_label(**tape); old.ok()) {
      auto files = list_files(**tape);
      if (!files.ok()) return failed("label", files.status());
      size_t held = 0;
      for (const auto& f : *files) held += f.empty ? 0 : 1;
      if (held > 0) {
        return failed("label",
                      Status::AlreadyExists(fmt::format(
                          "{} is VSN {} and holds {} file(s); --force relabels it, and they are "
                          "lost",
                          tape_path, old->vsn, held)));
      }
    }
  }
  if (Status s = write_volume_label(**tape, label); !s.ok()) return failed("label", s);
  fmt::print("{}: labelled VSN {}, media {}{}\n", tape_path, vsn, media,
             capacity ? fmt::format(", capacity {}", format_size(capacity)) : "");
  return kOk;
}

// --- ls ---

int cmd_ls(const Args& args) {
  std::string tape_path;
  bool json = false;
  po::options_description options;
  options.add_options()("tape", po::value(&tape_path))("json", po::bool_switch(&json));
  po::positional_options_description positional;
  positional.add("tape", 1);
  po::variables_map vm;
  if (!parse_options("ls", args, options, positional, &vm)) return kUsage;
  if (tape_path.empty()) return usage_error("ls", "which TAPE?");
  auto tape = open_for(tape_path, false);
  if (!tape.ok()) return failed("ls", tape.status());
  auto vol = read_volume_label(**tape);
  if (!vol.ok()) return failed("ls", vol.status());
  auto files = list_files(**tape);
  if (!files.ok()) return failed("ls", files.status());
  bool bad = false;
  for (const auto& f : *files) bad |= !f.problems.empty();

  if (json) {
    fmt::print("{{\"tape\": {}, \"vsn\": {}, \"media\": {}, \"files\": [", json_string(tape_path),
               json_string(vol->vsn), json_string(vol->media_type));
    for (size_t i = 0; i < files->size(); ++i) {
      const auto& f = (*files)[i];
      std::string problems;
      for (size_t j = 0; j < f.problems.size(); ++j) {
        problems += (j ? ", " : "") + json_string(f.problems[j]);
      }
      fmt::print(
          "{}\n  {{\"file\": {}, \"state\": \"{}\", \"hdr\": {}, \"eof\": {}, "
          "\"problems\": [{}]}}",
          i ? "," : "", f.number, file_state(f), json_label(f.hdr), json_label(f.eof), problems);
    }
    fmt::print("{}]}}\n", files->empty() ? "" : "\n");
    return bad ? kFailed : kOk;
  }

  fmt::print("{}: VSN {}, media {}, {} file(s)\n", tape_path, vol->vsn, vol->media_type,
             files->size());
  std::vector<std::vector<std::string>> rows = {
      {"FILE", "CLASS", "SERIAL", "ID", "SIZE", "FINISHED", "WRITTEN", "EOF", "STATE"}};
  for (const auto& f : *files) {
    std::vector<std::string> row = {std::to_string(f.number)};
    if (f.hdr) {
      row.insert(row.end(), {std::string(1, f.hdr->vv_class), std::to_string(f.hdr->vv_serial),
                             std::to_string(f.hdr->id), std::to_string(f.hdr->size),
                             utc(f.hdr->time_finished), utc(f.hdr->time_written)});
    } else {
      row.insert(row.end(), 6, "-");
    }
    std::string eof = "-";
    if (f.eof) {
      eof = "ok";
      for (const auto& p : f.problems) {
        if (p.starts_with("EOF")) eof = "differs";
      }
    } else if (!f.empty) {
      eof = "missing";
    }
    row.push_back(eof);
    row.push_back(file_state(f));
    rows.push_back(std::move(row));
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      // Numbers right-aligned, text left-aligned; no padding after the last column.
      bool number = i == 0 || i == 2 || i == 3 || i == 4;
      if (i + 1 == row.size()) {
        line += row[i];
      } else if (number) {
        line += fmt::format("{:>{}}  ", row[i], width[i]);
      } else {
        line += fmt::format("{:<{}}  ", row[i], width[i]);
      }
    }
    fmt::print("{}\n", line);
  }
  for (const auto& f : *files) {
    for (const auto& p : f.problems) fmt::print("file {}: {}\n", f.number, p);
  }
  return bad ? kFailed : kOk;
}

// --- verify ---

int cmd_verify(const Args& args) {
  std::string tape_path;
  std::vector<std::string> checksum_args;
  po::options_description options;
  options.add_options()("tape", po::value(&tape_path))("checksum",
                                                       po::value(&checksum_args)->composing());
  po::positional_options_description positional;
  positional.add("tape", 1);
  po::variables_map vm;
  if (!parse_options("verify", args, options, positional, &vm)) return kUsage;
  if (tape_path.empty()) return usage_error("verify", "which TAPE?");
  std::map<uint64_t, uint64_t> checksums;
  for (const auto& c : checksum_args) {
    size_t eq = c.find('=');
    uint64_t file = 0, sum = 0;
    const char* end = c.data() + c.size();
    bool good = eq != std::string::npos && eq > 0 && eq + 1 < c.size() && eq + 17 >= c.size();
    if (good) {
      auto f = std::from_chars(c.data(), c.data() + eq, file);
      auto s = std::from_chars(c.data() + eq + 1, end, sum, 16);
      good = f.ec == std::errc() && f.ptr == c.data() + eq && s.ec == std::errc() && s.ptr == end;
    }
    if (!good) return usage_error("verify", fmt::format("--checksum '{}': expected FILE=HEX", c));
    checksums[file] = sum;
  }
  auto tape = open_for(tape_path, false);
  if (!tape.ok()) return failed("verify", tape.status());
  auto vol = read_volume_label(**tape);
  if (!vol.ok()) return failed("verify", vol.status());
  auto files = list_files(**tape);
  if (!files.ok()) return failed("verify", files.status());
  std::vector<std::string> problems;
  size_t good = 0;
  for (const auto& f : *files) {
    for (const auto& p : f.problems) problems.push_back(fmt::format("file {}: {}", f.number, p));
    if (!f.problems.empty()) continue;
    if (f.empty || f.partial) {
      fmt::print("file {}: {}\n", f.number,
                 f.empty ? "empty: the end of a tape that ran out of space"
                         : "partial: an interrupted archive, which the next archive overwrites");
      continue;
    }
    // Read it all back: the data length against the HDR, the EOF and the tape mark after it.
    auto contents = read_file(**tape, vol->vsn, f.number, Sink{});
    if (!contents.ok()) {
      problems.push_back(contents.status().message());
      continue;
    }
    auto want = checksums.find(f.number);
    if (want != checksums.end() && want->second != contents->checksum) {
      problems.push_back(
          fmt::format("VSN {} file {}: field checksum: expected {:016X}, found {:016X}", vol->vsn,
                      f.number, want->second, contents->checksum));
      continue;
    }
    ++good;
    fmt::print("file {}: ok, VV {}{}, {} bytes, checksum {:016X}\n", f.number, f.hdr->vv_class,
               f.hdr->vv_serial, contents->bytes, contents->checksum);
  }
  for (const auto& [file, sum] : checksums) {
    if (file == 0 || file > files->size()) {
      problems.push_back(
          fmt::format("file {}: --checksum given, but the tape has no such file", file));
    }
  }
  for (const auto& p : problems) fmt::print(stderr, "vvtape verify: {}: {}\n", tape_path, p);
  fmt::print("{}: VSN {}: {} file(s) good, {} problem(s)\n", tape_path, vol->vsn, good,
             problems.size());
  return problems.empty() ? kOk : kFailed;
}

// --- cat ---

int cmd_cat(const Args& args) {
  std::string tape_path;
  int64_t file = -1;
  bool sync = false;
  po::options_description options;
  options.add_options()("tape", po::value(&tape_path))("file", po::value(&file))(
      "sync", po::bool_switch(&sync));
  po::positional_options_description positional;
  positional.add("tape", 1).add("file", 1);
  po::variables_map vm;
  if (!parse_options("cat", args, options, positional, &vm)) return kUsage;
  if (tape_path.empty() || file < 1)
    return usage_error("cat", "expected TAPE and FILE (1 or more)");
  if (sync) {
    // Checked before reading: a pipe or a terminal cannot be made durable.
    struct stat st;
    if (::fstat(1, &st) != 0 || !S_ISREG(st.st_mode)) {
      return usage_error("cat", "--sync: standard output is not a file");
    }
  }
  auto tape = open_for(tape_path, false);
  if (!tape.ok()) return failed("cat", tape.status());
  auto vol = read_volume_label(**tape);
  if (!vol.ok()) return failed("cat", vol.status());
  auto contents = read_file(**tape, vol->vsn, static_cast<uint64_t>(file),
                            [](std::span<const char> data) -> Status {
                              size_t done = 0;
                              while (done < data.size()) {
                                ssize_t n = ::write(1, data.data() + done, data.size() - done);
                                if (n < 0) {
                                  if (errno == EINTR) continue;
                                  return Status::FromErrno(errno, "standard output");
                                }
                                done += static_cast<size_t>(n);
                              }
                              return Status::Ok();
                            });
  if (!contents.ok()) return failed("cat", contents.status());
  if (sync && ::fsync(1) != 0) return failed("cat", Status::FromErrno(errno, "standard output"));
  return kOk;
}

// --- write ---

int cmd_write(const Args& args) {
  std::string tape_path, vsn, vv_class, path, block_text;
  uint64_t file = 0, serial = 0, id = 0, finished = 0;
  po::options_description options;
  options.add_options()("tape", po::value(&tape_path))("path", po::value(&path))(
      "vsn", po::value(&vsn))("file", po::value(&file))("class", po::value(&vv_class))(
      "serial", po::value(&serial))("id", po::value(&id))("finished", po::value(&finished))(
      "block-size", po::value(&block_text));
  po::positional_options_description positional;
  positional.add("tape", 1).add("path", 1);
  po::variables_map vm;
  if (!parse_options("write", args, options, positional, &vm)) return kUsage;
  if (tape_path.empty() || path.empty()) return usage_error("write", "expected TAPE and PATH");
  for (const char* required : {"vsn", "file", "class", "serial", "id"}) {
    if (!vm.count(required)) return usage_error("write", fmt::format("--{} is required", required));
  }
  if (vv_class.size() != 1) {
    return usage_error("write", fmt::format("--class '{}': one letter or digit", vv_class));
  }
  ArchiveRequest request;
  request.vsn = vsn;
  request.file_number = file;
  if (!block_text.empty()) {
    auto b = parse_size(block_text);
    if (!b.ok()) return usage_error("write", "--block-size " + b.status().message());
    request.block_size = *b;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return failed("write", Status::FromErrno(errno, path));
  request.vv = VvFields{vv_class[0], serial, id, static_cast<uint64_t>(st.st_size),
                        vm.count("finished") ? finished : static_cast<uint64_t>(st.st_mtime)};
  auto tape = open_for(tape_path, true);
  if (!tape.ok()) return failed("write", tape.status());
  auto done = archive(**tape, request, path);
  if (!done.ok()) {
    failed("write", done.status());
    if (done.status().code() == Code::kNoSpace) return kFull;
    return done.status().code() == Code::kInvalidArgument ? kUsage : kFailed;
  }
  fmt::print("VSN {} file {}: {} bytes in {} data block{}, checksum {:016X}\n", done->vsn,
             done->file_number, done->bytes, done->blocks, done->blocks == 1 ? "" : "s",
             done->checksum);
  return kOk;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> kCommands = {
      {"label", "write a tape's VOL label (making an image if needed)",
       "vvtape label TAPE --vsn VSN --media MEDIA [--capacity SIZE] [--force]\n"
       "  Writes file 0 of TAPE: the VOL label (VSN: 1 to 6 uppercase letters or digits;\n"
       "  MEDIA: 1 to 8, \"LTO9\") and a tape mark, synced. A TAPE path that does not exist\n"
       "  becomes a new emulated tape image; --capacity (4096, 512M, 18T) sets or changes how\n"
       "  much that image holds (TAPE.capacity), without it there is no limit. A tape that\n"
       "  holds files is refused (exit 1) unless --force: relabelling cuts them all off.",
       cmd_label},
      {"ls", "list every file with its HDR and EOF fields",
       "vvtape ls TAPE [--json]\n"
       "  One line a file: file number, class, serial, id, size in bytes, time finished and\n"
       "  time written (UTC, from the HDR label), whether the EOF label is there and agrees\n"
       "  (ok, missing, differs), and the file's state: ok; partial (an interrupted archive,\n"
       "  which the next archive overwrites); end (the empty file that ends a tape that ran\n"
       "  out of space); BAD, with one line per problem under the table. Reads the labels\n"
       "  only, spacing over the data. --json prints every field of both labels instead.\n"
       "  Exit 1 when a file is BAD.",
       cmd_ls},
      {"verify", "read a whole tape back and check every label",
       "vvtape verify TAPE [--checksum FILE=HEX]...\n"
       "  Reads every file: the HDR, exactly the HDR's size of data, the EOF label (which must\n"
       "  repeat the HDR) and the tape mark after it, and prints each file's XXH3-64 checksum.\n"
       "  --checksum compares a file's data with the checksum vvmd's database (or vvtape\n"
       "  write) has for it: the labels carry none, so a changed data byte is only found this\n"
       "  way. Prints one line per problem naming the file; exit 1 if there is any.",
       cmd_verify},
      {"cat", "write a file's data to standard output",
       "vvtape cat TAPE FILE [--sync]\n"
       "  Writes the data of tape file FILE (1 or more) to standard output, after checking its\n"
       "  HDR and before checking its EOF label; exit 1 (with the data written so far) if a\n"
       "  label is wrong or the data is not the HDR's size. --sync fsyncs standard output (a\n"
       "  file) before exiting, so that the data is durable when vvtape returns, as after a\n"
       "  stage (bench/mover.sh times it so against dd conv=fsync).",
       cmd_cat},
      {"write", "archive a file as the next tape file (for tests and admins)",
       "vvtape write TAPE --vsn VSN --file N --class C --serial S --id I [--finished T]\n"
       "             [--block-size SIZE] PATH\n"
       "  Appends PATH as tape file N exactly as vvmover archives a VV: the tape must be VSN\n"
       "  and its last complete file N-1 (a partial file after it is overwritten). The labels\n"
       "  get class C, serial S, id I, PATH's size and time finished T (unix seconds; default\n"
       "  PATH's modification time); data blocks are SIZE bytes (default 256K). Prints the\n"
       "  checksum. Exit 3 when the tape is full: the partial file is cut off and the tape\n"
       "  ends after file N-1.",
       cmd_write},
  };
  return kCommands;
}

void print_help() {
  fmt::print(
      "Usage: vvtape COMMAND TAPE [OPTIONS]\n"
      "Label, list, verify and read vvm tapes: emulated tape images (.tap) or drives\n"
      "(/dev/nstN).\n\n"
      "Options:\n"
      "  -h, --help       print this help and exit\n"
      "  --version        print the version and exit\n\n"
      "Commands:\n");
  for (const auto& c : commands()) fmt::print("  {:<8} {}\n", c.name, c.summary);
  fmt::print(
      "\n'vvtape help COMMAND' or 'vvtape COMMAND --help' describes one command.\n"
      "Exit codes: 0 success, 1 the operation failed or found a problem, 2 usage error,\n"
      "3 write: the tape is full.\n");
}

int run(int argc, char** argv) {
  Args args(argv + 1, argv + argc);
  if (args.empty()) {
    print_help();
    return kUsage;
  }
  const std::string& first = args[0];
  if (first == "--help" || first == "-h") {
    print_help();
    return kOk;
  }
  if (first == "--version") {
    fmt::print("vvtape (vvm) {}\n", VVM_VERSION);
    return kOk;
  }
  if (first == "help") {
    if (args.size() == 1) {
      print_help();
      return kOk;
    }
    for (const auto& c : commands()) {
      if (c.name == args[1]) {
        fmt::print("Usage: {}\n", c.usage);
        return kOk;
      }
    }
    fmt::print(stderr, "vvtape help: no command '{}'\n", args[1]);
    return kUsage;
  }
  for (const auto& c : commands()) {
    if (c.name != first) continue;
    Args rest(args.begin() + 1, args.end());
    if (wants_help(rest)) {
      fmt::print("Usage: {}\n", c.usage);
      return kOk;
    }
    return c.run(rest);
  }
  fmt::print(stderr, "vvtape: unknown command '{}'\nTry 'vvtape --help'.\n", first);
  return kUsage;
}

}  // namespace
}  // namespace vvm::tape

int main(int argc, char** argv) {
  try {
    return vvm::tape::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "vvtape: {}\n", e.what());
    return 1;
  }
}
