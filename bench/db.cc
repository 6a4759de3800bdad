// bench/db.cc: vvmd's database against SQLite, side by side in one run, with the same VV
// records, the same indexes and the same durability: bulk load, open (with vvm's index
// rebuild), point lookups by name, range scans by class and client id, and durable one-record
// updates with 1, 8 and 64 concurrent writers, and (vvm alone) the same updates submitted from
// one thread with up to 64 waiting for durability. SQLite runs in WAL mode with synchronous=FULL
// and with NORMAL. It prints one table with the ratios vvm/SQLite (above 1.0: vvm is better, except
// for open time, where lower is better). Not a test: the machine is noisy; compare ratios.
//
// Lookups and scans produce a vvm::Vv on both sides (SQLite reads every column and parses the
// state words as vvm's sink does), as the daemon would use them.
//
//   build/run/bench/bench_db [RECORDS] [SECONDS_PER_CASE] [vvm]   default 1000000 3; "vvm":
//                                                                  vvm alone, for profiling
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>

#include "catalog/tables.h"
#include "db/database.h"

using namespace vvm::db;
using namespace vvm::vvmd;
using vvm::Vv;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string name_of(uint64_t i) { return fmt::format("{}{:010d}", "ABCD"[i % 4], i); }

Vv vv_of(uint64_t i) {
  Vv r;
  r.name = name_of(i);
  r.vv_class = r.name.substr(0, 1);
  r.serial = i;
  r.client_id = i % 1000;
  r.owner = "user" + std::to_string(i % 50);
  r.group = "staff";
  r.size = (i % 100 + 1) << 30;
  r.created = r.accessed = 0x65f0a1b2c + i;
  return r;
}

void die(const std::string& what) {
  std::fprintf(stderr, "bench_db: %s\n", what.c_str());
  std::exit(1);
}

void must(const vvm::Status& s) {
  if (!s.ok()) die(s.message());
}

template <class T>
T must(vvm::Result<T> r) {
  if (!r.ok()) die(r.status().message());
  return std::move(r).value();
}

struct Row {
  std::string name;
  double vvm, full, normal;
  bool lower_is_better = false;
};

// --- SQLite, the same table and indexes ---

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) die(err ? err : "sqlite");
}

sqlite3* sqlite_open(const std::string& path, const char* sync) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) die("sqlite3_open");
  sqlite3_busy_timeout(db, 60000);
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, fmt::format("PRAGMA synchronous={}", sync).c_str());
  return db;
}

const char* kSchema =
    "CREATE TABLE vv(name TEXT PRIMARY KEY, class TEXT, serial INT, client_id INT, owner TEXT,"
    " grp TEXT, perms INT, size INT, state TEXT, cache TEXT, created INT, finished INT,"
    " accessed INT, checksum INT, c1 TEXT, f1 INT, c2 TEXT, f2 INT, c3 TEXT, f3 INT, c4 TEXT,"
    " f4 INT) WITHOUT ROWID;"
    "CREATE INDEX vv_hot ON vv(class, client_id) WHERE state = 'hot';"
    "CREATE INDEX vv_unwritten ON vv(name) WHERE state = 'finished';"
    "CREATE INDEX vv_vsn1 ON vv(c1, f1); CREATE INDEX vv_vsn2 ON vv(c2, f2);"
    "CREATE INDEX vv_vsn3 ON vv(c3, f3); CREATE INDEX vv_vsn4 ON vv(c4, f4);"
    "CREATE INDEX vv_id ON vv(client_id);";

