/* abi.c: the C ABI tests of libgoheap-malloc.so (issue #12).
 *
 * Built twice by scripts/malloc-check.sh: plain (run with LD_PRELOAD), and
 * with -DGOHEAP_LINKED linked against the library (-lgoheap-malloc, rpath).
 * The first test proves GoHeap serves this program's malloc either way.
 * Compile with -fno-builtin: the compiler must not fold malloc/free pairs or
 * impossible sizes away, every call has to reach the library.
 *
 *   abi [substring...]   runs the tests whose names contain a substring
 *   abi --list           lists them */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "goheap.h"

/* The tests pass impossible sizes, use a block after a realloc that failed
 * (it stays valid), and call mallinfo on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"


/* ------------------------------------------------------------ the library's extended API
 * Linked: called directly. Preloaded: looked up at start (this binary does not
 * link the library, so it must not name its symbols). */
#ifdef GOHEAP_LINKED
#define G(name) name
#else
static struct {
    int (*goheap_get_stats)(goheap_stats_t *);
    size_t (*goheap_release_free_memory)(void);
    int (*goheap_owns)(const void *);
    const char *(*goheap_version)(void);
    int (*goheap_node_count)(void);
} api;
#define G(name) api.name
__attribute__((constructor(101))) static void find_api(void) {
    api.goheap_get_stats = (int (*)(goheap_stats_t *))dlsym(RTLD_DEFAULT, "goheap_get_stats");
    api.goheap_release_free_memory = (size_t (*)(void))dlsym(RTLD_DEFAULT, "goheap_release_free_memory");
    api.goheap_owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "goheap_owns");
    api.goheap_version = (const char *(*)(void))dlsym(RTLD_DEFAULT, "goheap_version");
    api.goheap_node_count = (int (*)(void))dlsym(RTLD_DEFAULT, "goheap_node_count");
    if (!api.goheap_get_stats || !api.goheap_release_free_memory || !api.goheap_owns || !api.goheap_version ||
        !api.goheap_node_count) {
        check_say("abi: libgoheap-malloc.so is not loaded (run with LD_PRELOAD=.../libgoheap-malloc.so)\n");
        _exit(2);
    }
}
#endif

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
    /* xorshift64*: deterministic, so a failure can be reproduced. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* A size from 1 to max, log-uniform (small sizes as often as large ones). */
static size_t rnd_size(size_t max) {
    int bits = 1;
    while (((size_t)1 << bits) < max) bits++;
    size_t n = (size_t)(rnd() % ((size_t)1 << (1 + rnd() % (uint64_t)bits))) + 1;
    return n > max ? max : n;
}

/* The pattern of block `id`: the 8-byte words id*K + word index, cut at n
 * bytes. Unique per block and per position, so an overlap of two live blocks,
 * or a byte moved by realloc, is seen; and the pattern of n bytes is a prefix
 * of the pattern of more, so a shrunk block verifies against it. */
static void fill(void *p, size_t n, uint64_t id) {
    uint64_t x = id * 0x9E3779B97F4A7C15ull;
    unsigned char *b = (unsigned char *)p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t v = x + i;
        memcpy(b + i * 8, &v, 8);
    }
    uint64_t last = x + words;
    memcpy(b + words * 8, &last, n % 8);
}

/* Offset of the first byte that differs from fill(p, n, id); -1 if none. */
static long verify(const void *p, size_t n, uint64_t id) {
    uint64_t x = id * 0x9E3779B97F4A7C15ull;
    const unsigned char *b = (const unsigned char *)p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t v;
        memcpy(&v, b + i * 8, 8);
        if (v != x + i) return (long)(i * 8);
    }
    uint64_t last = x + words;
    const unsigned char *l = (const unsigned char *)&last;
    for (size_t i = words * 8; i < n; i++)
        if (b[i] != l[i - words * 8]) return (long)i;
    return -1;
}

static int all_bytes(const void *p, size_t n, unsigned char c, size_t *bad) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != c) { *bad = i; return 0; }
    return 1;
}

/* The alignment of an address. Through a volatile: glibc declares
 * aligned_alloc and memalign with alloc_align, which lets the compiler assume
 * the result is aligned and fold this check away. */
static size_t align_of(const void *p) {
    const void *volatile laundered = p;
    uintptr_t a = (uintptr_t)laundered;
    return a ? (size_t)(a & -a) : 0;
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static long vm_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

static goheap_stats_t stats(void) {
    goheap_stats_t s;
    memset(&s, 0, sizeof s);
    G(goheap_get_stats)(&s);
    return s;
}

/* The compiler must believe results are used. */
static void *volatile sink;

/* ------------------------------------------------------------ the library is in charge */

TEST(goheap_serves_malloc) {
    void *p = malloc(100), *q = calloc(3, 33), *r = NULL;
    REQUIRE(p && q, "malloc(100)=%p calloc(3,33)=%p", p, q);
    CHECK(G(goheap_owns)(p), "goheap_owns(malloc(100)=%p) is 0: malloc is not GoHeap's", p);
    CHECK(G(goheap_owns)(q), "goheap_owns(calloc(3,33)=%p) is 0", q);
    CHECK(posix_memalign(&r, 64, 100) == 0 && G(goheap_owns)(r), "posix_memalign block %p not GoHeap's", r);
    const char *v = G(goheap_version)();
    CHECK(v && strncmp(v, "goheap-malloc ", 14) == 0, "goheap_version() = \"%s\"", v ? v : "(null)");
    CHECK(G(goheap_node_count)() >= 1, "goheap_node_count() = %d", G(goheap_node_count)());
    free(p);
    free(q);
    free(r);
}

/* ------------------------------------------------------------ alignment functions */

TEST(posix_memalign_alignments) {
    static const size_t sizes[] = {0, 1, 8, 24, 100, 4096, 40000, 300000};
    for (size_t a = sizeof(void *); a <= ((size_t)2 << 20); a <<= 1) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            void *p = (void *)0x1;
            errno = 1234;
            int rc = posix_memalign(&p, a, sizes[i]);
            CHECK(rc == 0, "posix_memalign(align %zu, size %zu) = %d", a, sizes[i], rc);
            CHECK(errno == 1234, "posix_memalign(align %zu, size %zu) changed errno to %d", a, sizes[i], errno);
            if (rc != 0) continue;
            CHECK(p != NULL && align_of(p) >= a, "posix_memalign(align %zu, size %zu) = %p (aligned to %zu)", a,
                  sizes[i], p, align_of(p));
            size_t u = malloc_usable_size(p);
            CHECK(u >= sizes[i], "posix_memalign(align %zu, size %zu): usable size %zu", a, sizes[i], u);
            fill(p, u, a + i);
            CHECK(verify(p, u, a + i) < 0, "posix_memalign(align %zu, size %zu): block not writable", a, sizes[i]);
            free(p);
        }
    }
}

