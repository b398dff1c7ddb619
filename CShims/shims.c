// Mechanism behind CShims.h. No allocation policy lives here.
#define _GNU_SOURCE
#include "CShims.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <linux/membarrier.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif

// ---------------------------------------------------------------- memory

// Lazily computed values are cached with relaxed atomics: any thread may be
// first, and all of them compute the same answer.
size_t goheap_os_page_size(void) {
    static size_t cached;
    size_t v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (!v) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

static size_t read_sysfs_size(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    if (fscanf(f, "%llu", &v) != 1) v = 0;
    fclose(f);
    return (size_t)v;
}

size_t goheap_os_huge_page_size(void) {
    static size_t cached = (size_t)-1;
    size_t v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v == (size_t)-1) {
        v = read_sysfs_size("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

static char thp_mode[32];
static pthread_once_t thp_once = PTHREAD_ONCE_INIT;

static void read_thp_mode(void) {
    char *mode = thp_mode;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    mode[0] = 0;
    if (f) {
        char buf[128] = {0};
        if (fgets(buf, sizeof buf, f)) {
            // The active mode is the bracketed word: "always [madvise] never".
            char *l = strchr(buf, '['), *r = l ? strchr(l, ']') : NULL;
            if (l && r && (size_t)(r - l - 1) < sizeof thp_mode) {
                memcpy(mode, l + 1, (size_t)(r - l - 1));
                mode[r - l - 1] = 0;
            }
        }
        fclose(f);
    }
}

const char *goheap_os_thp_mode(void) {
    pthread_once(&thp_once, read_thp_mode);
    return thp_mode;
}

static void *map_anon(void *addr, size_t size, int extra) {
    void *p = mmap(addr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *goheap_os_reserve(size_t size, size_t alignment, void *hint) {
    if (size == 0 || (alignment & (alignment - 1)) != 0) { errno = EINVAL; return NULL; }
    if (alignment < goheap_os_page_size()) alignment = goheap_os_page_size();
    if (hint && ((uintptr_t)hint & (alignment - 1)) == 0) {
        void *p = map_anon(hint, size, MAP_FIXED_NOREPLACE);
        if (p == hint) return p;
        if (p) munmap(p, size);  // old kernels ignore the flag and map elsewhere
    }
    if (size + alignment < size) { errno = ENOMEM; return NULL; }
    // Over-reserve, then trim the unaligned head and tail.
    char *raw = map_anon(NULL, size + alignment, 0);
    if (!raw) return NULL;
    uintptr_t start = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = alignment - head;
    if (head) munmap(raw, head);
    if (tail) munmap((char *)start + size, tail);
    return (void *)start;
}

int goheap_os_unmap(void *addr, size_t size) { return munmap(addr, size) == 0 ? 0 : errno; }
int goheap_os_release(void *addr, size_t size) {
    return madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : errno;
}
int goheap_os_release_lazily(void *addr, size_t size) {
    return madvise(addr, size, MADV_FREE) == 0 ? 0 : errno;
}
int goheap_os_advise_huge(void *addr, size_t size, bool huge) {
    return madvise(addr, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0 ? 0 : errno;
}
int goheap_os_errno(void) { return errno; }

bool goheap_os_statm(size_t *size_bytes, size_t *resident_bytes) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    unsigned long long sz = 0, rss = 0;
    if (sscanf(buf, "%llu %llu", &sz, &rss) != 2) return false;
    size_t pg = goheap_os_page_size();
    if (size_bytes) *size_bytes = (size_t)sz * pg;
    if (resident_bytes) *resident_bytes = (size_t)rss * pg;
    return true;
}

// ---------------------------------------------------------------- thread-local slots

__thread void *goheap_tls_caches[GOHEAP_MAX_HEAPS] __attribute__((tls_model("initial-exec")));

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static goheap_thread_exit_fn exit_fn;

// Raised while the C library calls back into GoHeap's Swift code from
// outside an allocation entry point (thread exit, fork). The malloc library
// serves any malloc made meanwhile from its own internal allocator, since the
// heap may be mid-operation; elsewhere nothing reads it.
__thread unsigned goheap_runtime_depth __attribute__((tls_model("initial-exec")));

static void on_thread_exit(void *value) {
    (void)value;
    goheap_thread_exit_fn fn = __atomic_load_n(&exit_fn, __ATOMIC_ACQUIRE);
    goheap_runtime_depth++;
    if (fn) fn(goheap_tls_caches);
    goheap_runtime_depth--;
}

static void make_key(void) { pthread_key_create(&exit_key, on_thread_exit); }

void goheap_tls_install(goheap_thread_exit_fn fn) {
    pthread_once(&exit_once, make_key);
    goheap_thread_exit_fn expected = NULL;
    __atomic_compare_exchange_n(&exit_fn, &expected, fn, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void goheap_tls_arm_current_thread(void) {
    pthread_once(&exit_once, make_key);
    // Any non-NULL value makes the destructor run when this thread exits.
    if (pthread_getspecific(exit_key) == NULL) pthread_setspecific(exit_key, (void *)1);
}

// ---------------------------------------------------------------- locks

static long futex(uint32_t *addr, int op, uint32_t val) {
    return syscall(SYS_futex, addr, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

void goheap_lock_slow(goheap_lock_t *l) {
    // Critical sections are short: spin a little before sleeping.
    for (int i = 0; i < 100; i++) {
        uint32_t expected = 0;
        if (__atomic_load_n(&l->word, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&l->word, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        goheap_cpu_relax();
    }
    // Mark "held with sleepers" and sleep until we take it as 0 -> 2.
    while (__atomic_exchange_n(&l->word, 2, __ATOMIC_ACQUIRE) != 0) futex(&l->word, FUTEX_WAIT, 2);
}

void goheap_unlock_slow(goheap_lock_t *l) { futex(&l->word, FUTEX_WAKE, 1); }

// ---------------------------------------------------------------- asymmetric fence

static pthread_once_t fence_once = PTHREAD_ONCE_INIT;
static int fence_kind;  // 0 none, 1 membarrier, 2 mprotect
static void *fence_page;
static pthread_mutex_t fence_mutex = PTHREAD_MUTEX_INITIALIZER;

static void fence_init(void) {
    long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0) {
        fence_kind = 1;
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    // Changing the protection of a touched page makes the kernel shoot down
    // the TLB entry on every CPU running this address space: an interrupt,
    // hence a full barrier, on each of them (the trick folly uses). Only on
    // x86, where a TLB-shootdown IPI serialises the interrupted CPU.
    void *p = mmap(NULL, goheap_os_page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED) {
        fence_page = p;
        fence_kind = 2;
    }
#endif
}

void goheap_asymmetric_fence_prepare(void) { pthread_once(&fence_once, fence_init); }

bool goheap_asymmetric_fence(void) {
    pthread_once(&fence_once, fence_init);
    if (fence_kind == 1) {
        if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return true;
        // A fork child is a new address space: register it again.
        return errno == EPERM && syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
               syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
    }
    if (fence_kind == 2) {
        pthread_mutex_lock(&fence_mutex);
        *(volatile char *)fence_page = 1;
        bool ok = mprotect(fence_page, goheap_os_page_size(), PROT_READ) == 0 &&
                  mprotect(fence_page, goheap_os_page_size(), PROT_READ | PROT_WRITE) == 0;
        pthread_mutex_unlock(&fence_mutex);
        return ok;
    }
    return false;
}

// ---------------------------------------------------------------- fork

// 0: not installed, 1: a thread is installing, 2: installed. The handlers are
// the same whoever installs them; a loser waits for the winner, so no heap
// exists before its handlers do. (No mutex: a fork child would inherit it held.)
static int atfork_state;

static void (*fork_prepare)(void), (*fork_parent)(void), (*fork_child)(void);
// The handlers stay raised from prepare through parent/child: the heap's locks
// are held all that time, so a malloc in between must not reach the heap.
static void fork_prepare_entry(void) { goheap_runtime_depth++; fork_prepare(); }
static void fork_parent_entry(void) { fork_parent(); goheap_runtime_depth--; }
void goheap_numa_fork_child(void);
static void fork_child_entry(void) { goheap_numa_fork_child(); fork_child(); goheap_runtime_depth--; }

void goheap_atfork_install(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
    if (__atomic_load_n(&atfork_state, __ATOMIC_ACQUIRE) == 2) return;
    int expected = 0;
    if (__atomic_compare_exchange_n(&atfork_state, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        fork_prepare = prepare;
        fork_parent = parent;
        fork_child = child;
        pthread_atfork(fork_prepare_entry, fork_parent_entry, fork_child_entry);
        __atomic_store_n(&atfork_state, 2, __ATOMIC_RELEASE);
        return;
    }
    while (__atomic_load_n(&atfork_state, __ATOMIC_ACQUIRE) != 2) sched_yield();
}

// ---------------------------------------------------------------- CPU

int goheap_getcpu(unsigned *cpu, unsigned *node) {
    unsigned c = 0, n = 0;
    if (syscall(SYS_getcpu, &c, &n, NULL) != 0) return -1;
    if (cpu) *cpu = c;
    if (node) *node = n;
    return 0;
}

int goheap_cpu_count(void) { return (int)sysconf(_SC_NPROCESSORS_CONF); }

__thread int goheap_tls_node __attribute__((tls_model("initial-exec")));

int goheap_current_cpu(void) { return sched_getcpu(); }

// A thread GoHeap starts (the background scavenger) runs only GoHeap's code,
// so its re-entry counter stays raised for its whole life: in the malloc
// library, the allocations its Swift code makes (Scavenger.tick builds an
// array while it holds the registry lock) are served by the internal
// allocator. Without it they went into the heap, whose first allocation on a
// thread takes the registry lock again: the scavenger deadlocked on itself
// and every thread of the process followed (GOHEAP_SCAVENGER=background).
struct detached_start {
    goheap_thread_fn fn;
    void *arg;
};

static void *detached_entry(void *p) {
    struct detached_start start = *(struct detached_start *)p;
    goheap_runtime_depth++;
    free(p);
    return start.fn(start.arg);
}

int goheap_start_detached_thread(goheap_thread_fn fn, void *arg) {
    struct detached_start *start = malloc(sizeof *start);
    if (!start) return ENOMEM;
    start->fn = fn;
    start->arg = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create(&t, &attr, detached_entry, start);
    pthread_attr_destroy(&attr);
    if (rc != 0) free(start);
    return rc;
}

void goheap_sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

// ---------------------------------------------------------------- ThreadSanitizer

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GOHEAP_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GOHEAP_TSAN 1
#endif

#ifdef GOHEAP_TSAN
bool goheap_tsan_enabled(void) { return true; }
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void goheap_tsan_acquire(void *addr) { __tsan_acquire(addr); }
void goheap_tsan_release(void *addr) { __tsan_release(addr); }
#else
bool goheap_tsan_enabled(void) { return false; }
void goheap_tsan_acquire(void *addr) { (void)addr; }
void goheap_tsan_release(void *addr) { (void)addr; }
#endif

// ---------------------------------------------------------------- NUMA
//
// libnuma is opened with dlopen so the package builds and runs without it,
// the way HotSpot does. Only the entry points below are used.

#define MPOL_PREFERRED_ 1
#define MPOL_BIND_ 2
#define MPOL_INTERLEAVE_ 3
#define MPOL_F_NODE_ (1 << 0)
#define MPOL_F_ADDR_ (1 << 1)
#define NODEMASK_BITS 1024

struct bitmask;
static struct {
    int (*available)(void);
    int (*max_node)(void);
    int (*num_configured_nodes)(void);
    int (*node_of_cpu)(int);
    int (*distance)(int, int);
    long long (*node_size64)(int, long long *);
    struct bitmask *(*allocate_cpumask)(void);
    void (*bitmask_free)(struct bitmask *);
    int (*bitmask_isbitset)(const struct bitmask *, unsigned int);
    int (*node_to_cpus)(int, struct bitmask *);
    int (*run_on_node)(int);
    long (*mbind)(void *, unsigned long, int, const unsigned long *, unsigned long, unsigned);
    long (*set_mempolicy)(int, const unsigned long *, unsigned long);
    long (*move_pages)(int, unsigned long, void **, const int *, int *, int);
    long (*get_mempolicy)(int *, unsigned long *, unsigned long, void *, unsigned long);
} numa;

// 0: not loaded, 1: a thread is loading, 2: done. Not a pthread_once: a fork
// child whose parent was mid-load resets 1 to 0 and loads again itself
// (goheap_numa_fork_child), so the fork handlers need not load libnuma first.
static int numa_state;
static bool numa_ok;
static char numa_why[256];

static void numa_load_once(void) {
    void *h = dlopen("libnuma.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(numa_why, sizeof numa_why,
                 "libnuma.so.1 not found (install libnuma1 or libnuma-dev): %s", dlerror());
        return;
    }
#define SYM(field, name)                                                                  \
    do {                                                                                  \
        *(void **)&numa.field = dlsym(h, name);                                           \
        if (!numa.field) {                                                                \
            snprintf(numa_why, sizeof numa_why, "libnuma.so.1 lacks %s", name);           \
            return;                                                                       \
        }                                                                                 \
    } while (0)
    SYM(available, "numa_available");
    SYM(max_node, "numa_max_node");
    SYM(num_configured_nodes, "numa_num_configured_nodes");
    SYM(node_of_cpu, "numa_node_of_cpu");
    SYM(distance, "numa_distance");
    SYM(node_size64, "numa_node_size64");
    SYM(allocate_cpumask, "numa_allocate_cpumask");
    SYM(bitmask_free, "numa_bitmask_free");
    SYM(bitmask_isbitset, "numa_bitmask_isbitset");
    SYM(node_to_cpus, "numa_node_to_cpus");
    SYM(run_on_node, "numa_run_on_node");
    SYM(mbind, "mbind");
    SYM(set_mempolicy, "set_mempolicy");
    SYM(move_pages, "move_pages");
    SYM(get_mempolicy, "get_mempolicy");
#undef SYM
    if (numa.available() < 0) {
        snprintf(numa_why, sizeof numa_why,
                 "libnuma loaded but numa_available() < 0: the kernel offers no NUMA API");
        return;
    }
    numa_ok = true;
}

bool goheap_numa_load(char *why, size_t why_len) {
    int st = __atomic_load_n(&numa_state, __ATOMIC_ACQUIRE);
    if (st != 2) {
        int expected = 0;
        if (st == 0 && __atomic_compare_exchange_n(&numa_state, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            numa_load_once();
            __atomic_store_n(&numa_state, 2, __ATOMIC_RELEASE);
        } else {
            while (__atomic_load_n(&numa_state, __ATOMIC_ACQUIRE) != 2) sched_yield();
        }
    }
    if (!numa_ok && why && why_len) snprintf(why, why_len, "%s", numa_why);
    return numa_ok;
}

static bool ready(void) { return goheap_numa_load(NULL, 0); }

int goheap_numa_node_count(void) { return ready() ? numa.num_configured_nodes() : 1; }
int goheap_numa_max_node(void) { return ready() ? numa.max_node() : 0; }
int goheap_numa_node_of_cpu(int cpu) {
    if (ready()) return numa.node_of_cpu(cpu);
    return (cpu >= 0 && cpu < goheap_cpu_count()) ? 0 : -1;
}
int goheap_numa_distance(int a, int b) {
    if (ready()) return numa.distance(a, b);
    return (a == 0 && b == 0) ? 10 : -1;
}
long long goheap_numa_node_size(int node, long long *free_bytes) {
    if (ready()) return numa.node_size64(node, free_bytes);
    if (node != 0) return -1;
    long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES);
    long pg = sysconf(_SC_PAGESIZE);
    if (free_bytes) *free_bytes = (long long)avail * pg;
    return (long long)pages * pg;
}
int goheap_numa_cpus_of_node(int node, int *cpus, int max) {
    int ncpu = goheap_cpu_count(), n = 0;
    if (!ready()) {
        if (node != 0) return -1;
        for (int c = 0; c < ncpu && n < max; c++) cpus[n++] = c;
        return n;
    }
    struct bitmask *mask = numa.allocate_cpumask();
    if (!mask) return -1;
    if (numa.node_to_cpus(node, mask) != 0) { numa.bitmask_free(mask); return -1; }
    for (int c = 0; c < ncpu && n < max; c++)
        if (numa.bitmask_isbitset(mask, (unsigned)c)) cpus[n++] = c;
    numa.bitmask_free(mask);
    return n;
}

static void mask_of_node(unsigned long *mask, int node) {
    memset(mask, 0, NODEMASK_BITS / 8);
    mask[node / (8 * sizeof(unsigned long))] |= 1ul << (node % (8 * sizeof(unsigned long)));
}

int goheap_numa_bind(void *addr, size_t size, int node) {
    if (!ready()) return ENOSYS;
    if (node < 0 || node > numa.max_node()) return EINVAL;
    unsigned long mask[NODEMASK_BITS / (8 * sizeof(unsigned long))];
    mask_of_node(mask, node);
    return numa.mbind(addr, size, MPOL_BIND_, mask, NODEMASK_BITS + 1, 0) == 0 ? 0 : errno;
}

int goheap_numa_prefer(void *addr, size_t size, int node) {
    if (!ready()) return ENOSYS;
    if (node < 0 || node > numa.max_node()) return EINVAL;
    unsigned long mask[NODEMASK_BITS / (8 * sizeof(unsigned long))];
    mask_of_node(mask, node);
    return numa.mbind(addr, size, MPOL_PREFERRED_, mask, NODEMASK_BITS + 1, 0) == 0 ? 0 : errno;
}

int goheap_numa_interleave(void *addr, size_t size) {
    if (!ready()) return ENOSYS;
    unsigned long mask[NODEMASK_BITS / (8 * sizeof(unsigned long))];
    memset(mask, 0, sizeof mask);
    int maxn = numa.max_node();
    for (int i = 0; i <= maxn && i < NODEMASK_BITS; i++)
        mask[i / (8 * sizeof(unsigned long))] |= 1ul << (i % (8 * sizeof(unsigned long)));
    return numa.mbind(addr, size, MPOL_INTERLEAVE_, mask, NODEMASK_BITS + 1, 0) == 0 ? 0 : errno;
}

int goheap_numa_set_preferred(int node) {
    if (!ready()) return ENOSYS;
    if (node < 0) return numa.set_mempolicy(0, NULL, 0) == 0 ? 0 : errno;
    if (node > numa.max_node()) return EINVAL;
    unsigned long mask[NODEMASK_BITS / (8 * sizeof(unsigned long))];
    mask_of_node(mask, node);
    return numa.set_mempolicy(MPOL_PREFERRED_, mask, NODEMASK_BITS + 1) == 0 ? 0 : errno;
}

int goheap_numa_run_on_node(int node) {
    if (!ready()) return ENOSYS;
    return numa.run_on_node(node) == 0 ? 0 : errno;
}

int goheap_numa_node_of_address(void *addr) {
    void *page = (void *)((uintptr_t)addr & ~(uintptr_t)(goheap_os_page_size() - 1));
    int status = -1;
    long rc;
    if (ready()) rc = numa.move_pages(0, 1, &page, NULL, &status, 0);
    else rc = syscall(SYS_move_pages, 0, 1UL, &page, NULL, &status, 0);
    if (rc == 0 && status != -ENOENT) return status;  // a node, or another -errno
    if (rc == 0) {
        // -ENOENT also comes back for resident pages whose PTE NUMA balancing
        // has made PROT_NONE for a moment. Ask mincore whether the page is in
        // memory; only then ask get_mempolicy (which would otherwise fault a
        // page in to answer).
        unsigned char vec = 0;
        if (mincore(page, goheap_os_page_size(), &vec) != 0 || !(vec & 1)) return -ENOENT;
    }
    int node = -1;
    if (ready()) rc = numa.get_mempolicy(&node, NULL, 0, addr, MPOL_F_NODE_ | MPOL_F_ADDR_);
    else rc = syscall(SYS_get_mempolicy, &node, NULL, 0UL, addr, (unsigned long)(MPOL_F_NODE_ | MPOL_F_ADDR_));
    return rc == 0 ? node : -errno;
}

// ---------------------------------------------------------------- fork, continued

// A fork child inherits a pthread_once that another thread was running as
// "in progress" forever (membarrier registration takes milliseconds), and its
// first call would wait for a thread that does not exist. The fork prepare
// handler settles every one of them first. (libnuma's loading is not a
// pthread_once: the child handler resets it instead, goheap_numa_fork_child.)
void goheap_fork_settle_once_initializers(void) {
    (void)goheap_os_thp_mode();
    pthread_once(&exit_once, make_key);
    goheap_asymmetric_fence_prepare();
}

void goheap_numa_fork_child(void) {
    if (__atomic_load_n(&numa_state, __ATOMIC_RELAXED) == 1) {
        numa_ok = false;
        numa_why[0] = 0;
        __atomic_store_n(&numa_state, 0, __ATOMIC_RELEASE);
    }
}

int goheap_numa_sysfs_node_count(void) {
    // One directory read instead of loading libnuma (which reads a dozen
    // files): enough to tell a one-node machine, where the heap needs no NUMA.
    DIR *d = opendir("/sys/devices/system/node");
    if (!d) return 1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "node", 4) == 0 && e->d_name[4] >= '0' && e->d_name[4] <= '9') n++;
    }
    closedir(d);
    return n > 0 ? n : 1;
}

// ---------------------------------------------------------------- heap profiling

#include <execinfo.h>

int goheap_backtrace(void **frames, int max) { return backtrace(frames, max); }

// The calling thread's stack, found once per thread (glibc reads
// /proc/self/maps for the main thread, and may call malloc: the guard makes a
// walk that re-enters here give up instead of recursing).
static __thread uintptr_t stack_lo, stack_hi;
static __thread int stack_state;  // 0 unknown, 1 computing, 2 known, 3 unavailable

int goheap_frame_pointer_backtrace(void **frames, int max) {
    if (stack_state != 2) {
        if (stack_state != 0) return 0;
        stack_state = 1;
        pthread_attr_t attr;
        void *addr;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
                stack_lo = (uintptr_t)addr;
                stack_hi = (uintptr_t)addr + size;
            }
            pthread_attr_destroy(&attr);
        }
        stack_state = stack_hi > stack_lo ? 2 : 3;
        if (stack_state != 2) return 0;
    }
    // Each frame: [fp] = the caller's fp, [fp + 8] = the return address.
    // The walk stops at the first link that does not go up the stack.
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    int n = 0;
    while (n < max && fp >= stack_lo && fp + 16 <= stack_hi && (fp & 7) == 0) {
        uintptr_t next = ((uintptr_t *)fp)[0];
        void *ret = ((void **)fp)[1];
        if (ret == NULL) break;
        frames[n++] = ret;
        if (next <= fp) break;
        fp = next;
    }
    return n;
}

bool goheap_symbolize(const void *pc, const char **file, uintptr_t *file_base,
                      const char **symbol, uintptr_t *symbol_address) {
    Dl_info info;
    if (dladdr(pc, &info) == 0) return false;
    *file = info.dli_fname;
    *file_base = (uintptr_t)info.dli_fbase;
    *symbol = info.dli_sname;
    *symbol_address = (uintptr_t)info.dli_saddr;
    return true;
}

// zlib is opened with dlopen, like libnuma, so the core needs no link flag;
// compress2 writes a zlib stream (2-byte header, raw deflate, Adler-32), and
// the raw deflate in the middle is what a gzip member carries.
static pthread_once_t zlib_once = PTHREAD_ONCE_INIT;
static int (*zlib_compress2)(unsigned char *, unsigned long *, const unsigned char *, unsigned long, int);

static void zlib_load_once(void) {
    void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h) *(void **)&zlib_compress2 = dlsym(h, "compress2");
}

long goheap_zlib_deflate_raw(const void *src, size_t n, void *dst, size_t cap) {
    pthread_once(&zlib_once, zlib_load_once);
    if (!zlib_compress2 || cap < 8) return -1;
    unsigned long out = cap;
    if (zlib_compress2((unsigned char *)dst, &out, (const unsigned char *)src, n, 6) != 0) return -1;
    if (out < 6) return -1;
    memmove(dst, (unsigned char *)dst + 2, out - 6);
    return (long)(out - 6);
}

int64_t goheap_wall_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int goheap_atexit(void (*fn)(void)) { return atexit(fn); }
