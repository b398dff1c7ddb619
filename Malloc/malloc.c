// libgoheap-malloc: the C allocation ABI over GoHeap.
//
// This file owns C's contracts; Malloc.swift owns the heap. What it adds:
//
// Re-entry. GoHeap's Swift code allocates now and then itself (a class for a
// thread's cache, an array in the registry), and that goes through malloc:
// this malloc. Every call into Swift raises a per-thread counter
// (goheap_runtime_depth, shared with CShims, which raises it around the
// thread-exit and fork callbacks too). Any malloc made while it is raised, or
// before the heap exists, is served by the internal allocator below, from a
// region of its own. free, realloc and malloc_usable_size decide by address,
// never by the counter: the internal region, then GoHeap's arenas, else the
// next allocator in the chain.
//
// Foreign pointers. Blocks GoHeap did not hand out (the dynamic loader's
// early allocations, or memory from before the library took over) are passed
// to the next definition of free/realloc/malloc_usable_size (dlsym RTLD_NEXT,
// usually glibc's), which handles them as it would have. A pointer inside
// GoHeap's arenas that is not a live block stops the program with GoHeap's
// message naming the address and its span.
//
// C's rules kept here: blocks over 8 bytes are 16-byte aligned; malloc(0) is a
// unique pointer; free(NULL) does nothing; realloc(p, 0) frees p and returns
// NULL (glibc's choice); calloc and reallocarray check the multiplication;
// failures return NULL with errno ENOMEM, never a trap, and so does a request
// larger than RAM + swap (max_request below); posix_memalign returns EINVAL
// for a bad alignment and leaves errno alone; free preserves errno.
//
// Memory is returned to the OS from the allocator's slow paths (no thread is
// started unless GOHEAP_SCAVENGER=background), and huge-page arenas are off
// unless GOHEAP_HUGE_THRESHOLD asks for them: this is someone else's process.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "goheap.h"

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

extern __thread unsigned goheap_runtime_depth __attribute__((tls_model("initial-exec")));

// Malloc.swift
void *goheap_swift_malloc_fast(ptrdiff_t n);
int32_t goheap_swift_free_fast(void *p);
void *goheap_swift_malloc(ptrdiff_t n);
bool goheap_swift_free(void *p);
bool goheap_swift_owns(const void *p);
void *goheap_swift_calloc(ptrdiff_t n);
void *goheap_swift_memalign(ptrdiff_t alignment, ptrdiff_t n);
void *goheap_swift_realloc(void *p, ptrdiff_t n);
ptrdiff_t goheap_swift_usable_size(const void *p);
void goheap_swift_init(ptrdiff_t limit, ptrdiff_t huge, ptrdiff_t numa_kind, ptrdiff_t numa_node, bool background);
void goheap_swift_stats(ptrdiff_t *out);
ptrdiff_t goheap_swift_release(void);
void goheap_swift_set_memory_limit(ptrdiff_t bytes);
int32_t goheap_swift_set_allocation_node(ptrdiff_t node);
ptrdiff_t goheap_swift_node_count(void);

#define ENTER() (goheap_runtime_depth++)
#define LEAVE() (goheap_runtime_depth--)

// ------------------------------------------------------------ diagnostics

// Where messages go: stderr, or a duplicate of it made at start when stats
// or verbose output were asked for (some programs, coreutils among them,
// close stderr before they exit, and the stats line is written after that).
static int say_fd = 2;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    // No stdio buffers (they allocate); a formatted line, one write.
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(say_fd, buf + off, (size_t)(n - off));
        if (w <= 0) break;
        off += w;
    }
}

// ------------------------------------------------------------ internal allocator
//
// Serves the allocations made while GoHeap's own code runs, and any made
// before the heap exists. They are few (per thread: a cache block; per heap:
// a few arrays), so the design is plain: power-of-two classes with LIFO free
// lists under one spin lock, carved from one reserved region that is made
// accessible 1 MiB at a time. A 16-byte header before each block holds its
// class and its offset from the block's start (for aligned requests).
// Blocks of 64 KiB and more give their pages back when freed.