TEST(posix_memalign_einval) {
    /* 0, not a power of two, or not a multiple of sizeof(void *). */
    static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 100, 4095, ((size_t)1 << 20) + 8, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        void *p = (void *)0x1234;
        errno = 777;
        int rc = posix_memalign(&p, bad[i], 64);
        CHECK(rc == EINVAL, "posix_memalign(align %zu) = %d, expected EINVAL", bad[i], rc);
        CHECK(p == (void *)0x1234, "posix_memalign(align %zu) failed but wrote *memptr = %p", bad[i], p);
        CHECK(errno == 777, "posix_memalign(align %zu) set errno to %d (it returns the error)", bad[i], errno);
    }
    void *p = (void *)0x1234;
    int rc = posix_memalign(&p, 64, SIZE_MAX);
    CHECK(rc == ENOMEM && p == (void *)0x1234, "posix_memalign(64, SIZE_MAX) = %d, p %p", rc, p);
}

TEST(aligned_alloc_alignments) {
    for (size_t a = 1; a <= ((size_t)2 << 20); a <<= 1) {
        size_t sizes[] = {a, 3 * a, a < 64 ? 64 : a};
        for (int i = 0; i < 3; i++) {
            void *p = aligned_alloc(a, sizes[i]);
            CHECK(p != NULL && align_of(p) >= a, "aligned_alloc(%zu, %zu) = %p", a, sizes[i], p);
            if (!p) continue;
            CHECK(malloc_usable_size(p) >= sizes[i], "aligned_alloc(%zu, %zu): usable %zu", a, sizes[i],
                  malloc_usable_size(p));
            memset(p, 0x5a, sizes[i]);
            free(p);
        }
    }
    /* Not a power of two: the library refuses it with EINVAL (glibc 2.38's rule). */
    static const size_t bad[] = {0, 3, 24, 100};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        void *p = aligned_alloc(bad[i], 96);
        CHECK(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 96) = %p, errno %d; expected NULL, EINVAL", bad[i],
              p, errno);
        free(p);
    }
    errno = 0;
    void *p = aligned_alloc(4096, SIZE_MAX - 4095);
    CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(4096, huge) = %p errno %d", p, errno);
}

TEST(memalign_rounds_alignment_up) {
    /* Any alignment is taken and rounded up to a power of two. */
    static const size_t req[][2] = {{0, 1}, {1, 1}, {3, 4}, {5, 8}, {12, 16}, {24, 32}, {100, 128},
                                    {4095, 4096}, {4097, 8192}, {3 << 20, 4 << 20}};
    for (size_t i = 0; i < sizeof req / sizeof *req; i++) {
        void *p = memalign(req[i][0], 200);
        CHECK(p != NULL && align_of(p) >= req[i][1], "memalign(%zu, 200) = %p, expected alignment %zu", req[i][0],
              p, req[i][1]);
        if (p) {
            CHECK(malloc_usable_size(p) >= 200, "memalign(%zu, 200): usable %zu", req[i][0], malloc_usable_size(p));
            memset(p, 1, 200);
        }
        free(p);
    }
    errno = 0;
    void *p = memalign(SIZE_MAX, 10);
    CHECK(p == NULL && errno == EINVAL, "memalign(SIZE_MAX, 10) = %p errno %d", p, errno);
}

TEST(valloc_pvalloc) {
    size_t page = page_size();
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 12345, 100000, 3000000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        void *v = valloc(n);
        CHECK(v != NULL && align_of(v) >= page, "valloc(%zu) = %p, not page aligned", n, v);
        if (v) {
            CHECK(malloc_usable_size(v) >= n, "valloc(%zu): usable %zu", n, malloc_usable_size(v));
            memset(v, 2, n);
        }
        free(v);
        size_t rounded = n == 0 ? page : (n + page - 1) / page * page;
        void *pv = pvalloc(n);
        CHECK(pv != NULL && align_of(pv) >= page, "pvalloc(%zu) = %p, not page aligned", n, pv);
        if (pv) {
            size_t u = malloc_usable_size(pv);
            CHECK(u >= rounded, "pvalloc(%zu): usable %zu, less than the rounded size %zu", n, u, rounded);
            memset(pv, 3, rounded); /* the whole rounded size is the caller's */
        }
        free(pv);
    }
    errno = 0;
    void *p = pvalloc(SIZE_MAX);
    CHECK(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX) = %p errno %d", p, errno);
    errno = 0;
    p = valloc(SIZE_MAX);
    CHECK(p == NULL && errno == ENOMEM, "valloc(SIZE_MAX) = %p errno %d", p, errno);
}

/* ------------------------------------------------------------ malloc results */

#define RING 509

static void check_block(void *p, size_t n, const char *what) {
    size_t want = n > 8 ? 16 : 8;
    CHECK(align_of(p) >= want, "%s(%zu) = %p: aligned to %zu, C needs %zu", what, n, p, align_of(p), want);
    size_t u = malloc_usable_size(p);
    CHECK(u >= n, "%s(%zu) = %p: malloc_usable_size %zu < requested", what, n, p, u);
}

TEST(malloc_sweep_1_to_70000) {
    static void *ring[RING];
    static size_t ring_usable[RING];
    static uint64_t ring_id[RING];
    for (size_t n = 1; n <= 70000; n++) {
        size_t slot = n % RING;
        if (ring[slot]) {
            long bad = verify(ring[slot], ring_usable[slot], ring_id[slot]);
            CHECK(bad < 0, "block %p (request %llu, usable %zu) changed at offset %ld while live: overlap?",
                  ring[slot], (unsigned long long)ring_id[slot], ring_usable[slot], bad);
            free(ring[slot]);
        }
        void *p = malloc(n);
        REQUIRE(p != NULL, "malloc(%zu) returned NULL", n);
        check_block(p, n, "malloc");
        ring[slot] = p;
        ring_usable[slot] = malloc_usable_size(p);
        ring_id[slot] = n;
        fill(p, ring_usable[slot], n);
    }
    for (size_t i = 0; i < RING; i++) {
        if (!ring[i]) continue;
        long bad = verify(ring[i], ring_usable[i], ring_id[i]);
        CHECK(bad < 0, "block %p (request %llu) changed at offset %ld", ring[i], (unsigned long long)ring_id[i], bad);
        free(ring[i]);
        ring[i] = NULL;
    }
}