void sqlite_bind_vv(sqlite3_stmt* st, const Vv& r) {
  int i = 1;
  auto text = [&](std::string_view s) {
    sqlite3_bind_text(st, i++, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  };
  auto num = [&](uint64_t n) { sqlite3_bind_int64(st, i++, static_cast<sqlite3_int64>(n)); };
  text(r.name), text(r.vv_class), num(r.serial), num(r.client_id), text(r.owner), text(r.group);
  num(r.perms), num(r.size), text(vvm::vv_state_name(r.state));
  text(vvm::cache_state_name(r.cache)), num(r.created), num(r.finished);
  num(r.accessed), num(r.checksum);
  for (const auto& c : r.copies) text(c.vsn), num(c.file);
}

// The record of a row, as the daemon would take it: every column, into `r` (reused, as vvm's
// side reuses its record: strings keep their room).
void sqlite_row_vv(sqlite3_stmt* st, Vv& r) {
  int i = 0;
  auto text = [&](std::string& out) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
    int len = sqlite3_column_bytes(st, i++);
    out.assign(p ? p : "", static_cast<size_t>(len));
  };
  auto num = [&](uint64_t& out) { out = static_cast<uint64_t>(sqlite3_column_int64(st, i++)); };
  // The state words as the record holds them, parsed as vvm's side parses them.
  auto word = [&] {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
    int len = sqlite3_column_bytes(st, i++);
    return std::string_view(p ? p : "", static_cast<size_t>(len));
  };
  text(r.name), text(r.vv_class), num(r.serial), num(r.client_id), text(r.owner);
  text(r.group);
  r.perms = static_cast<uint32_t>(sqlite3_column_int64(st, i++));
  num(r.size);
  r.state = vvm::parse_vv_state(word()).value_or(vvm::VvState::kHot);
  r.cache = vvm::parse_cache_state(word()).value_or(vvm::CacheState::kCached);
  num(r.created);
  num(r.finished), num(r.accessed), num(r.checksum);
  for (auto& c : r.copies) text(c.vsn), num(c.file);
}

struct Sqlite {
  double load = 0, open = 0, lookups = 0, scans = 0;
  std::vector<double> writers;
};

