/* goheap.h: GoHeap as the C allocator, for C and C++ programs that link
 * libgoheap-malloc.so (or load it with LD_PRELOAD).
 *
 * The library exports the C allocation family (malloc, free, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size, malloc_trim, mallinfo, mallinfo2, mallopt,
 * malloc_stats) with glibc's contracts; their declarations are the C
 * library's own (<stdlib.h>, <malloc.h>). A request larger than RAM + swap
 * (256 times that when vm.overcommit_memory is 1) fails with ENOMEM, as
 * glibc's does under the kernel's default overcommit rules. The library starts
 * under an address-space limit (ulimit -v) too, and returns NULL when it is
 * reached. This header adds GoHeap's own entry
 * points. All of them are thread safe, and all may be called before the
 * first malloc (they create the heap when needed).
 *
 * Environment (read once, when the heap is created):
 *   GOHEAP_SHOW_STATS=1        print a statistics line to stderr at exit
 *   GOHEAP_MEMORY_LIMIT=bytes  soft limit on resident heap memory (suffixes
 *                              K, M, G, KiB, MiB, GiB); free pages are returned
 *                              to the OS before the heap grows past it
 *   GOHEAP_HUGE_THRESHOLD=bytes  blocks of at least this size go to 2 MiB
 *                              aligned MADV_HUGEPAGE arenas; off by default
 *                              (0 or "off"); at least 32769
 *   GOHEAP_NUMA=policy         local (default: a heap partition per node),
 *                              firsttouch, interleave, bind:N, preferred:N
 *   GOHEAP_SCAVENGER=background  return free memory from a background thread
 *                              (default: from the allocator's slow paths; no
 *                              thread is started in the host process)
 *   GOHEAP_VERBOSE=1           print the configuration when the heap is made,
 *                              and at exit the count of frees forwarded to
 *                              the next allocator
 * An invalid value is reported on stderr and ignored.
 */
#ifndef GOHEAP_H
#define GOHEAP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Counters of the heap, shaped like Go's runtime.MemStats. */
typedef struct goheap_stats {
    size_t heap_alloc;        /* bytes in live blocks (rounded to their size class) */
    size_t total_alloc;       /* bytes ever allocated */
    size_t mallocs;           /* blocks ever allocated */
    size_t frees;             /* blocks ever freed */
    size_t heap_sys;          /* bytes of arena memory obtained from the OS */
    size_t heap_inuse;        /* bytes in pages holding at least one block */
    size_t heap_idle;         /* bytes in free pages */
    size_t heap_released;     /* free bytes returned to the OS (not resident) */
    size_t released_total;    /* bytes ever returned to the OS */
    size_t metadata_sys;      /* bytes of allocator metadata */
    size_t large_allocs;      /* blocks over 32 KiB ever allocated */
    size_t large_bytes_inuse; /* bytes in live blocks over 32 KiB */
    size_t thread_caches;     /* threads with a cache */
    size_t numa_fallbacks;    /* allocations served off their node for lack of memory */
} goheap_stats_t;

/* Fills *out. Returns 0. */
int goheap_get_stats(goheap_stats_t *out);

/* Returns every free page to the OS now, including those cached by idle
 * threads. Returns the bytes released. (malloc_trim(0) does the same.) */
size_t goheap_release_free_memory(void);

/* Sets the soft memory limit in bytes; a negative value removes it. */
void goheap_set_memory_limit(long long bytes);

/* Sends the calling thread's allocations to NUMA node `node` (-1: back to
 * the heap's policy). Returns 0, or EINVAL for a node the machine lacks. */
int goheap_set_allocation_node(int node);

/* Number of NUMA nodes the heap sees (1 on a machine without NUMA). */
int goheap_node_count(void);

/* Nonzero when p lies in GoHeap's arenas (a block GoHeap handed out, live
 * or not); zero for pointers of other allocators. */
int goheap_owns(const void *p);

/* The library's version, e.g. "goheap-malloc 0.3.0". */
const char *goheap_version(void);

#ifdef __cplusplus
}
#endif

#endif