TEST(malloc_random_sizes_no_overlap) {
    enum { SLOTS = 2000, OPS = 300000 };
    static void *p[SLOTS];
    static size_t usable[SLOTS];
    static uint64_t id[SLOTS];
    uint64_t next_id = 1;
    for (int op = 0; op < OPS; op++) {
        size_t s = (size_t)(rnd() % SLOTS);
        if (p[s]) {
            long bad = verify(p[s], usable[s], id[s]);
            CHECK(bad < 0, "block %p (id %llu, usable %zu) changed at offset %ld while live", p[s],
                  (unsigned long long)id[s], usable[s], bad);
            free(p[s]);
            p[s] = NULL;
            continue;
        }
        /* Mostly small, now and then up to 1 MiB. */
        size_t n = rnd() % 16 == 0 ? rnd_size(1 << 20) : rnd_size(70000);
        void *q;
        int how = (int)(rnd() % 8);
        if (how == 0) {
            q = calloc(1, n);
        } else if (how == 1) {
            size_t a = (size_t)8 << (rnd() % 10);
            if (posix_memalign(&q, a, n) != 0) q = NULL;
            CHECK(q == NULL || align_of(q) >= a, "posix_memalign(%zu, %zu) = %p", a, n, q);
        } else {
            q = malloc(n);
        }
        REQUIRE(q != NULL, "allocation of %zu bytes (kind %d) returned NULL", n, how);
        check_block(q, n, how == 0 ? "calloc" : how == 1 ? "posix_memalign" : "malloc");
        p[s] = q;
        usable[s] = malloc_usable_size(q);
        id[s] = next_id++;
        fill(q, usable[s], id[s]);
    }
    for (int s = 0; s < SLOTS; s++) {
        if (!p[s]) continue;
        CHECK(verify(p[s], usable[s], id[s]) < 0, "block %p changed", p[s]);
        free(p[s]);
        p[s] = NULL;
    }
}

TEST(malloc_zero_unique) {
    enum { N = 1000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(0);
        CHECK(p[i] != NULL, "malloc(0) #%d returned NULL", i);
    }
    /* All distinct: sort a copy of the addresses and compare neighbours. */
    static uintptr_t a[N];
    for (int i = 0; i < N; i++) a[i] = (uintptr_t)p[i];
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0 && a[j - 1] > a[j]; j--) {
            uintptr_t t = a[j];
            a[j] = a[j - 1];
            a[j - 1] = t;
        }
    for (int i = 1; i < N; i++) CHECK(a[i] != a[i - 1], "malloc(0) returned %p twice", (void *)a[i]);
    for (int i = 0; i < N; i++) free(p[i]);
    void *c = calloc(0, 10), *d = calloc(10, 0);
    CHECK(c != NULL && d != NULL && c != d, "calloc(0, 10) = %p, calloc(10, 0) = %p", c, d);
    free(c);
    free(d);
}

TEST(free_null_and_errno) {
    free(NULL);
    /* cfree: glibc keeps it only as a compat symbol; the library exports it. */
    void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    CHECK(cfree_fn != NULL, "cfree is not exported");
    if (cfree_fn) {
        cfree_fn(NULL);
        void *c = malloc(10);
        goheap_stats_t before = stats();
        cfree_fn(c);
        CHECK(stats().frees == before.frees + 1, "cfree(p) did not free p through GoHeap");
    }
    static const size_t sizes[] = {1, 16, 1000, 40000, 300000, 5000000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        void *p = malloc(sizes[i]);
        REQUIRE(p, "malloc(%zu) returned NULL", sizes[i]);
        memset(p, 7, sizes[i]);
        errno = EDOM;
        free(p);
        CHECK(errno == EDOM, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
    }
    errno = ERANGE;
    free(NULL);
    CHECK(errno == ERANGE, "free(NULL) changed errno to %d", errno);
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
}

/* ------------------------------------------------------------ calloc */

TEST(calloc_zeroes_reused_memory) {
    /* Dirty blocks of each kind, free them, then calloc the same sizes: the
     * memory handed back is the dirtied memory, and must read as zero. */
    static const size_t sizes[] = {8, 16, 48, 100, 1000, 4000, 32768, 40000, 200000, 1 << 20, 3 << 20, 9 << 20};
    enum { K = 64 };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        int k = n > 100000 ? 4 : K;
        void *p[K];
        for (int j = 0; j < k; j++) {
            p[j] = malloc(n);
            REQUIRE(p[j], "malloc(%zu) returned NULL", n);
            memset(p[j], 0xA5, malloc_usable_size(p[j]));
        }
        for (int j = 0; j < k; j++) free(p[j]);
        for (int j = 0; j < k; j++) {
            p[j] = calloc(1, n);
            REQUIRE(p[j], "calloc(1, %zu) returned NULL", n);
            size_t bad;
            CHECK(all_bytes(p[j], n, 0, &bad), "calloc(1, %zu) = %p: byte %zu is not zero (reused dirty memory)", n,
                  p[j], bad);
            memset(p[j], 0x5A, n);
        }
        for (int j = 0; j < k; j++) free(p[j]);
        /* The count-times-size form, for odd shapes. */
        void *q = calloc(n / 4 + 1, 4);
        REQUIRE(q, "calloc(%zu, 4) returned NULL", n / 4 + 1);
        size_t bad;
        CHECK(all_bytes(q, (n / 4 + 1) * 4, 0, &bad), "calloc(%zu, 4): byte %zu not zero", n / 4 + 1, bad);
        free(q);
    }
}

TEST(calloc_overflow) {
    static const size_t pairs[][2] = {{SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {SIZE_MAX, SIZE_MAX},
                                      {(size_t)1 << 32, (size_t)1 << 32}, {SIZE_MAX, 2}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        errno = 0;
        void *p = calloc(pairs[i][0], pairs[i][1]);
        CHECK(p == NULL && errno == ENOMEM, "calloc(%zu, %zu) = %p errno %d; expected NULL, ENOMEM", pairs[i][0],
              pairs[i][1], p, errno);
    }
    errno = 0;
    void *p = calloc((size_t)1 << 25, (size_t)1 << 25); /* 2^50: no overflow, far too big */
    CHECK(p == NULL && errno == ENOMEM, "calloc(2^25, 2^25) = %p errno %d", p, errno);
}

/* ------------------------------------------------------------ impossible sizes */

TEST(impossible_sizes_fail_with_enomem) {
    static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, SIZE_MAX / 2, SIZE_MAX / 2 + 1, (size_t)1 << 50,
                                   ((size_t)1 << 47) + 1, (size_t)1 << 48};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        errno = 0;
        void *p = malloc(sizes[i]);
        sink = p;
        CHECK(p == NULL && errno == ENOMEM, "malloc(%zu) = %p errno %d; expected NULL, ENOMEM", sizes[i], p, errno);
        free(p);
        void *q = malloc(16);
        REQUIRE(q, "malloc(16) failed");
        fill(q, 16, 99);
        errno = 0;
        void *r = realloc(q, sizes[i]);
        CHECK(r == NULL && errno == ENOMEM, "realloc(p, %zu) = %p errno %d", sizes[i], r, errno);
        CHECK(verify(q, 16, 99) < 0, "failed realloc(p, %zu) changed the old block", sizes[i]);
        free(r ? r : q);
    }
    /* The heap still works. */
    void *p = malloc(1000);
    CHECK(p != NULL, "malloc(1000) after the failures returned NULL");
    free(p);
}

