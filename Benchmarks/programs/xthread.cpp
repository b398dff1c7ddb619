// xthread: a multi-threaded C++ allocation stress for `gomem bench --programs`.
//
//   xthread [ITERATIONS]      (default 4000; the bench passes its own)
//
// Eight threads, each with a fixed, deterministic plan (its own xorshift seed):
//   - long-lived data: a table of 4096 blocks per thread, one slot replaced
//     every few operations, so old blocks live for thousands of iterations;
//   - short bursts: 16-96 blocks allocated, written and freed at once;
//   - hand-offs: blocks sent through a bounded ring to another thread, which
//     checks and frees them (when the ring is full the sender frees it);
//   - C++ churn: std::string, std::vector and std::map built and dropped;
//   - sizes from 8 B to 512 KiB (mostly small), and some realloc.
// Every block carries its size and a tag at both ends, checked when it is
// freed; any damage is counted and makes the exit status 1. The output is
// deterministic (it does not depend on which thread freed what).
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kThreads = 8;
constexpr int kLongLived = 4096;
constexpr int kRing = 1024;

std::atomic<long> damaged{0};

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
    size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

size_t pickSize(Rng &r) {
    size_t p = r.below(1000);
    if (p < 700) return 8 + r.below(121);            // 8-128 B
    if (p < 900) return 129 + r.below(896);          // 129-1024 B
    if (p < 990) return 1025 + r.below(31 * 1024);   // 1-32 KiB
    return 64 * 1024 + r.below(448 * 1024);          // 64-512 KiB
}

// A block: [size][tag] ... [tag byte at the end]. At least 8 bytes asked.
void *make(size_t n, uint64_t tag) {
    if (n < 17) n = 17;
    auto *p = static_cast<unsigned char *>(std::malloc(n));
    if (!p) { std::fprintf(stderr, "xthread: malloc(%zu) failed\n", n); std::exit(2); }
    uint64_t size = n;
    std::memcpy(p, &size, 8);
    std::memcpy(p + 8, &tag, 8);
    p[n - 1] = static_cast<unsigned char>(tag);
    return p;
}

void check(void *q) {
    auto *p = static_cast<unsigned char *>(q);
    uint64_t size, tag;
    std::memcpy(&size, p, 8);
    std::memcpy(&tag, p + 8, 8);
    if (size < 17 || size > (1u << 20) || p[size - 1] != static_cast<unsigned char>(tag)) damaged.fetch_add(1);
}

void release(void *q) { check(q); std::free(q); }

void *grow(void *q, size_t n) {
    check(q);
    uint64_t tag;
    std::memcpy(&tag, static_cast<unsigned char *>(q) + 8, 8);
    auto *p = static_cast<unsigned char *>(std::realloc(q, n < 17 ? 17 : n));
    if (!p) { std::fprintf(stderr, "xthread: realloc failed\n"); std::exit(2); }
    if (n < 17) n = 17;
    uint64_t size = n;
    std::memcpy(p, &size, 8);
    p[n - 1] = static_cast<unsigned char>(tag);
    return p;
}

// A bounded ring of blocks from any thread to one receiver.
struct Mailbox {
    std::mutex m;
    void *slots[kRing];
    int head = 0, count = 0;
    bool put(void *p) {
        std::lock_guard<std::mutex> g(m);
        if (count == kRing) return false;
        slots[(head + count) % kRing] = p;
        ++count;
        return true;
    }
    int take(void **out, int max) {
        std::lock_guard<std::mutex> g(m);
        int n = count < max ? count : max;
        for (int i = 0; i < n; ++i) out[i] = slots[(head + i) % kRing];
        head = (head + n) % kRing;
        count -= n;
        return n;
    }
};

Mailbox boxes[kThreads];

struct Result { uint64_t allocations = 0, containers = 0; };

void worker(int id, int iterations, Result *result) {
    Rng r(static_cast<uint64_t>(id) + 1);
    std::vector<void *> table(kLongLived);
    for (auto &b : table) { b = make(pickSize(r), r.next()); ++result->allocations; }
    void *burst[96];
    void *inbox[256];
    for (int it = 0; it < iterations; ++it) {
        // Long-lived data: replace a few slots, sometimes by realloc.
        for (int k = 0; k < 8; ++k) {
            size_t i = r.below(kLongLived);
            if (r.below(8) == 0) table[i] = grow(table[i], pickSize(r));
            else { release(table[i]); table[i] = make(pickSize(r), r.next()); }
            ++result->allocations;
        }
        // A short burst.
        int n = 16 + static_cast<int>(r.below(81));
        for (int k = 0; k < n; ++k) {
            size_t s = r.below(10) == 0 ? pickSize(r) : 8 + r.below(248);
            burst[k] = make(s, r.next());
            std::memset(static_cast<unsigned char *>(burst[k]) + 16, k, (s > 17 ? s : 17) - 17);
        }
        result->allocations += n;
        for (int k = r.below(2) ? 0 : n - 1, step = k == 0 ? 1 : -1, c = 0; c < n; k += step, ++c) release(burst[k]);
        // Hand blocks to two other threads.
        for (int k = 0; k < 24; ++k) {
            int to = (id + 1 + (k % 3 == 0 ? 2 : 0)) % kThreads;
            void *p = make(pickSize(r), r.next());
            ++result->allocations;
            if (!boxes[to].put(p)) release(p);
        }
        // Free what others sent.
        int got;
        while ((got = boxes[id].take(inbox, 256)) > 0)
            for (int k = 0; k < got; ++k) release(inbox[k]);
        // C++ containers now and then.
        if (it % 16 == 0) {
            std::map<int, std::string> m;
            std::vector<std::string> v;
            for (int k = 0; k < 200; ++k) {
                m[static_cast<int>(r.below(1000))] = std::string(8 + r.below(64), static_cast<char>('a' + k % 26));
                v.emplace_back(std::to_string(r.next()) + "-" + std::to_string(k));
            }
            result->containers += m.size() > 0 ? 1 : 0;
        }
    }
    for (auto b : table) release(b);
}

}  // namespace

int main(int argc, char **argv) {
    int iterations = argc > 1 ? std::atoi(argv[1]) : 4000;
    if (iterations <= 0) { std::fprintf(stderr, "usage: xthread [ITERATIONS > 0]\n"); return 64; }
    std::vector<std::thread> threads;
    Result results[kThreads];
    for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i, iterations, &results[i]);
    for (auto &t : threads) t.join();
    void *inbox[256];
    for (auto &b : boxes) { int got; while ((got = b.take(inbox, 256)) > 0) for (int k = 0; k < got; ++k) release(inbox[k]); }
    uint64_t total = 0, containers = 0;
    for (auto &r : results) { total += r.allocations; containers += r.containers; }
    long bad = damaged.load();
    std::printf("xthread: %d threads, %d iterations, %llu blocks, %llu container rounds, %ld damaged\n", kThreads,
                iterations, static_cast<unsigned long long>(total), static_cast<unsigned long long>(containers), bad);
    return bad == 0 ? 0 : 1;
}