// The region's size: 4 GiB of address space, or less when the process's
// address space is limited (ulimit -v): halved until the reservation
// succeeds, down to 16 MiB. Set before internal_base is published.
#define INTERNAL_RESERVE_MAX (1ull << 32)
#define INTERNAL_RESERVE_MIN (1ull << 24)
#define INTERNAL_COMMIT_STEP (1u << 20)
#define INTERNAL_MIN_SHIFT 5
#define INTERNAL_CLASSES 40

typedef struct internal_header {
    uint32_t shift;   // block size is 1 << shift
    uint32_t offset;  // user pointer minus block start
    uint64_t magic;
} internal_header;

#define INTERNAL_MAGIC 0x676f68656170696eull

static char *internal_base;
static size_t internal_reserve;
static size_t internal_bump, internal_committed;
static void *internal_free_lists[INTERNAL_CLASSES];
static volatile int internal_lock_word;

static void internal_lock(void) {
    while (__atomic_exchange_n(&internal_lock_word, 1, __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&internal_lock_word, __ATOMIC_RELAXED)) sched_yield();
    }
}
static void internal_unlock(void) { __atomic_store_n(&internal_lock_word, 0, __ATOMIC_RELEASE); }

static inline bool internal_owns(const void *p) {
    char *b = __atomic_load_n(&internal_base, __ATOMIC_ACQUIRE);
    return b && (uintptr_t)p - (uintptr_t)b < internal_reserve;
}