/* The library refuses a request larger than RAM + swap (256 times that with
 * vm.overcommit_memory=1), as glibc's mmap does under the default overcommit:
 * GoHeap's arena metadata, about 1 MiB touched per GiB asked for, would
 * otherwise call the OOM killer for sizes such as 2^46 instead of returning
 * NULL. */
TEST(requests_beyond_memory_fail) {
    struct sysinfo si;
    REQUIRE(sysinfo(&si) == 0, "sysinfo");
    size_t total = ((size_t)si.totalram + si.totalswap) * si.mem_unit;
    char mode = '0';
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    if (f) {
        mode = (char)fgetc(f);
        fclose(f);
    }
    size_t bound = mode == '1' ? total * 256 : total;
    if (bound >= ((size_t)1 << 47)) {
        check_say("       (info) RAM + swap bound %zu is past 2^47: nothing to test\n", bound);
        return;
    }
    long rss0 = vm_rss_kib();
    size_t over = bound + 4096;
    errno = 0;
    void *p = malloc(over);
    sink = p;
    /* Everything below depends on this one: a library without the bound
     * would touch gigabytes for the larger sizes. */
    REQUIRE(p == NULL && errno == ENOMEM, "malloc(%zu), past RAM + swap (%zu), = %p errno %d", over, bound, p, errno);
    errno = 0;
    p = calloc(over / 4096, 4096);
    CHECK(p == NULL && errno == ENOMEM, "calloc past RAM + swap = %p errno %d", p, errno);
    void *q = NULL;
    CHECK(posix_memalign(&q, 4096, over) == ENOMEM, "posix_memalign past RAM + swap did not fail with ENOMEM");
    CHECK(posix_memalign(&q, (size_t)1 << 44, 64) == ENOMEM || bound > ((size_t)1 << 44),
          "posix_memalign(2^44, 64) needs more address space than RAM + swap, and did not fail with ENOMEM");
    errno = 0;
    p = aligned_alloc(1 << 20, (over + (1 << 20) - 1) & ~(size_t)((1 << 20) - 1));
    CHECK(p == NULL && errno == ENOMEM, "aligned_alloc past RAM + swap = %p errno %d", p, errno);
    free(p);
    char *r = (char *)malloc(100);
    REQUIRE(r, "malloc(100)");
    errno = 0;
    CHECK(realloc(r, over) == NULL && errno == ENOMEM, "realloc past RAM + swap did not fail with ENOMEM");
    free(r);
    if (mode != '1') {
        static const size_t sizes[] = {(size_t)1 << 44, (size_t)1 << 45, (size_t)1 << 46, ((size_t)1 << 47) - 4096};
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            if (sizes[i] <= bound) continue;
            errno = 0;
            p = malloc(sizes[i]);
            sink = p;
            CHECK(p == NULL && errno == ENOMEM, "malloc(%zu) = %p errno %d", sizes[i], p, errno);
            free(p);
        }
    }
    long rss1 = vm_rss_kib();
    CHECK(rss1 - rss0 < 64 * 1024, "the refused requests cost %ld KiB of resident memory", rss1 - rss0);
    /* A big request within the bound works, and costs little until touched. */
    size_t big = (size_t)4 << 30;
    if (big < bound / 2) {
        char *b = (char *)malloc(big);
        CHECK(b != NULL, "malloc(4 GiB) with %zu bytes of RAM + swap returned NULL", bound);
        if (b) {
            b[0] = 1;
            b[big / 2] = 2;
            b[big - 1] = 3;
            CHECK(b[0] + b[big / 2] + b[big - 1] == 6, "4 GiB block not writable");
            free(b);
        }
    }
}

/* A child run with its address space limited to 1 GiB (ulimit -v) before
 * the library starts: the library must start (its internal region shrinks
 * to fit), allocate until the limit, then return NULL with ENOMEM (never
 * trap), and work again once blocks are freed. */
static int address_space_child(void) {
    enum { MAX = 4096 };
    static void *blocks[MAX];
    int n = 0;
    for (; n < MAX; n++) {
        errno = 0;
        blocks[n] = malloc(1 << 20);
        if (!blocks[n]) break;
        memset(blocks[n], 1, 4096);
    }
    if (n == MAX || n < 100 || errno != ENOMEM) {
        check_say("address-space child: %d blocks of 1 MiB under a 1 GiB limit, then errno %d\n", n, errno);
        return 1;
    }
    void *small = malloc(64);
    free(small);
    for (int i = 0; i < n; i++) free(blocks[i]);
    void *again = malloc(1 << 20);
    if (!again) {
        check_say("address-space child: malloc(1 MiB) failed after freeing everything\n");
        return 1;
    }
    free(again);
    printf("%d\n", n);
    return 0;
}

TEST(address_space_limit) {
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        struct rlimit as = {(rlim_t)1 << 30, (rlim_t)1 << 30};
        dup2(fds[1], 1);
        close(fds[0]);
        alarm(60);
        if (setrlimit(RLIMIT_AS, &as) != 0) _exit(3);
        char *args[] = {"abi", "--address-space-child", NULL};
        execv("/proc/self/exe", args);
        _exit(4);
    }
    close(fds[1]);
    char out[64] = "";
    ssize_t r = read(fds[0], out, sizeof out - 1);
    out[r > 0 ? r : 0] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child under a 1 GiB address-space limit %s %d",
          WIFSIGNALED(status) ? "was killed by signal" : "exited with",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    check_say("       (info) under a 1 GiB address-space limit: %ld blocks of 1 MiB, then NULL\n", strtol(out, NULL, 10));
}

/* ------------------------------------------------------------ realloc */

static void realloc_step(void **p, size_t *n, size_t to, uint64_t id, const char *path) {
    void *q = realloc(*p, to);
    REQUIRE(q != NULL, "realloc(%p, %zu) [%s] returned NULL", *p, to, path);
    size_t keep = *n < to ? *n : to;
    long bad = verify(q, keep, id);
    CHECK(bad < 0, "realloc %zu -> %zu [%s]: byte %ld of the kept %zu differs", *n, to, path, bad, keep);
    check_block(q, to, "realloc");
    fill(q, to, id);
    *p = q;
    *n = to;
}