Sqlite run_sqlite(const std::string& dir, const char* sync, uint64_t n, double secs,
                  const std::vector<int>& writer_counts) {
  Sqlite out;
  const std::string path = dir + "/vv.db";
  sqlite3* db = sqlite_open(path, sync);
  exec(db, kSchema);
  auto t0 = Clock::now();
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO vv VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1,
                     &ins, nullptr);
  for (uint64_t i = 0; i < n; i += 1000) {
    exec(db, "BEGIN");
    for (uint64_t j = i; j < std::min(n, i + 1000); ++j) {
      sqlite_bind_vv(ins, vv_of(j));
      if (sqlite3_step(ins) != SQLITE_DONE) die(sqlite3_errmsg(db));
      sqlite3_reset(ins);
    }
    exec(db, "COMMIT");
  }
  sqlite3_finalize(ins);
  out.load = static_cast<double>(n) / seconds_since(t0);
  sqlite3_close(db);

  t0 = Clock::now();
  db = sqlite_open(path, sync);
  exec(db, "SELECT count(*) FROM vv");  // SQLite opens lazily: make it read something
  out.open = seconds_since(t0);

  std::mt19937_64 rng(1);
  sqlite3_stmt* get = nullptr;
  Vv row;  // reused, as vvm's side reuses its record
  sqlite3_prepare_v2(db, "SELECT * FROM vv WHERE name = ?", -1, &get, nullptr);
  t0 = Clock::now();
  uint64_t done = 0;
  while (seconds_since(t0) < secs) {
    for (int k = 0; k < 1000; ++k, ++done) {
      std::string name = name_of(rng() % n);
      sqlite3_bind_text(get, 1, name.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(get) != SQLITE_ROW) die("lookup missed " + name);
      sqlite_row_vv(get, row);
      if (row.name != name) die("lookup found the wrong row");
      sqlite3_reset(get);
    }
  }
  out.lookups = static_cast<double>(done) / seconds_since(t0);
  sqlite3_finalize(get);

  sqlite3_stmt* scan = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT * FROM vv WHERE state = 'hot' AND class = ? AND client_id >= ? "
                     "AND client_id < ? ORDER BY class, client_id",
                     -1, &scan, nullptr);
  t0 = Clock::now();
  done = 0;
  while (seconds_since(t0) < secs) {
    for (int k = 0; k < 100; ++k, ++done) {
      uint64_t lo = rng() % 990;
      sqlite3_bind_text(scan, 1, "A", -1, SQLITE_STATIC);
      sqlite3_bind_int64(scan, 2, static_cast<sqlite3_int64>(lo));
      sqlite3_bind_int64(scan, 3, static_cast<sqlite3_int64>(lo + 2));
      while (sqlite3_step(scan) == SQLITE_ROW) {
        sqlite_row_vv(scan, row);
        if (row.vv_class != "A") die("scan found the wrong row");
      }
      sqlite3_reset(scan);
    }
  }
  out.scans = static_cast<double>(done) / seconds_since(t0);
  sqlite3_finalize(scan);
  sqlite3_close(db);

  for (int writers : writer_counts) {
    std::atomic<uint64_t> commits{0};
    std::vector<std::thread> threads;
    auto w0 = Clock::now();
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        sqlite3* c = sqlite_open(path, sync);
        sqlite3_stmt* up = nullptr;
        sqlite3_prepare_v2(c, "UPDATE vv SET size = ?, accessed = ? WHERE name = ?", -1, &up,
                           nullptr);
        std::mt19937_64 r(static_cast<uint64_t>(w) + 7);
        while (seconds_since(w0) < secs) {
          std::string name = vv_of(r() % n).name;
          sqlite3_bind_int64(up, 1, static_cast<sqlite3_int64>(r() % 1000000));
          sqlite3_bind_int64(up, 2, 12345);
          sqlite3_bind_text(up, 3, name.c_str(), -1, SQLITE_TRANSIENT);
          if (sqlite3_step(up) == SQLITE_DONE) ++commits;
          sqlite3_reset(up);
        }
        sqlite3_finalize(up);
        sqlite3_close(c);
      });
    }
    for (auto& t : threads) t.join();
    out.writers.push_back(static_cast<double>(commits) / seconds_since(w0));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t n = argc > 1 ? std::stoull(argv[1]) : 1000000;
  const double secs = argc > 2 ? std::stod(argv[2]) : 3;
  // "vvm": skip SQLite, to profile vvm alone (perf record bench_db 1000000 3 vvm).
  const bool vvm_only = argc > 3 && std::string(argv[3]) == "vvm";
  const std::vector<int> writer_counts = {1, 8, 64};
  namespace fs = std::filesystem;
  const fs::path base = fs::temp_directory_path() / fmt::format("vvm-bench-db-{}", getpid());
  fs::create_directories(base / "vvm");
  fs::create_directories(base / "full");
  fs::create_directories(base / "normal");
  std::vector<Row> rows;

  // vvm
  double load, open, lookups, scans, submits = 0;
  std::vector<double> writers;
  {
    auto db = must(open_database((base / "vvm").string()));
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < n; i += 1000) {
      Transaction txn;
      for (uint64_t j = i; j < std::min(n, i + 1000); ++j) {
        txn.insert(kVvTable, vv_values(vv_of(j)));
      }
      must(db->commit(txn));
    }
    load = static_cast<double>(n) / seconds_since(t0);
  }
  {
    auto t0 = Clock::now();
    auto db = must(open_database((base / "vvm").string()));
    open = seconds_since(t0);
    std::mt19937_64 rng(1);
    Vv record;  // reused, as the daemon's loops would
    t0 = Clock::now();
    uint64_t done = 0;
    while (seconds_since(t0) < secs) {
      for (int k = 0; k < 1000; ++k, ++done) {
        const std::string name = name_of(rng() % n);
        must(lookup_vv(*db, "name", KeyBuilder().text(name), &record));
        if (record.name != name) die("lookup: wrong record");
      }
    }
    lookups = static_cast<double>(done) / seconds_since(t0);
    t0 = Clock::now();
    done = 0;
    while (seconds_since(t0) < secs) {
      for (int k = 0; k < 100; ++k, ++done) {
        uint64_t lo = rng() % 990;
        must(scan_vv(*db, "hot", KeyBuilder().text("A").number(lo),
                     KeyBuilder().text("A").number(lo + 2), [&](uint64_t, const Vv& r) {
                       if (r.vv_class != "A") die("scan found the wrong record");
                       return true;
                     }));
      }
    }
    scans = static_cast<double>(done) / seconds_since(t0);
    for (int count : writer_counts) {
      std::atomic<uint64_t> commits{0};
      std::vector<std::thread> threads;
      auto w0 = Clock::now();
      for (int w = 0; w < count; ++w) {
        threads.emplace_back([&, w] {
          std::mt19937_64 r(static_cast<uint64_t>(w) + 7);
          while (seconds_since(w0) < secs) {
            Vv v = vv_of(r() % n);
            auto found = db->lookup(kVvTable, "name", KeyBuilder().text(v.name));
            if (!found.ok()) continue;
            v.size = r() % 1000000;
            v.accessed = 12345;
            Transaction txn;
            txn.update(kVvTable, found->first, vv_values(v));
            if (db->commit(txn).ok()) ++commits;
          }
        });
      }
      for (auto& t : threads) t.join();
      writers.push_back(static_cast<double>(commits) / seconds_since(w0));
    }
    // The same updates submitted from one thread that never waits for durability, up to 64 at
    // a time: what a daemon's event loop can reach (its submits share the flusher's frames).
    {
      std::mutex m;
      std::condition_variable cv;
      int in_flight = 0;
      uint64_t durable = 0, failed = 0;
      std::mt19937_64 r(99);
      auto s0 = Clock::now();
      while (seconds_since(s0) < secs) {
        {
          std::unique_lock l(m);
          cv.wait(l, [&] { return in_flight < 64; });
          ++in_flight;
        }
        Vv v = vv_of(r() % n);
        auto found = db->lookup(kVvTable, "name", KeyBuilder().text(v.name));
        if (!found.ok()) die("submit: lookup failed");
        v.size = r() % 1000000;
        v.accessed = 12345;
        Transaction txn;
        txn.update(kVvTable, found->first, vv_values(v));
        must(db->submit(txn, [&](vvm::Status st) {
          const std::lock_guard l(m);
          --in_flight;
          ++(st.ok() ? durable : failed);
          cv.notify_one();
        }));
      }
      std::unique_lock l(m);
      cv.wait(l, [&] { return in_flight == 0; });
      if (failed > 0) die("submit: a submit failed");
      submits = static_cast<double>(durable) / seconds_since(s0);
    }
  }
  Sqlite full, normal;
  if (!vvm_only) {
    full = run_sqlite((base / "full").string(), "FULL", n, secs, writer_counts);
    normal = run_sqlite((base / "normal").string(), "NORMAL", n, secs, writer_counts);
  } else {
    full.writers = normal.writers = std::vector<double>(writer_counts.size(), 0);
  }
  fs::remove_all(base);

  rows.push_back({"bulk load (records/s)", load, full.load, normal.load});
  rows.push_back({"open (s)", open, full.open, normal.open, true});
  rows.push_back({"lookup by name (/s)", lookups, full.lookups, normal.lookups});
  rows.push_back({"hot scan class+id (/s)", scans, full.scans, normal.scans});
  for (size_t i = 0; i < writer_counts.size(); ++i) {
    rows.push_back({fmt::format("durable update, {} writers (/s)", writer_counts[i]), writers[i],
                    full.writers[i], normal.writers[i]});
  }
  fmt::print("bench_db: {} VV records, {} s a timed case, {} CPUs\n", n, secs,
             std::thread::hardware_concurrency());
  fmt::print("{:<34} {:>12} {:>12} {:>7} {:>12} {:>7}\n", "case", "vvm", "sqlite FULL", "x",
             "sqlite NORM", "x");
  for (const Row& r : rows) {
    auto ratio = [&](double other) { return r.lower_is_better ? other / r.vvm : r.vvm / other; };
    fmt::print("{:<34} {:>12.2f} {:>12.2f} {:>7.2f} {:>12.2f} {:>7.2f}\n", r.name, r.vvm, r.full,
               ratio(r.full), r.normal, ratio(r.normal));
  }
  fmt::print("(x: vvm/SQLite, above 1.0 = vvm better; for open, SQLite/vvm)\n");
  fmt::print(
      "durable submit, one thread, 64 in flight: {:.2f}/s ({:.2f}x the {}-writer commit rate)\n",
      submits, submits / writers.back(), writer_counts.back());
  return 0;
}