static void *internal_alloc(size_t n, size_t align) {
    if (align < 16) align = 16;
    if (n > (1ull << 30) || align > (1u << 20)) { errno = ENOMEM; return NULL; }
    size_t need = n + sizeof(internal_header) + (align > 16 ? align : 0);
    unsigned shift = INTERNAL_MIN_SHIFT;
    while (((size_t)1 << shift) < need) shift++;
    size_t size = (size_t)1 << shift;
    internal_lock();
    if (!internal_base) {
        void *r = MAP_FAILED;
        size_t reserve = INTERNAL_RESERVE_MAX;
        for (; reserve >= INTERNAL_RESERVE_MIN; reserve /= 2) {
            r = mmap(NULL, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (r != MAP_FAILED) break;
        }
        if (r == MAP_FAILED) { internal_unlock(); errno = ENOMEM; return NULL; }
        internal_reserve = reserve;
        __atomic_store_n(&internal_base, (char *)r, __ATOMIC_RELEASE);
    }
    char *block = internal_free_lists[shift];
    if (block) {
        internal_free_lists[shift] = *(void **)block;
    } else {
        // Blocks are aligned to their size (up to the region's alignment),
        // so aligned requests find their boundary inside them.
        size_t start = (internal_bump + size - 1) & ~(size - 1);
        if (start + size > internal_reserve) { internal_unlock(); errno = ENOMEM; return NULL; }
        if (start + size > internal_committed) {
            size_t end = (start + size + INTERNAL_COMMIT_STEP - 1) & ~(size_t)(INTERNAL_COMMIT_STEP - 1);
            if (mprotect(internal_base + internal_committed, end - internal_committed, PROT_READ | PROT_WRITE) != 0) {
                internal_unlock();
                errno = ENOMEM;
                return NULL;
            }
            internal_committed = end;
        }
        block = internal_base + start;
        internal_bump = start + size;
    }
    internal_unlock();
    uintptr_t user = ((uintptr_t)block + sizeof(internal_header) + align - 1) & ~(uintptr_t)(align - 1);
    internal_header *h = (internal_header *)user - 1;
    h->shift = shift;
    h->offset = (uint32_t)(user - (uintptr_t)block);
    h->magic = INTERNAL_MAGIC;
    return (void *)user;
}

static internal_header *internal_header_of(const void *p) {
    internal_header *h = (internal_header *)p - 1;
    if (((uintptr_t)p & 15) != 0 || h->magic != INTERNAL_MAGIC || h->shift >= INTERNAL_CLASSES) {
        say("fatal error: goheap: invalid free of %p: inside the allocator's internal region, but not a live block (double free?)\n", p);
        abort();
    }
    return h;
}

static size_t internal_usable(const void *p) {
    internal_header *h = internal_header_of(p);
    return ((size_t)1 << h->shift) - h->offset;
}

static void internal_free(void *p) {
    internal_header *h = internal_header_of(p);
    unsigned shift = h->shift;
    char *block = (char *)p - h->offset;
    h->magic = 0;
    if (shift >= 16) madvise(block + 4096, ((size_t)1 << shift) - 4096, MADV_DONTNEED);
    internal_lock();
    *(void **)block = internal_free_lists[shift];
    internal_free_lists[shift] = block;
    internal_unlock();
}

static void internal_atfork_prepare(void) { internal_lock(); }
static void internal_atfork_parent(void) { internal_unlock(); }
static void internal_atfork_child(void) { internal_lock_word = 0; }

// ------------------------------------------------------------ the next allocator

static void (*next_free)(void *);
static void *(*next_realloc)(void *, size_t);
static size_t (*next_usable_size)(void *);
static size_t foreign_frees;

static void find_next(void) {
    if (next_free) return;
    ENTER();
    void *r = dlsym(RTLD_NEXT, "realloc");
    void *u = dlsym(RTLD_NEXT, "malloc_usable_size");
    void *f = dlsym(RTLD_NEXT, "free");
    LEAVE();
    __atomic_store_n(&next_realloc, r, __ATOMIC_RELAXED);
    __atomic_store_n(&next_usable_size, u, __ATOMIC_RELAXED);
    __atomic_store_n(&next_free, f, __ATOMIC_RELEASE);
}

static void foreign_free(void *p) {
    find_next();
    __atomic_fetch_add(&foreign_frees, 1, __ATOMIC_RELAXED);
    // No next allocator (a static link): the block is left alone.
    if (next_free) next_free(p);
}

// ------------------------------------------------------------ configuration and start

// The largest block served. GoHeap reserves address space without committing
// it, but keeps per-arena metadata that is touched: about 1 MiB per GiB asked
// for, so malloc(1 << 46) would touch 64 GiB and bring the OOM killer rather
// than return NULL. glibc's malloc gets NULL from mmap there: under the
// kernel's default (heuristic) overcommit, and its strict mode, a mapping
// larger than RAM + swap is refused. So is a request here, with ENOMEM. When
// overcommit is always allowed (vm.overcommit_memory=1) the bound is 256 times
// that (its metadata a quarter of RAM). Until the heap exists: GoHeap's own
// bound, 2^47.
static size_t max_request = (size_t)1 << 47;

static size_t request_bound(void) {
    struct sysinfo si;
    if (sysinfo(&si) != 0 || si.mem_unit == 0) return (size_t)1 << 47;
    unsigned __int128 total = ((unsigned __int128)si.totalram + si.totalswap) * si.mem_unit;
    char mode = '0';
    int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &mode, 1) != 1) mode = '0';
        close(fd);
    }
    if (mode == '1') total *= 256;
    if (total == 0 || total > ((unsigned __int128)1 << 47)) return (size_t)1 << 47;
    return (size_t)total;
}

enum { UNINIT = 0, STARTING = 1, READY = 2 };
static int state;
static bool show_stats, verbose;

static bool parse_size(const char *s, long long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || v < 0 || end == s) return false;
    long long mult = 1;
    if (*end == 'K' || *end == 'k') { mult = 1ll << 10; end++; }
    else if (*end == 'M' || *end == 'm') { mult = 1ll << 20; end++; }
    else if (*end == 'G' || *end == 'g') { mult = 1ll << 30; end++; }
    if (mult > 1 && (*end == 'i' || *end == 'I') && (end[1] == 'B' || end[1] == 'b')) end += 2;
    else if (mult > 1 && (*end == 'B' || *end == 'b')) end++;
    if (*end) return false;
    if (v > (1ll << 47) / mult) return false;
    *out = v * mult;
    return true;
}

