// cxx.cpp: a C++ program with threads, containers and exceptions over
// libgoheap-malloc.so (issue #12). libstdc++'s operator new and delete call
// malloc and free, so every container node, string buffer, exception object
// and thread-local below is a GoHeap block when the library is loaded.
//
// Checks go to stderr (check.h); stdout gets only deterministic lines (the
// work's checksums), which scripts/malloc-check.sh compares byte for byte
// between a run with the library and one without.
//
//   cxx [substring...]   runs the tests whose names contain a substring
//
// With EXPECT_GOHEAP=1 in the environment, the first test requires that
// GoHeap serves operator new (the library is preloaded or linked); without
// it the program also runs on the default allocator, for the comparison.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <dlfcn.h>
#include <exception>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "check.h"

namespace {

// Deterministic per-thread random numbers.
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 2685821657736338717ull;
    }
};

uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001B3ull; }

uint64_t hash_string(const std::string &s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = mix(h, c);
    return h;
}

// One thread's share of container churn: strings of every length (inside and
// outside the small-string buffer), vectors that grow and shrink, a map and
// an unordered_map of them, a list and a deque; returns a checksum of what it
// built, the same for every run with the same seed.
uint64_t container_churn(uint64_t seed, int rounds) {
    Rng r(seed);
    uint64_t h = 0;
    for (int round = 0; round < rounds; round++) {
        std::map<std::string, std::vector<int>> m;
        std::unordered_map<uint64_t, std::string> u;
        std::list<std::string> l;
        std::deque<std::vector<char>> d;
        for (int i = 0; i < 400; i++) {
            std::string key = "key-" + std::to_string(r.next() % 1000);
            size_t len = r.next() % 8 == 0 ? r.next() % 5000 : r.next() % 40;
            std::string value(len, static_cast<char>('a' + i % 26));
            value += std::to_string(i);
            auto &v = m[key];
            v.push_back(static_cast<int>(value.size()));
            if (v.size() > 8) v.erase(v.begin(), v.begin() + 4);
            u[r.next() % 500] = value;
            l.push_back(value.substr(0, value.size() / 2));
            if (l.size() > 50) l.pop_front();
            d.emplace_back(r.next() % 3000, static_cast<char>(i));
            if (d.size() > 30) d.pop_front();
        }
        for (auto &kv : m) {
            h = mix(h, hash_string(kv.first));
            for (int x : kv.second) h = mix(h, static_cast<uint64_t>(x));
        }
        std::vector<std::pair<uint64_t, std::string>> sorted(u.begin(), u.end());
        std::sort(sorted.begin(), sorted.end());
        for (auto &kv : sorted) h = mix(mix(h, kv.first), hash_string(kv.second));
        for (auto &s : l) h = mix(h, hash_string(s));
        for (auto &v : d) h = mix(h, v.size() + (v.empty() ? 0 : static_cast<unsigned char>(v[0])));
        std::ostringstream os;
        os << "round " << round << " of seed " << seed << ": " << m.size() << " keys";
        h = mix(h, hash_string(os.str()));
    }
    return h;
}

struct WorkError : std::runtime_error {
    int item;
    WorkError(const std::string &what, int item) : std::runtime_error(what), item(item) {}
};

// Work items of which every 7th throws an exception with a long (heap)
// message, caught a few frames up; returns how many were caught.
int throwing_work(int id, int items) {
    int caught = 0;
    for (int i = 0; i < items; i++) {
        try {
            std::vector<std::string> partial(10, std::string(100, 'x'));
            if (i % 7 == 0) {
                throw WorkError("item " + std::to_string(i) + " of worker " + std::to_string(id) +
                                    " failed: " + std::string(200, 'e'),
                                i);
            }
            partial.emplace_back(std::to_string(i));
        } catch (const WorkError &e) {
            if (e.item == i && std::string(e.what()).find("item " + std::to_string(i) + " ") == 0) caught++;
        }
    }
    return caught;
}

}  // namespace