TEST(realloc_keeps_contents_on_every_path) {
    static const struct { size_t from, to; const char *path; } paths[] = {
        {16, 100, "small -> small"},          {100, 24, "small -> smaller"},
        {1, 8, "tiny grow in class"},         {300, 20000, "small -> bigger small"},
        {100, 100000, "small -> large"},      {100000, 40000, "large -> small (32-40K)"},
        {100000, 8 << 20, "large -> huge"},   {8 << 20, 50, "huge -> small"},
        {8 << 20, 100000, "huge -> large"},   {70000, 140000, "large -> large"},
        {3 << 20, 1 << 20, "huge shrink"},    {200000, 150000, "large shrink, in place"},
        {32768, 32769, "largest small -> large"}, {40000, 20, "large -> tiny"},
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        size_t n = paths[i].from;
        void *p = malloc(n);
        REQUIRE(p, "malloc(%zu)", n);
        fill(p, n, 1000 + i);
        realloc_step(&p, &n, paths[i].to, 1000 + i, paths[i].path);
        /* and back */
        realloc_step(&p, &n, paths[i].from, 1000 + i, paths[i].path);
        free(p);
    }
    /* A vector-like growth, by 1.5x from 1 byte to 20 MiB, then shrinking. */
    size_t n = 1;
    void *p = malloc(1);
    fill(p, 1, 7);
    while (n < (20u << 20)) realloc_step(&p, &n, n + n / 2 + 1, 7, "growth chain");
    while (n > 1) realloc_step(&p, &n, n / 3, 7, "shrink chain");
    free(p);
}

TEST(realloc_null_and_zero) {
    goheap_stats_t before = stats();
    void *p = realloc(NULL, 100);
    CHECK(p != NULL && G(goheap_owns)(p), "realloc(NULL, 100) = %p", p);
    memset(p, 1, 100);
    goheap_stats_t mid = stats();
    errno = 0;
    void *q = realloc(p, 0);
    CHECK(q == NULL, "realloc(p, 0) = %p, expected NULL (glibc frees p and returns NULL)", q);
    goheap_stats_t after = stats();
    CHECK(mid.mallocs >= before.mallocs + 1, "realloc(NULL, 100) did not count as a malloc (%zu -> %zu)",
          before.mallocs, mid.mallocs);
    CHECK(after.frees >= mid.frees + 1, "realloc(p, 0) did not free p (frees %zu -> %zu)", mid.frees, after.frees);
    void *big = realloc(NULL, 500000);
    CHECK(big != NULL, "realloc(NULL, 500000) = NULL");
    memset(big, 1, 500000);
    CHECK(realloc(big, 0) == NULL, "realloc(big, 0) not NULL");
}

TEST(realloc_small_in_class_stays) {
    /* A small block that still fits its size class stays where it is. */
    void *p = malloc(40); /* class 48 */
    size_t u = malloc_usable_size(p);
    void *q = realloc(p, u);
    CHECK(q == p, "realloc(%p, %zu) within the class moved to %p", p, u, q);
    void *r = realloc(q, 17);
    CHECK(r == q, "shrinking realloc within the small class moved %p to %p", q, r);
    free(r);
}

TEST(realloc_large_grows_in_place) {
    /* The implementation's promise (Heap.resize, MHeap.growInPlace): a page
     * run grows in place when the pages right after it are free (or at the
     * end of the reserved address space). Make that so: allocate A and B of
     * 64 KiB; when B follows A directly, free B, and growing A to 128 KiB
     * must keep A's address. Also: a block made right after a large free run
     * has been released (fresh address space after it) grows in place. */
    enum { TRIES = 64 };
    char *held[2 * TRIES];
    int nheld = 0, adjacent = 0;
    for (int attempt = 0; attempt < TRIES && adjacent < 3; attempt++) {
        char *a = (char *)malloc(64 << 10), *b = (char *)malloc(64 << 10);
        REQUIRE(a && b, "malloc(64 KiB)");
        if (b == a + malloc_usable_size(a)) {
            adjacent++;
            fill(a, 64 << 10, 5);
            free(b);
            char *g = (char *)realloc(a, 128 << 10);
            CHECK(g == a, "realloc of a 64 KiB block to 128 KiB with the next 64 KiB free moved %p to %p", a, g);
            CHECK(g && verify(g, 64 << 10, 5) < 0, "in-place growth lost the contents");
            CHECK(g && malloc_usable_size(g) >= (128 << 10), "grown block's usable size %zu",
                  g ? malloc_usable_size(g) : 0);
            if (g) memset(g, 1, 128 << 10);
            free(g);
        } else {
            /* Holes left by earlier tests: keep them filled and try again. */
            held[nheld++] = a;
            held[nheld++] = b;
        }
    }
    CHECK(adjacent > 0, "in %d tries, two consecutive 64 KiB blocks were never adjacent: in-place growth untested",
          nheld / 2 + adjacent);
    /* The case of the issue, growing right after allocating, holds when the
     * pages after the new block happen to be free (as they are at the end of
     * the heap, where the holes above are filled): report what happened. */
    char *p = (char *)malloc(64 << 10);
    fill(p, 64 << 10, 6);
    char *g = (char *)realloc(p, 128 << 10);
    CHECK(g && verify(g, 64 << 10, 6) < 0, "64 KiB -> 128 KiB lost the contents");
    check_say("       (info) 64 KiB -> 128 KiB right after malloc: %s; %d holes filled first\n",
              g == p ? "grew in place" : "moved", nheld / 2);
    free(g);
    for (int i = 0; i < nheld; i++) free(held[i]);
}

TEST(reallocarray_overflow) {
    void *p = reallocarray(NULL, 10, 10);
    REQUIRE(p, "reallocarray(NULL, 10, 10) = NULL");
    fill(p, 100, 3);
    errno = 0;
    void *q = reallocarray(p, SIZE_MAX / 2 + 1, 2);
    CHECK(q == NULL && errno == ENOMEM, "reallocarray(p, SIZE_MAX/2+1, 2) = %p errno %d", q, errno);
    CHECK(verify(p, 100, 3) < 0, "failed reallocarray changed the block");
    q = reallocarray(p, 1000, 8);
    CHECK(q != NULL && verify(q, 100, 3) < 0, "reallocarray(p, 1000, 8) = %p lost contents", q);
    free(q ? q : p);
}

/* ------------------------------------------------------------ glibc's extras */