static void start_heap(void) {
    int saved = errno;
    long long limit = -1, huge = 0;
    long numa_kind = 0, numa_node = 0;
    bool background = false;
    const char *v;
    show_stats = (v = getenv("GOHEAP_SHOW_STATS")) && *v && strcmp(v, "0") != 0;
    verbose = (v = getenv("GOHEAP_VERBOSE")) && *v && strcmp(v, "0") != 0;
    if (show_stats || verbose) {
        int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
        if (fd >= 0) say_fd = fd;
    }
    if ((v = getenv("GOHEAP_MEMORY_LIMIT")) && *v && !parse_size(v, &limit)) {
        say("goheap: GOHEAP_MEMORY_LIMIT=%s is not a byte count (e.g. 512M, 2GiB); no limit set\n", v);
        limit = -1;
    }
    if ((v = getenv("GOHEAP_HUGE_THRESHOLD")) && *v && strcmp(v, "off") != 0) {
        if (!parse_size(v, &huge) || (huge != 0 && huge <= 32768)) {
            say("goheap: GOHEAP_HUGE_THRESHOLD=%s must be a byte count above 32768 (e.g. 4M), or 0/off; huge pages stay off\n", v);
            huge = 0;
        }
    }
    if ((v = getenv("GOHEAP_NUMA")) && *v) {
        char *end = NULL;
        if (strcmp(v, "local") == 0) numa_kind = 0;
        else if (strcmp(v, "firsttouch") == 0) numa_kind = 1;
        else if (strcmp(v, "interleave") == 0) numa_kind = 4;
        else if (strncmp(v, "bind:", 5) == 0 && (numa_node = strtol(v + 5, &end, 10), end != v + 5 && !*end && numa_node >= 0)) numa_kind = 2;
        else if (strncmp(v, "preferred:", 10) == 0 && (numa_node = strtol(v + 10, &end, 10), end != v + 10 && !*end && numa_node >= 0)) numa_kind = 3;
        else {
            say("goheap: GOHEAP_NUMA=%s is not one of local, firsttouch, interleave, bind:N, preferred:N; using local\n", v);
            numa_kind = 0;
            numa_node = 0;
        }
    }
    if ((v = getenv("GOHEAP_SCAVENGER")) && *v) {
        if (strcmp(v, "background") == 0) background = true;
        else if (strcmp(v, "slowpath") != 0) say("goheap: GOHEAP_SCAVENGER=%s is not background or slowpath; using slowpath\n", v);
    }
    max_request = request_bound();
    pthread_atfork(internal_atfork_prepare, internal_atfork_parent, internal_atfork_child);
    ENTER();
    goheap_swift_init((ptrdiff_t)limit, (ptrdiff_t)huge, numa_kind, numa_node, background);
    LEAVE();
    if (verbose) {
        say("goheap: %s, memory limit %lld, huge threshold %lld, largest block %zu, NUMA %s (%ld node%s), scavenging %s\n",
            goheap_version(), limit, huge, max_request, getenv("GOHEAP_NUMA") ? getenv("GOHEAP_NUMA") : "local",
            (long)goheap_swift_node_count(), goheap_swift_node_count() == 1 ? "" : "s", background ? "in the background" : "on slow paths");
    }
    errno = saved;
}