TEST(goheap_serves_operator_new) {
    using owns_fn = int (*)(const void *);
    auto owns = reinterpret_cast<owns_fn>(dlsym(RTLD_DEFAULT, "goheap_owns"));
    const char *expect = std::getenv("EXPECT_GOHEAP");
    if (!expect || std::strcmp(expect, "1") != 0) {
        check_say("       (info) EXPECT_GOHEAP unset: GoHeap %s\n", owns ? "is loaded" : "is not loaded");
        return;
    }
    REQUIRE(owns != nullptr, "EXPECT_GOHEAP=1 but goheap_owns is not in the process: the library is not loaded");
    auto s = std::make_unique<std::string>(100, 'x');
    std::vector<int> v(1000);
    CHECK(owns(s.get()) && owns(s->data()) && owns(v.data()),
          "operator new's blocks %p %p %p are not GoHeap's", (void *)s.get(), (void *)s->data(), (void *)v.data());
    std::thread t([&] {
        std::string local(500, 'y');
        CHECK(owns(local.data()), "a thread's string %p is not GoHeap's", (void *)local.data());
    });
    t.join();
}

TEST(threads_container_churn) {
    const int threads = 4, rounds = 200;
    std::vector<uint64_t> results(threads);
    std::vector<std::thread> t;
    for (int i = 0; i < threads; i++)
        t.emplace_back([i, &results] { results[i] = container_churn(static_cast<uint64_t>(i % 2), rounds); });
    for (auto &th : t) th.join();
    // Threads with the same seed built the same things.
    CHECK(results[0] == results[2] && results[1] == results[3],
          "threads with equal seeds disagree: %016llx %016llx / %016llx %016llx",
          (unsigned long long)results[0], (unsigned long long)results[2], (unsigned long long)results[1],
          (unsigned long long)results[3]);
    uint64_t single = container_churn(0, rounds);
    CHECK(single == results[0], "the same work on the main thread gives %016llx, threads gave %016llx",
          (unsigned long long)single, (unsigned long long)results[0]);
    std::printf("container churn: %016llx %016llx\n", (unsigned long long)results[0], (unsigned long long)results[1]);
}

TEST(exceptions_in_threads) {
    const int threads = 4, items = 100000;
    std::vector<int> caught(threads);
    std::vector<std::thread> t;
    for (int i = 0; i < threads; i++) t.emplace_back([i, &caught] { caught[i] = throwing_work(i, items); });
    for (auto &th : t) th.join();
    int expect = (items + 6) / 7;
    for (int i = 0; i < threads; i++)
        CHECK(caught[i] == expect, "worker %d caught %d exceptions, expected %d", i, caught[i], expect);
    std::printf("exceptions caught per worker: %d\n", caught[0]);
}

TEST(exceptions_across_threads) {
    // An exception made in one thread is rethrown, inspected and destroyed in
    // another: its object (and message) is freed by a thread that did not
    // allocate it.
    int ok = 0;
    for (int i = 0; i < 200; i++) {
        std::future<std::string> f = std::async(std::launch::async, [i]() -> std::string {
            std::string big(1000 + static_cast<size_t>(i), 'z');
            if (i % 2) throw std::runtime_error("async " + std::to_string(i) + " " + big);
            return big;
        });
        try {
            std::string s = f.get();
            if (i % 2 == 0 && s.size() == 1000u + static_cast<size_t>(i)) ok++;
        } catch (const std::runtime_error &e) {
            if (i % 2 == 1 && std::strncmp(e.what(), ("async " + std::to_string(i) + " ").c_str(), 7) == 0) ok++;
        }
    }
    CHECK(ok == 200, "%d of 200 async results or exceptions came back right", ok);
    // exception_ptr handed through a queue to a consumer thread.
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::exception_ptr> q;
    bool done = false;
    int seen = 0;
    std::thread consumer([&] {
        std::unique_lock<std::mutex> lk(mu);
        for (;;) {
            cv.wait(lk, [&] { return !q.empty() || done; });
            if (q.empty()) return;
            std::exception_ptr e = q.front();
            q.pop_front();
            lk.unlock();
            try {
                std::rethrow_exception(e);
            } catch (const WorkError &w) {
                if (std::string(w.what()).size() > 300) seen++;
            }
            lk.lock();
        }
    });
    std::vector<std::thread> producers;
    for (int p = 0; p < 3; p++)
        producers.emplace_back([&, p] {
            for (int i = 0; i < 1000; i++) {
                try {
                    throw WorkError(std::string(300, 'p') + std::to_string(p * 1000 + i), i);
                } catch (...) {
                    std::lock_guard<std::mutex> g(mu);
                    q.push_back(std::current_exception());
                    cv.notify_one();
                }
            }
        });
    for (auto &th : producers) th.join();
    {
        std::lock_guard<std::mutex> g(mu);
        done = true;
        cv.notify_all();
    }
    consumer.join();
    CHECK(seen == 3000, "consumer rethrew %d of 3000 exceptions", seen);
    std::printf("exceptions across threads: %d %d\n", ok, seen);
}