TEST(mallinfo2_trim_mallopt_stats) {
    enum { N = 16384, SIZE = 4000 }; /* 64 MiB in 4000-byte blocks */
    static void *p[N];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        p[i] = malloc(SIZE);
        REQUIRE(p[i], "malloc(%d) #%d", SIZE, i);
        memset(p[i], 0x11, SIZE);
    }
    struct mallinfo2 during = mallinfo2();
    size_t grew = during.uordblks - before.uordblks, want = (size_t)N * SIZE;
    CHECK(during.uordblks > before.uordblks && grew >= want && grew <= want + want / 2,
          "mallinfo2().uordblks grew by %zu after allocating %zu bytes (expected between 1x and 1.5x)", grew, want);
    CHECK(during.arena >= during.uordblks, "mallinfo2(): arena %zu < uordblks %zu", during.arena, during.uordblks);
    struct mallinfo old = mallinfo();
    CHECK(old.uordblks > 0 && old.arena > 0, "mallinfo(): uordblks %d arena %d", old.uordblks, old.arena);
    for (int i = 0; i < N; i++) free(p[i]);
    struct mallinfo2 freed = mallinfo2();
    CHECK(freed.uordblks + want / 2 < during.uordblks, "mallinfo2().uordblks %zu after freeing %zu bytes (was %zu)",
          freed.uordblks, want, during.uordblks);
    int trimmed = malloc_trim(0);
    CHECK(trimmed == 1, "malloc_trim(0) = %d after freeing 64 MiB, expected 1", trimmed);
    CHECK(malloc_trim(0) == 0, "a second malloc_trim(0) with nothing to return should return 0");
    CHECK(mallopt(M_ARENA_MAX, 2) == 1, "mallopt(M_ARENA_MAX, 2) refused");
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt(M_MMAP_THRESHOLD) refused");
    CHECK(mallopt(987654, 1) == 0, "mallopt with an unknown parameter accepted");

    /* malloc_stats writes to stderr: catch it in a pipe. */
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    int saved = dup(2);
    dup2(fds[1], 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[4096];
    ssize_t got = 0, r;
    while ((r = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0) got += r;
    close(fds[0]);
    buf[got > 0 ? got : 0] = 0;
    CHECK(strstr(buf, "system bytes") && strstr(buf, "in use bytes") && strstr(buf, "goheap: mallocs"),
          "malloc_stats() printed: \"%.200s\"", buf);
}

TEST(goheap_get_stats_counts) {
    enum { N = 1000 };
    static void *p[N];
    goheap_stats_t a = stats();
    for (int i = 0; i < N; i++) p[i] = malloc(64);
    void *big = malloc(200000);
    goheap_stats_t b = stats();
    CHECK(b.mallocs - a.mallocs >= N + 1 && b.mallocs - a.mallocs <= N + 10,
          "goheap_get_stats: mallocs went from %zu to %zu after %d mallocs", a.mallocs, b.mallocs, N + 1);
    CHECK(b.heap_alloc >= a.heap_alloc + N * 64 + 200000, "heap_alloc %zu -> %zu", a.heap_alloc, b.heap_alloc);
    CHECK(b.large_allocs >= a.large_allocs + 1, "large_allocs %zu -> %zu after a 200000-byte malloc",
          a.large_allocs, b.large_allocs);
    CHECK(b.large_bytes_inuse >= 200000, "large_bytes_inuse %zu", b.large_bytes_inuse);
    CHECK(b.total_alloc >= a.total_alloc + N * 64, "total_alloc %zu -> %zu", a.total_alloc, b.total_alloc);
    CHECK(b.thread_caches >= 1, "thread_caches %zu", b.thread_caches);
    CHECK(b.heap_sys >= b.heap_inuse && b.heap_inuse > 0, "heap_sys %zu heap_inuse %zu", b.heap_sys, b.heap_inuse);
    for (int i = 0; i < N; i++) free(p[i]);
    free(big);
    goheap_stats_t c = stats();
    CHECK(c.frees - b.frees >= N + 1 && c.frees - b.frees <= N + 10, "frees went from %zu to %zu after %d frees",
          b.frees, c.frees, N + 1);
    CHECK(c.heap_alloc + N * 64 + 200000 <= b.heap_alloc, "heap_alloc %zu -> %zu after the frees", b.heap_alloc,
          c.heap_alloc);
}

static int a_static;

TEST(goheap_owns_and_foreign_pointers) {
    int local = 0;
    void *p = malloc(32), *big = malloc(1 << 20);
    CHECK(G(goheap_owns)(p) && G(goheap_owns)(big), "goheap_owns: %p %p", p, big);
    CHECK(!G(goheap_owns)(&local), "goheap_owns(stack address %p) != 0", (void *)&local);
    CHECK(!G(goheap_owns)(&a_static), "goheap_owns(static address %p) != 0", (void *)&a_static);
    CHECK(!G(goheap_owns)(NULL), "goheap_owns(NULL) != 0");
    CHECK(!G(goheap_owns)((void *)&malloc), "goheap_owns(code address) != 0");
    void *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED && !G(goheap_owns)(m), "goheap_owns(mmap'd page %p) != 0", m);
    munmap(m, 1 << 16);
    free(p);
    free(big);

    /* A foreign block: glibc's own malloc, reached through libc's handle
     * (the program's malloc is GoHeap's). free, realloc and
     * malloc_usable_size must pass it to glibc. */
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    REQUIRE(libc, "dlopen(libc.so.6, RTLD_NOLOAD): %s", dlerror());
    void *(*glibc_malloc)(size_t) = (void *(*)(size_t))dlsym(libc, "malloc");
    REQUIRE(glibc_malloc && glibc_malloc != &malloc, "glibc's malloc not found apart from GoHeap's");
    for (int i = 0; i < 100; i++) {
        size_t n = 10 + (size_t)i * 997;
        char *f = (char *)glibc_malloc(n);
        REQUIRE(f, "glibc malloc(%zu)", n);
        CHECK(!G(goheap_owns)(f), "goheap_owns(glibc block %p) != 0", (void *)f);
        fill(f, n, 4242 + (uint64_t)i);
        CHECK(malloc_usable_size(f) >= n, "malloc_usable_size(glibc block of %zu) = %zu", n, malloc_usable_size(f));
        char *g = (char *)realloc(f, n * 2);
        REQUIRE(g, "realloc(glibc block, %zu) = NULL", n * 2);
        CHECK(verify(g, n, 4242 + (uint64_t)i) < 0, "realloc of a glibc block lost its contents");
        CHECK(!G(goheap_owns)(g), "realloc of a glibc block %p moved it into GoHeap (%p): glibc's free would get it", (void *)f,
              (void *)g);
        errno = EDOM;
        free(g);
        CHECK(errno == EDOM, "free of a foreign block changed errno to %d", errno);
    }
    dlclose(libc);
}

/* ------------------------------------------------------------ threads */

static volatile int stop_threads;