// Returns true when the heap is ready (making it if nobody has).
static bool ensure_heap(void) {
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (s == READY) return true;
    if (s == UNINIT) {
        int expected = UNINIT;
        if (__atomic_compare_exchange_n(&state, &expected, STARTING, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            start_heap();
            __atomic_store_n(&state, READY, __ATOMIC_RELEASE);
            return true;
        }
    }
    // Another thread is making the heap: the internal allocator serves
    // meanwhile (the extended API waits instead).
    return false;
}

// True when this call may go to the heap: not from inside GoHeap's own code,
// and the heap exists.
static inline bool use_heap(void) {
    if (LIKELY(goheap_runtime_depth == 0 && __atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY)) return true;
    return goheap_runtime_depth == 0 && ensure_heap();
}

static void wait_for_heap(void) {
    while (!ensure_heap()) sched_yield();
}

__attribute__((constructor)) static void goheap_malloc_init(void) {
    if (goheap_runtime_depth == 0) (void)ensure_heap();
}

static void format_bytes(char *buf, size_t len, size_t b) {
    if (b >= (1ull << 30)) snprintf(buf, len, "%.1f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20)) snprintf(buf, len, "%.1f MiB", (double)b / (1ull << 20));
    else if (b >= (1ull << 10)) snprintf(buf, len, "%.1f KiB", (double)b / (1ull << 10));
    else snprintf(buf, len, "%zu B", b);
}

__attribute__((destructor)) static void goheap_malloc_fini(void) {
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != READY) return;
    if (show_stats) {
        goheap_stats_t s;
        goheap_get_stats(&s);
        char inuse[32], sys[32], rel[32], total[32];
        format_bytes(inuse, sizeof inuse, s.heap_alloc);
        format_bytes(sys, sizeof sys, s.heap_sys);
        format_bytes(rel, sizeof rel, s.released_total);
        format_bytes(total, sizeof total, s.total_alloc);
        say("goheap: stats: mallocs %zu, frees %zu, live %s, allocated in total %s, heap %s, "
            "returned to the OS %s, thread caches %zu, blocks over 32 KiB %zu, pid %d\n",
            s.mallocs, s.frees, inuse, total, sys, rel, s.thread_caches, s.large_allocs, (int)getpid());
    }
    if (verbose) say("goheap: %zu frees of foreign pointers went to the next allocator\n", foreign_frees);
}

// ------------------------------------------------------------ the C ABI

// The fast paths call Swift without raising the re-entry counter: the Swift
// fast entry points never allocate (see Malloc.swift). Everything else goes
// through the guarded full entry points, out of line.
static __attribute__((noinline)) void *malloc_slow(size_t n) {
    if (UNLIKELY(n > max_request)) { errno = ENOMEM; return NULL; }
    if (!use_heap()) return internal_alloc(n, 16);
    ENTER();
    void *p = goheap_swift_malloc((ptrdiff_t)n);
    LEAVE();
    if (UNLIKELY(!p)) errno = ENOMEM;
    return p;
}

EXPORT void *malloc(size_t n) {
    if (LIKELY(goheap_runtime_depth == 0 && __atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY)) {
        void *p = goheap_swift_malloc_fast((ptrdiff_t)n);
        if (LIKELY(p != NULL)) return p;
    }
    return malloc_slow(n);
}

static __attribute__((noinline)) void free_slow(void *p) {
    if (internal_owns(p)) { internal_free(p); return; }
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) != READY) { foreign_free(p); return; }
    int saved = errno;
    ENTER();
    bool ours = goheap_swift_free(p);
    LEAVE();
    if (UNLIKELY(!ours)) foreign_free(p);
    errno = saved;
}

EXPORT void free(void *p) {
    if (!p) return;
    // The internal region and GoHeap's arenas never overlap, so a pointer the
    // fast path finds in an arena is GoHeap's; errno is untouched by it.
    if (LIKELY(__atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY) && !internal_owns(p)) {
        int32_t r = goheap_swift_free_fast(p);
        if (LIKELY(r == 1)) return;
        if (r < 0) { foreign_free(p); return; }
    }
    free_slow(p);
}

EXPORT void cfree(void *p) { free(p); }

EXPORT void *calloc(size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n) || n > max_request) { errno = ENOMEM; return NULL; }
    if (UNLIKELY(!use_heap())) {
        void *p = internal_alloc(n, 16);
        if (p) memset(p, 0, n);
        return p;
    }
    ENTER();
    void *p = goheap_swift_calloc((ptrdiff_t)n);
    LEAVE();
    if (UNLIKELY(!p)) errno = ENOMEM;
    return p;
}

