// CShims: the thin operating-system layer under GoHeap.
//
// Everything here is mechanism only: map, advise, release, thread-local storage,
// which CPU am I on, and a libnuma loaded at run time. Every decision (when to
// release, which node to bind, how big an arena is) is made in Swift.
#ifndef GOHEAP_CSHIMS_H
#define GOHEAP_CSHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
// The C library, for Swift code built in Embedded mode (the malloc library),
// which has no Glibc module: these declarations reach it through CShims.
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <time.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------- memory
/// The kernel's base page size (4 KiB on x86-64).
size_t goheap_os_page_size(void);
/// The transparent-huge-page size (PMD size), 2 MiB on x86-64; 0 if THP is absent.
size_t goheap_os_huge_page_size(void);
/// The current THP mode from sysfs ("always", "madvise", "never"), or "" if absent.
const char *goheap_os_thp_mode(void);

/// Reserves `size` bytes of address space aligned to `alignment` (a power of two,
/// at least the page size). The mapping is readable and writable but no physical
/// memory is committed until touched (MAP_NORESERVE). `hint` is tried first.
/// Returns NULL and leaves errno set on failure.
void *goheap_os_reserve(size_t size, size_t alignment, void *hint);
/// Unmaps a range obtained from goheap_os_reserve. Returns 0 or errno.
int goheap_os_unmap(void *addr, size_t size);
/// MADV_DONTNEED: physical pages are dropped now and read back as zeros.
int goheap_os_release(void *addr, size_t size);
/// MADV_FREE: physical pages may be dropped lazily under memory pressure.
int goheap_os_release_lazily(void *addr, size_t size);
/// MADV_HUGEPAGE (huge=true) or MADV_NOHUGEPAGE (huge=false).
int goheap_os_advise_huge(void *addr, size_t size, bool huge);
/// errno of the calling thread, for messages.
int goheap_os_errno(void);
/// Resident and total size of this process in bytes, from /proc/self/statm.
bool goheap_os_statm(size_t *size_bytes, size_t *resident_bytes);

// ---------------------------------------------------------------- size classes
/// Go's size class of a request of n bytes (0 <= n <= 32768), by table: the
/// smallest class whose objects are at least n bytes, with 0 bytes served from
/// class 1. In the header so the lookup inlines into callers in other modules
/// (a Swift global array would cost a lazy-initialisation check there).
/// Generated from SizeClasses.classSize; SizeClassTests checks every n.
static const uint8_t goheap_size_to_class8[129] = {
    1, 1, 2, 3, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15,
    16, 16, 17, 17, 18, 18, 19, 19, 19, 19, 20, 20, 20, 20, 21, 21, 21, 21, 22, 22, 22, 22, 23, 23,
    23, 23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27, 27, 27, 27, 27, 27, 28, 28,
    28, 28, 28, 28, 28, 28, 29, 29, 29, 29, 29, 29, 29, 29, 30, 30, 30, 30, 30, 30, 30, 30, 31, 31,
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 32, 32, 32, 32, 32, 32, 32, 32, 32, 32,
    32, 32, 32, 32, 32, 32,
};
static const uint8_t goheap_size_to_class128[249] = {
    32, 33, 34, 35, 36, 37, 37, 38, 38, 39, 39, 40, 40, 40, 41, 41, 41, 42, 43, 43, 44, 44, 44, 44,
    44, 45, 45, 45, 45, 45, 45, 46, 46, 46, 46, 47, 47, 47, 47, 47, 47, 48, 48, 48, 49, 49, 50, 51,
    51, 51, 51, 51, 51, 51, 51, 51, 51, 52, 52, 52, 52, 52, 52, 52, 52, 52, 52, 53, 53, 54, 54, 54,
    54, 55, 55, 55, 55, 55, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 57, 57, 57, 57, 57, 57, 57,
    57, 57, 57, 58, 58, 58, 58, 58, 58, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59, 59,
    59, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 61, 61, 61, 61, 61, 62, 62,
    62, 62, 62, 62, 62, 62, 62, 62, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 64, 64, 64, 64, 64,
    64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 65, 65, 65, 65, 65, 65, 65,
    65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 66, 66, 66, 66, 66, 66, 66, 66, 66, 66,
    66, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67, 67,
    67, 67, 67, 67, 67, 67, 67, 67, 67,
};
static inline long goheap_size_class(long n) {
    if (n <= 1016) return goheap_size_to_class8[(n + 7) >> 3];
    if (n <= 32768) return goheap_size_to_class128[(n - 1024 + 127) >> 7];
    return 0;
}