static void *churn(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    enum { S = 256 };
    void *p[S] = {0};
    size_t n[S] = {0};
    while (!__atomic_load_n(&stop_threads, __ATOMIC_RELAXED)) {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        uint64_t r = seed * 2685821657736338717ull;
        int s = (int)(r % S);
        if (p[s]) {
            if (verify(p[s], n[s], (uint64_t)s + 77) >= 0) {
                check_say("FAIL churn thread: block %p of %zu bytes corrupted\n", p[s], n[s]);
                abort();
            }
            free(p[s]);
            p[s] = NULL;
        } else {
            n[s] = (r >> 20) % 64 == 0 ? (size_t)((r >> 30) % 300000) + 1 : (size_t)((r >> 30) % 2000) + 1;
            p[s] = malloc(n[s]);
            if (!p[s]) abort();
            fill(p[s], n[s], (uint64_t)s + 77);
        }
    }
    for (int s = 0; s < S; s++) free(p[s]);
    return NULL;
}

TEST(fork_while_threads_allocate) {
    enum { THREADS = 4, FORKS = 200 };
    pthread_t t[THREADS];
    stop_threads = 0;
    for (int i = 0; i < THREADS; i++) REQUIRE(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1)) == 0, "pthread_create");
    int bad = 0;
    for (int f = 0; f < FORKS; f++) {
        void *before = malloc(1000);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20); /* a deadlock in the child shows as SIGALRM */
            void *blocks[300];
            for (int i = 0; i < 300; i++) {
                size_t n = (size_t)(i * 37 % 5000) + 1 + (i % 50 == 0 ? 200000 : 0);
                blocks[i] = malloc(n);
                if (!blocks[i]) _exit(3);
                fill(blocks[i], n, (uint64_t)i);
            }
            for (int i = 0; i < 300; i++) {
                size_t n = (size_t)(i * 37 % 5000) + 1 + (i % 50 == 0 ? 200000 : 0);
                if (verify(blocks[i], n, (uint64_t)i) >= 0) _exit(4);
                free(blocks[i]);
            }
            free(before); /* a block the parent made before the fork */
            /* A thread in the child, too (its cache is new). */
            pthread_t c;
            if (f % 10 == 0) {
                stop_threads = 0;
                if (pthread_create(&c, NULL, churn, (void *)(uintptr_t)99) != 0) _exit(5);
                usleep(2000);
                stop_threads = 1;
                pthread_join(c, NULL);
            }
            exit(0);
        }
        free(before);
        REQUIRE(pid > 0, "fork failed: %s", strerror(errno));
        int status = 0;
        pid_t w = waitpid(pid, &status, 0);
        if (w != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            bad++;
            CHECK(0, "fork #%d: child %s %d", f, WIFSIGNALED(status) ? "killed by signal" : "exited with",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        }
    }
    __atomic_store_n(&stop_threads, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(bad == 0, "%d of %d fork children failed", bad, FORKS);
}

static void *short_lived(void *arg) {
    uintptr_t k = (uintptr_t)arg;
    void *p[20];
    for (int i = 0; i < 20; i++) {
        size_t n = (size_t)((k * 31 + (uintptr_t)i * 97) % 3000) + 1;
        if (i == 0 && k % 16 == 0) n = 100000;
        p[i] = malloc(n);
        if (!p[i]) abort();
        memset(p[i], (int)k, n);
    }
    for (int i = 0; i < 20; i++) free(p[i]);
    return NULL;
}

TEST(ten_thousand_short_lived_threads) {
    enum { TOTAL = 10000, BATCH = 8 };
    /* Warm up a first batch so the baseline includes the steady state. */
    for (int i = 0; i < BATCH; i++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, short_lived, (void *)(uintptr_t)i) == 0, "pthread_create");
        pthread_join(t, NULL);
    }
    long rss0 = vm_rss_kib();
    goheap_stats_t s0 = stats();
    for (int done = 0; done < TOTAL; done += BATCH) {
        pthread_t t[BATCH];
        for (int i = 0; i < BATCH; i++)
            REQUIRE(pthread_create(&t[i], NULL, short_lived, (void *)(uintptr_t)(done + i)) == 0, "pthread_create #%d",
                    done + i);
        for (int i = 0; i < BATCH; i++) pthread_join(t[i], NULL);
    }
    long rss1 = vm_rss_kib();
    goheap_stats_t s1 = stats();
    check_say("       (info) VmRSS %ld KiB -> %ld KiB, thread caches %zu -> %zu, heap_sys %zu -> %zu\n", rss0, rss1,
              s0.thread_caches, s1.thread_caches, s0.heap_sys, s1.heap_sys);
    CHECK(rss1 - rss0 < 64 * 1024, "VmRSS grew from %ld KiB to %ld KiB over %d short-lived threads", rss0, rss1, TOTAL);
    CHECK(s1.thread_caches <= s0.thread_caches + 2 * BATCH,
          "thread caches went from %zu to %zu: exited threads' caches are kept", s0.thread_caches, s1.thread_caches);
    CHECK(s1.mallocs - s0.mallocs >= (size_t)TOTAL * 20, "mallocs grew by %zu only", s1.mallocs - s0.mallocs);
}

/* pthread key destructors run after GoHeap's own (its key is made first, when
 * the library starts): a destructor that allocates makes the thread a new
 * cache, which the library's destructor must take back on glibc's next
 * round. Blocks made there stay valid after the thread is gone. */
static pthread_key_t late_key;
static void *late_kept[2000];
static int late_count;
static pthread_mutex_t late_mutex = PTHREAD_MUTEX_INITIALIZER;

static void late_destructor(void *v) {
    free(v);
    char *big = (char *)malloc(50000);
    if (big) memset(big, 3, 50000);
    free(big);
    char *keep = (char *)malloc(100);
    if (!keep) return;
    fill(keep, 100, 31337);
    pthread_mutex_lock(&late_mutex);
    if (late_count < 2000) late_kept[late_count++] = keep;
    else free(keep);
    pthread_mutex_unlock(&late_mutex);
}

static void *late_body(void *arg) {
    (void)arg;
    pthread_setspecific(late_key, malloc(64));
    return NULL;
}

TEST(allocation_in_late_key_destructors) {
    REQUIRE(pthread_key_create(&late_key, late_destructor) == 0, "pthread_key_create");
    goheap_stats_t s0 = stats();
    for (int i = 0; i < 2000; i++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, late_body, NULL) == 0, "pthread_create");
        pthread_join(t, NULL);
    }
    goheap_stats_t s1 = stats();
    CHECK(late_count == 2000, "%d of 2000 key destructors kept a block", late_count);
    CHECK(s1.thread_caches <= s0.thread_caches + 1,
          "thread caches %zu -> %zu: caches made in key destructors are kept after their threads", s0.thread_caches,
          s1.thread_caches);
    CHECK(s1.large_allocs - s0.large_allocs >= 2000, "large allocations in destructors counted %zu of 2000",
          s1.large_allocs - s0.large_allocs);
    for (int i = 0; i < late_count; i++) {
        CHECK(verify(late_kept[i], 100, 31337) < 0, "block %p made in a key destructor changed", late_kept[i]);
        free(late_kept[i]);
    }
    pthread_key_delete(late_key);
}