// NULL (the caller sets errno) past max_request, padding included.
static void *aligned_block(size_t alignment, size_t n) {
    if (UNLIKELY(n > max_request || alignment > max_request - n)) return NULL;
    if (UNLIKELY(!use_heap())) return internal_alloc(n, alignment);
    ENTER();
    void *p = alignment <= 8 ? goheap_swift_malloc((ptrdiff_t)n)
                             : goheap_swift_memalign((ptrdiff_t)alignment, (ptrdiff_t)n);
    LEAVE();
    return p;
}

static size_t usable_size_of(void *p) {
    if (internal_owns(p)) return internal_usable(p);
    bool ours = false;
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY) {
        ENTER();
        ours = goheap_swift_owns(p);
        size_t n = ours ? (size_t)goheap_swift_usable_size(p) : 0;
        LEAVE();
        if (ours) return n;
    }
    find_next();
    return next_usable_size ? next_usable_size(p) : 0;
}

EXPORT void *realloc(void *p, size_t n) {
    if (!p) return malloc(n);
    if (n == 0) { free(p); return NULL; }
    if (UNLIKELY(n > max_request)) { errno = ENOMEM; return NULL; }
    if (internal_owns(p)) {
        // A block from the internal allocator (made before the heap, or by
        // GoHeap itself) moves into the heap proper, or stays internal while
        // GoHeap's own code is running.
        size_t old = internal_usable(p);
        if (n <= old && goheap_runtime_depth != 0) return p;
        void *q = malloc(n);
        if (!q) return NULL;
        memcpy(q, p, old < n ? old : n);
        internal_free(p);
        return q;
    }
    if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == READY) {
        ENTER();
        bool ours = goheap_swift_owns(p);
        void *q = ours ? goheap_swift_realloc(p, (ptrdiff_t)n) : NULL;
        LEAVE();
        if (ours) {
            if (!q) errno = ENOMEM;
            return q;
        }
    }
    find_next();
    if (next_realloc) return next_realloc(p, n);
    errno = ENOMEM;
    return NULL;
}

EXPORT void *reallocarray(void *p, size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) { errno = ENOMEM; return NULL; }
    return realloc(p, n);
}

static bool power_of_two(size_t a) { return a != 0 && (a & (a - 1)) == 0; }

