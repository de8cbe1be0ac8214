// A small persistent thread pool: the caller is thread 0, workers 1..n-1 spin briefly for the next
// job and then sleep on a condition variable. Work partitioning is done by the callers (static,
// by output rows/tokens), so results never depend on the number of threads.
#include "thread_pool.h"

#include "errors.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>
#include <memory>
#include <new>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMOE_PAUSE() _mm_pause()
#else
#define LMOE_PAUSE() ((void)0)
#endif

namespace lmoe {
namespace {

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_.store(true);
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int size() const { return n_; }

  bool run(const std::function<void(int, int)>& fn) {
    if (n_ == 1) {
      try { fn(0, 1); } catch (...) { return false; }
      return true;
    }
    failed_.store(false, std::memory_order_relaxed);
    job_ = &fn;
    pending_.store(n_ - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    bool ok = true;
    try { fn(0, n_); } catch (...) { ok = false; }
    unsigned spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) {
      if (++spins < 4096) LMOE_PAUSE();
      else std::this_thread::yield();
    }
    job_ = nullptr;
    return ok && !failed_.load(std::memory_order_relaxed);
  }

 private:
  void worker(int idx) {
    uint64_t seen = 0;
    for (;;) {
      unsigned spins = 0;
      uint64_t g;
      while ((g = gen_.load(std::memory_order_acquire)) == seen && ++spins < 30000) LMOE_PAUSE();
      if (g == seen) {
        std::unique_lock<std::mutex> lk(m_);
        sleepers_.fetch_add(1, std::memory_order_acq_rel);
        cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        g = gen_.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop_.load()) return;
      try {
        (*job_)(idx, n_);
      } catch (...) {
        failed_.store(true, std::memory_order_relaxed);
      }
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  int n_;
  std::vector<std::thread> threads_;
  std::mutex m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  const std::function<void(int, int)>* job_ = nullptr;
};

std::mutex g_pool_mutex;  // serialises jobs and resizes
std::unique_ptr<Pool> g_pool;
int g_requested = 0;       // 0 = default (hardware_concurrency)

int default_threads() {
  unsigned h = std::thread::hardware_concurrency();
  if (h == 0) h = 1;
  if (h > 1024) h = 1024;
  return (int)h;
}

Pool& pool_locked() {
  int want = g_requested > 0 ? g_requested : default_threads();
  if (!g_pool || g_pool->size() != want) {
    g_pool.reset();
    g_pool.reset(new Pool(want));
  }
  return *g_pool;
}

}  // namespace

int pool_num_threads() {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  return g_requested > 0 ? g_requested : default_threads();
}

void pool_set_num_threads(int n) {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  g_requested = n;
  if (g_pool && g_pool->size() != n) g_pool.reset();
}

bool pool_run(const std::function<void(int, int)>& fn) {
  std::lock_guard<std::mutex> lk(g_pool_mutex);
  return pool_locked().run(fn);
}

lmoe_status parallel(const std::function<void(int, int)>& fn) {
  std::atomic<int> err{0};  // 1 = out of memory, 2 = other
  auto wrapped = [&](int i, int n) {
    try {
      fn(i, n);
    } catch (const std::bad_alloc&) {
      err.store(1);
    } catch (...) {
      err.store(2);
    }
  };
  if (!pool_run(wrapped) && err.load() == 0) err.store(2);
  if (err.load() == 1) {
    set_error("out of memory (thread scratch)");
    return LMOE_ERR_OUT_OF_MEMORY;
  }
  if (err.load() != 0) {
    set_error("internal error in a worker thread");
    return LMOE_ERR_INTERNAL;
  }
  return LMOE_OK;
}

float* thread_scratch(int slot, size_t floats) {
  static thread_local std::vector<float> bufs[8];
  std::vector<float>& b = bufs[slot & 7];
  if (b.size() < floats) {
    b.clear();
    b.shrink_to_fit();
    b.resize(floats + 64);
  }
  return b.data();
}

}  // namespace lmoe
