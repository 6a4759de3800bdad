// hand_loop.h: an event loop that a unit test runs by hand, for the parts of vvmd that post work
// back to their loop (db::Committer's follow-ups): what is posted waits, from any thread, until
// the test runs it on its own thread.
#pragma once

#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vvm::test {

class HandLoop {
 public:
  // What a part takes as its loop: a db::Committer::Post.
  std::function<void(std::function<void()>)> post() {
    return [this](std::function<void()> task) {
      const std::lock_guard l(m_);
      tasks_.push_back(std::move(task));
    };
  }
  size_t pending() {
    const std::lock_guard l(m_);
    return tasks_.size();
  }
  // Runs what was posted until `n` tasks have run on this thread, waiting up to 10 s for them.
  void run(size_t n) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    size_t done = 0;
    while (done < n) {
      std::vector<std::function<void()>> now;
      {
        const std::lock_guard l(m_);
        now.swap(tasks_);
      }
      for (auto& t : now) {
        t();
        ++done;
      }
      if (done < n) {
        REQUIRE(std::chrono::steady_clock::now() < until);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }

 private:
  std::mutex m_;
  std::vector<std::function<void()>> tasks_;
};

}  // namespace vvm::test