EXPORT int posix_memalign(void **out, size_t alignment, size_t n) {
    if (!power_of_two(alignment) || alignment % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = aligned_block(alignment, n);
    errno = saved;
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

EXPORT void *aligned_alloc(size_t alignment, size_t n) {
    if (!power_of_two(alignment)) { errno = EINVAL; return NULL; }
    void *p = aligned_block(alignment, n);
    if (!p) errno = ENOMEM;
    return p;
}

EXPORT void *memalign(size_t alignment, size_t n) {
    // glibc's memalign takes any alignment, rounding it up to a power of two.
    if (alignment > ((size_t)1 << 46)) { errno = EINVAL; return NULL; }
    size_t a = 1;
    while (a < alignment) a <<= 1;
    void *p = aligned_block(a, n);
    if (!p) errno = ENOMEM;
    return p;
}

EXPORT void *valloc(size_t n) {
    void *p = aligned_block((size_t)sysconf(_SC_PAGESIZE), n);
    if (!p) errno = ENOMEM;
    return p;
}

EXPORT void *pvalloc(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t rounded;
    if (__builtin_add_overflow(n, page - 1, &rounded)) { errno = ENOMEM; return NULL; }
    rounded &= ~(page - 1);
    if (rounded == 0) rounded = page;
    void *p = aligned_block(page, rounded);
    if (!p) errno = ENOMEM;
    return p;
}

EXPORT size_t malloc_usable_size(void *p) {
    if (!p) return 0;
    return usable_size_of(p);
}

EXPORT int malloc_trim(size_t pad) {
    (void)pad;
    return goheap_release_free_memory() > 0 ? 1 : 0;
}

EXPORT struct mallinfo2 mallinfo2(void) {
    struct mallinfo2 m;
    memset(&m, 0, sizeof m);
    goheap_stats_t s;
    goheap_get_stats(&s);
    // glibc's fields mapped to GoHeap's: arena = memory obtained, uordblks =
    // bytes in live blocks, fordblks = the rest of it still resident,
    // keepcost = what malloc_trim could return now.
    m.arena = s.heap_sys;
    m.uordblks = s.heap_alloc;
    m.fordblks = s.heap_sys > s.heap_alloc + s.heap_released ? s.heap_sys - s.heap_alloc - s.heap_released : 0;
    m.keepcost = s.heap_idle > s.heap_released ? s.heap_idle - s.heap_released : 0;
    m.hblkhd = s.large_bytes_inuse;
    m.hblks = 0;
    return m;
}

EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo m;
    memset(&m, 0, sizeof m);
    // The old struct has int fields: values saturate at INT_MAX.
#define CLAMP(v) ((int)((v) > 0x7fffffff ? 0x7fffffff : (v)))
    m.arena = CLAMP(m2.arena);
    m.uordblks = CLAMP(m2.uordblks);
    m.fordblks = CLAMP(m2.fordblks);
    m.keepcost = CLAMP(m2.keepcost);
    m.hblkhd = CLAMP(m2.hblkhd);
#undef CLAMP
    return m;
}

EXPORT int mallopt(int param, int value) {
    (void)value;
    // glibc's tuning knobs have no meaning for this allocator: they are
    // accepted (1) and ignored, so programs that set them keep running.
    // Unknown parameters are refused (0), as glibc refuses them.
    switch (param) {
    case M_MXFAST: case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_THRESHOLD:
    case M_MMAP_MAX: case M_CHECK_ACTION: case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
        return 1;
    default:
        return 0;
    }
}

EXPORT void malloc_stats(void) {
    goheap_stats_t s;
    goheap_get_stats(&s);
    // glibc's layout first (scripts parse it), then GoHeap's own counters.
    say("Arena 0:\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
        "Total (incl. mmap):\nsystem bytes     = %10zu\nin use bytes     = %10zu\n"
        "max mmap regions = %10d\nmax mmap bytes   = %10d\n",
        s.heap_sys, s.heap_alloc, s.heap_sys, s.heap_alloc, 0, 0);
    say("goheap: mallocs %zu frees %zu heap_inuse %zu heap_idle %zu heap_released %zu released_total %zu "
        "metadata %zu thread_caches %zu\n",
        s.mallocs, s.frees, s.heap_inuse, s.heap_idle, s.heap_released, s.released_total,
        s.metadata_sys, s.thread_caches);
}

// ------------------------------------------------------------ goheap.h

EXPORT int goheap_get_stats(goheap_stats_t *out) {
    wait_for_heap();
    ptrdiff_t v[14];
    ENTER();
    goheap_swift_stats(v);
    LEAVE();
    size_t *f = (size_t *)out;
    for (int i = 0; i < 14; i++) f[i] = (size_t)v[i];
    return 0;
}

EXPORT size_t goheap_release_free_memory(void) {
    wait_for_heap();
    ENTER();
    ptrdiff_t n = goheap_swift_release();
    LEAVE();
    return (size_t)n;
}

EXPORT void goheap_set_memory_limit(long long bytes) {
    wait_for_heap();
    ENTER();
    goheap_swift_set_memory_limit((ptrdiff_t)bytes);
    LEAVE();
}

EXPORT int goheap_set_allocation_node(int node) {
    wait_for_heap();
    ENTER();
    int rc = goheap_swift_set_allocation_node(node);
    LEAVE();
    return rc;
}

EXPORT int goheap_node_count(void) {
    wait_for_heap();
    ENTER();
    int n = (int)goheap_swift_node_count();
    LEAVE();
    return n;
}

EXPORT int goheap_owns(const void *p) {
    if (!p || internal_owns(p)) return 0;
    wait_for_heap();
    ENTER();
    bool ours = goheap_swift_owns(p);
    LEAVE();
    return ours;
}

EXPORT const char *goheap_version(void) { return "goheap-malloc 0.3.0"; }