TEST(shared_objects_freed_by_other_threads) {
    // shared_ptrs whose last owner is another thread; thread_local strings
    // freed at thread exit.
    struct Node {
        std::vector<uint64_t> data;
        explicit Node(size_t n) : data(n) {
            for (size_t i = 0; i < n; i++) data[i] = i * 31 + n;
        }
        bool intact() const {
            for (size_t i = 0; i < data.size(); i++)
                if (data[i] != i * 31 + data.size()) return false;
            return true;
        }
    };
    std::atomic<int> corrupt{0}, tls_ok{0};
    for (int round = 0; round < 20; round++) {
        std::vector<std::shared_ptr<Node>> nodes;
        for (int i = 0; i < 500; i++) nodes.push_back(std::make_shared<Node>(static_cast<size_t>(i % 97) * 13 + 1));
        std::vector<std::thread> t;
        for (int k = 0; k < 4; k++)
            t.emplace_back([k, nodes, &corrupt, &tls_ok] {  // copies: 4 more owners each
                thread_local std::string name;
                name = "worker " + std::to_string(k) + std::string(64, '.');
                for (size_t i = static_cast<size_t>(k); i < nodes.size(); i += 4)
                    if (!nodes[i]->intact()) corrupt++;
                if (name.size() == 7 + std::to_string(k).size() + 64) tls_ok++;
            });
        nodes.clear();  // the threads may hold the last references now
        for (auto &th : t) th.join();
    }
    CHECK(corrupt == 0, "%d shared nodes corrupted", corrupt.load());
    CHECK(tls_ok == 80, "thread_local strings right in %d of 80 threads", tls_ok.load());
}

TEST(aligned_new_and_bad_alloc) {
    struct alignas(64) Line {
        char b[64];
    };
    struct alignas(4096) Page {
        char b[4096];
    };
    std::vector<Line> lines(1000);
    CHECK(reinterpret_cast<uintptr_t>(lines.data()) % 64 == 0, "vector<alignas(64)> data %p", (void *)lines.data());
    std::unique_ptr<Page> page(new Page());
    CHECK(reinterpret_cast<uintptr_t>(page.get()) % 4096 == 0, "new alignas(4096) = %p", (void *)page.get());
    bool threw = false;
    try {
        volatile size_t n = static_cast<size_t>(1) << 50;
        char *p = new char[n];
        p[0] = 1;
        delete[] p;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw, "new char[2^50] did not throw std::bad_alloc");
    char *nothrow = new (std::nothrow) char[static_cast<size_t>(1) << 50];
    CHECK(nothrow == nullptr, "new (nothrow) char[2^50] = %p", (void *)nothrow);
    delete[] nothrow;
}

int main(int argc, char **argv) {
    int rc = RUN_TESTS(argc, argv);
    std::fflush(stdout);
    return rc;
}