// ---------------------------------------------------------------- thread-local slots
/// How many heaps may hold a per-thread cache at once.
#define GOHEAP_MAX_HEAPS 64

/// One pointer per live heap: the calling thread's cache for that heap.
/// initial-exec keeps the access a single %fs-relative load.
extern __thread void *goheap_tls_caches[GOHEAP_MAX_HEAPS]
    __attribute__((tls_model("initial-exec")));

static inline void **goheap_tls_slots(void) { return goheap_tls_caches; }
/// Nonzero while the C library runs GoHeap code outside an allocation entry
/// point (thread exit, fork handlers); read by the malloc library.
extern __thread unsigned goheap_runtime_depth __attribute__((tls_model("initial-exec")));

/// Called at thread exit with the dying thread's slot array.
typedef void (*goheap_thread_exit_fn)(void **slots);
/// Installs the thread-exit hook (idempotent; first caller wins).
void goheap_tls_install(goheap_thread_exit_fn fn);
/// Arms the hook for the calling thread. Call after putting a cache in a slot.
void goheap_tls_arm_current_thread(void);

// ---------------------------------------------------------------- locks
/// A mutex word: 0 free, 1 held, 2 held with sleepers. Unlike
/// Synchronization.Mutex (a PI futex that records its owner's thread id), it
/// can be taken in one function and released in another, and a fork child
/// may simply reset it: what fork handlers need.
typedef struct { uint32_t word; } goheap_lock_t;

void goheap_lock_slow(goheap_lock_t *l);
void goheap_unlock_slow(goheap_lock_t *l);