/* A bounded queue of blocks handed from producers to consumers. */
enum { QCAP = 1024 };
static struct {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    void *item[QCAP];
    size_t len[QCAP];
    uint64_t id[QCAP];
    int head, count, producers_left;
} q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, {0}, {0}, 0, 0, 0};
static long consumer_errors;

static void *producer(void *arg) {
    uint64_t base = (uint64_t)(uintptr_t)arg << 40;
    for (uint64_t i = 0; i < 100000; i++) {
        uint64_t id = base + i;
        size_t n = (size_t)((id * 2654435761u) % 4000) + 1;
        if (i % 200 == 0) n = 50000 + (size_t)(i % 7) * 30000;
        void *p = malloc(n);
        if (!p) abort();
        fill(p, n, id);
        pthread_mutex_lock(&q.m);
        while (q.count == QCAP) pthread_cond_wait(&q.not_full, &q.m);
        int t = (q.head + q.count) % QCAP;
        q.item[t] = p;
        q.len[t] = n;
        q.id[t] = id;
        q.count++;
        pthread_cond_signal(&q.not_empty);
        pthread_mutex_unlock(&q.m);
    }
    pthread_mutex_lock(&q.m);
    q.producers_left--;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.m);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (uint64_t k = 0;; k++) {
        pthread_mutex_lock(&q.m);
        while (q.count == 0 && q.producers_left > 0) pthread_cond_wait(&q.not_empty, &q.m);
        if (q.count == 0) {
            pthread_mutex_unlock(&q.m);
            return NULL;
        }
        void *p = q.item[q.head];
        size_t n = q.len[q.head];
        uint64_t id = q.id[q.head];
        q.head = (q.head + 1) % QCAP;
        q.count--;
        pthread_cond_signal(&q.not_full);
        pthread_mutex_unlock(&q.m);
        if (verify(p, n, id) >= 0) __atomic_fetch_add(&consumer_errors, 1, __ATOMIC_RELAXED);
        if (k % 16 == 0) {
            /* realloc of a block another thread made, then free */
            p = realloc(p, n + 5000);
            if (!p || verify(p, n, id) >= 0) __atomic_fetch_add(&consumer_errors, 1, __ATOMIC_RELAXED);
        }
        free(p);
    }
}

TEST(cross_thread_frees) {
    enum { P = 2, C = 2 };
    pthread_t pt[P], ct[C];
    q.producers_left = P;
    goheap_stats_t s0 = stats();
    for (int i = 0; i < C; i++) REQUIRE(pthread_create(&ct[i], NULL, consumer, NULL) == 0, "pthread_create");
    for (int i = 0; i < P; i++) REQUIRE(pthread_create(&pt[i], NULL, producer, (void *)(uintptr_t)(i + 1)) == 0, "pthread_create");
    for (int i = 0; i < P; i++) pthread_join(pt[i], NULL);
    for (int i = 0; i < C; i++) pthread_join(ct[i], NULL);
    goheap_stats_t s1 = stats();
    CHECK(consumer_errors == 0, "%ld blocks arrived corrupted at the consuming thread", consumer_errors);
    CHECK(q.count == 0, "%d blocks left in the queue", q.count);
    CHECK(s1.frees - s0.frees >= (size_t)P * 100000, "frees grew by %zu, expected at least %d", s1.frees - s0.frees,
          P * 100000);
}

/* ------------------------------------------------------------ error behaviour */

static int addr_fd = -1;

/* Runs `fn` in a child whose stderr goes to a pipe; expects SIGABRT and a
 * line starting "fatal error: goheap:" that names the address `fn` reports
 * through its return value. */
static void expect_fatal(const char *what, void *(*fn)(void)) {
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    int addr_pipe[2];
    REQUIRE(pipe(addr_pipe) == 0, "pipe");
    addr_fd = addr_pipe[1];
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        close(fds[0]);
        close(addr_pipe[0]);
        dup2(fds[1], 2);
        alarm(20);
        fn(); /* writes the address it will misuse to addr_fd, then misuses it */
        _exit(0);
    }
    close(fds[1]);
    close(addr_pipe[1]);
    char out[8192];
    ssize_t got = 0, r;
    while ((r = read(fds[0], out + got, sizeof out - 1 - (size_t)got)) > 0) got += r;
    close(fds[0]);
    out[got > 0 ? got : 0] = 0;
    char addr[64] = "";
    r = read(addr_pipe[0], addr, sizeof addr - 1);
    addr[r > 0 ? r : 0] = 0;
    close(addr_pipe[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: child %s %d, expected SIGABRT; stderr: \"%.300s\"", what,
          WIFSIGNALED(status) ? "killed by signal" : "exited with",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), out);
    const char *line = strstr(out, "fatal error: goheap:");
    CHECK(line && (line == out || line[-1] == '\n'), "%s: stderr has no line starting \"fatal error: goheap:\": \"%.300s\"",
          what, out);
    CHECK(addr[0] && line && strstr(line, addr), "%s: the message does not name the address %s: \"%.300s\"", what, addr,
          out);
    check_say("       (info) %s: %.*s", what, (int)(line && strchr(line, '\n') ? strchr(line, '\n') - line + 1 : 0),
              line ? line : "");
}

static void report_addr(const void *p) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%p", p);
    if (write(addr_fd, buf, (size_t)n) < 0) _exit(9);
    close(addr_fd);
}

static void *double_free_small(void) {
    char *p = (char *)malloc(40);
    report_addr(p);
    free(p);
    free(p);
    return NULL;
}

static void *interior_free(void) {
    char *p = (char *)malloc(64);
    report_addr(p + 16);
    free(p + 16);
    return NULL;
}

static void *interior_free_large(void) {
    char *p = (char *)malloc(300000);
    report_addr(p + 8192);
    free(p + 8192);
    return NULL;
}

static void *double_free_large(void) {
    char *p = (char *)malloc(1 << 20);
    memset(p, 1, 1 << 20);
    report_addr(p);
    free(p);
    free(p);
    return NULL;
}

static void *realloc_of_freed(void) {
    char *p = (char *)malloc(100);
    report_addr(p);
    free(p);
    p = (char *)realloc(p, 200);
    return p;
}

TEST(fatal_errors_abort_with_message) {
    expect_fatal("double free of a small block", double_free_small);
    expect_fatal("free of an interior pointer", interior_free);
    expect_fatal("free of an interior pointer of a large block", interior_free_large);
    expect_fatal("double free of a large block", double_free_large);
    expect_fatal("realloc of a freed block", realloc_of_freed);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--address-space-child") == 0) return address_space_child();
    return RUN_TESTS(argc, argv);
}