static inline void goheap_lock(goheap_lock_t *l) {
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(&l->word, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    goheap_lock_slow(l);
}
static inline bool goheap_trylock(goheap_lock_t *l) {
    uint32_t expected = 0;
    return __atomic_compare_exchange_n(&l->word, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
static inline void goheap_unlock(goheap_lock_t *l) {
    if (__atomic_exchange_n(&l->word, 0, __ATOMIC_RELEASE) == 2) goheap_unlock_slow(l);
}
/// Makes a lock free without waking anyone: only for a fork child, where the
/// threads that held or waited on it do not exist.
static inline void goheap_lock_reset(goheap_lock_t *l) { __atomic_store_n(&l->word, 0, __ATOMIC_RELAXED); }

// ---------------------------------------------------------------- asymmetric fence
/// Forces a full memory barrier on every thread of the process that is
/// running right now (membarrier PRIVATE_EXPEDITED; falls back to an mprotect
/// TLB shootdown). Lets a thread's hot path use plain stores where a
/// rare remote observer needs Dekker-style ordering. Returns false when
/// neither mechanism is available.
bool goheap_asymmetric_fence(void);
/// Sets the fence up ahead of its first use (registering with membarrier
/// takes milliseconds once other threads exist; better off the caller's path).
void goheap_asymmetric_fence_prepare(void);
/// True when the shim was built with ThreadSanitizer (which cannot see the
/// asymmetric fence, so callers avoid relying on it there).
bool goheap_tsan_enabled(void);
/// A compiler-only barrier (no instruction): keeps the compiler from moving
/// memory accesses across it.
static inline void goheap_compiler_barrier(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
/// Starts loading the cache line holding `p` (PREFETCHT0 on x86-64, PRFM on
/// arm64). Unlike a load whose value is unused, it retires at once and does
/// not hold up the instructions after it while the line is on its way.
static inline void goheap_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
/// The same, for a line about to be written (PREFETCHW where the CPU has it).
static inline void goheap_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }
/// A spin-wait hint (PAUSE on x86-64).
static inline void goheap_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// ---------------------------------------------------------------- fork
/// Registers fork handlers once (pthread_atfork). Later calls do nothing.
void goheap_atfork_install(void (*prepare)(void), void (*parent)(void), void (*child)(void));
/// Runs every one-time initializer of the shim to completion (waiting for one
/// another thread is running), so a fork child never inherits one half done.
void goheap_fork_settle_once_initializers(void);

// ---------------------------------------------------------------- CPU
/// The calling thread's allocation node override (-1: none), see NUMA.setAllocationNode.
extern __thread int goheap_tls_node __attribute__((tls_model("initial-exec")));
static inline int goheap_tls_node_override(void) { return goheap_tls_node - 1; }
static inline void goheap_tls_set_node_override(int node) { goheap_tls_node = node + 1; }
/// The CPU the calling thread runs on (glibc's sched_getcpu: rseq or vDSO,
/// no system call on current kernels), or -1.
int goheap_current_cpu(void);

/// The CPU and NUMA node the calling thread runs on now. Returns 0 or -1.
int goheap_getcpu(unsigned *cpu, unsigned *node);
/// Number of configured CPUs.
int goheap_cpu_count(void);

// ---------------------------------------------------------------- background thread
typedef void *(*goheap_thread_fn)(void *);
/// Starts a detached thread. Returns 0 or errno.
int goheap_start_detached_thread(goheap_thread_fn fn, void *arg);
/// Sleeps for the given number of nanoseconds.
void goheap_sleep_ns(uint64_t ns);

// ---------------------------------------------------------------- ThreadSanitizer
/// Tell ThreadSanitizer that a lock at `addr` was acquired / is being released.
/// The toolchain's Synchronization.Mutex is not instrumented, so without these
/// TSan sees no ordering between critical sections. No-ops unless the shim is
/// built with -fsanitize=thread.
void goheap_tsan_acquire(void *addr);
void goheap_tsan_release(void *addr);

// ---------------------------------------------------------------- NUMA (libnuma, loaded at run time)
/// Loads libnuma.so.1 once. Returns true when NUMA is usable. When it is not,
/// `why` (if non-NULL) receives a short human-readable reason.
/// Nodes listed in sysfs (1 when there is no NUMA): cheap, loads nothing.
int goheap_numa_sysfs_node_count(void);
bool goheap_numa_load(char *why, size_t why_len);
/// Number of configured nodes (1 without libnuma).
int goheap_numa_node_count(void);
/// Highest node number (0 without libnuma).
int goheap_numa_max_node(void);
/// Node of a CPU, or -1.
int goheap_numa_node_of_cpu(int cpu);
/// SLIT distance between two nodes (10 = local), or -1.
int goheap_numa_distance(int a, int b);
/// Total and free memory of a node in bytes; returns -1 on failure.
long long goheap_numa_node_size(int node, long long *free_bytes);
/// Fills `cpus` with the CPUs of `node` (up to `max`); returns how many, or -1.
int goheap_numa_cpus_of_node(int node, int *cpus, int max);
/// Binds a range's future pages to `node` (mbind MPOL_BIND). Returns 0 or errno.
int goheap_numa_bind(void *addr, size_t size, int node);
/// Prefers `node` for a range's future pages, falling back to other nodes
/// when it is full (mbind MPOL_PREFERRED). Returns 0 or errno.
int goheap_numa_prefer(void *addr, size_t size, int node);
/// Interleaves a range's future pages over all allowed nodes. Returns 0 or errno.
int goheap_numa_interleave(void *addr, size_t size);
/// Prefers `node` for the calling thread's future allocations (-1: local). 0 or errno.
int goheap_numa_set_preferred(int node);
/// Runs the calling thread only on the CPUs of `node` (-1: all). Returns 0 or errno.
int goheap_numa_run_on_node(int node);
/// Node the page holding `addr` lives on (move_pages query; where it says
/// "not present", mincore decides, and for a resident page
/// get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) answers); negative errno if unknown
/// (-ENOENT: the page is not resident).
int goheap_numa_node_of_address(void *addr);

// ---------------------------------------------------------------- heap profiling
/// Return addresses of the calling thread's stack, innermost first (glibc's
/// backtrace). The first call loads the unwinder (dlopen, malloc): the
/// profiler makes it once when profiling starts, outside every heap lock.
int goheap_backtrace(void **frames, int max);
/// Return addresses by walking frame pointers, innermost first (the first is
/// the caller's own): a few instructions per frame, where backtrace's DWARF
/// unwinding costs thousands. Stops at the first frame whose link leaves the
/// thread's stack or does not go up it (code built without frame pointers).
/// Returns 0 when the thread's stack bounds are unknown.
int goheap_frame_pointer_backtrace(void **frames, int max);
/// dladdr: the object file holding `pc` and its load base, and the nearest
/// dynamic symbol at or below `pc` (NULL when none) with its address.
bool goheap_symbolize(const void *pc, const char **file, uintptr_t *file_base,
                      const char **symbol, uintptr_t *symbol_address);
/// Raw deflate (RFC 1951) of `n` bytes into `dst` with zlib, loaded at run
/// time (libz.so.1): the length written, or -1 when zlib is missing or `cap`
/// is too small. `cap` of n + n/1000 + 64 always suffices.
long goheap_zlib_deflate_raw(const void *src, size_t n, void *dst, size_t cap);
/// Wall-clock time in nanoseconds since the epoch.
int64_t goheap_wall_clock_ns(void);
/// Registers `fn` to run at exit() (atexit).
int goheap_atexit(void (*fn)(void));

#ifdef __cplusplus
}
#endif
#endif
