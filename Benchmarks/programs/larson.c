/* larson: a larson-style allocator stress in C for `gomem bench --programs`.
 *
 *   larson [GENERATIONS]      (default 40; the bench passes its own)
 *
 * Like Larson and Krishnan's server benchmark: 4 chains of threads, each
 * owning 2000 slots of live blocks (8 B - 1 KiB, a few up to 16 KiB). A
 * thread does 20000 operations (free a random slot and allocate a new size
 * into it; every 8th a realloc instead; every 16th swaps its block with one
 * in a shared exchange, so blocks end up freed by other chains), then starts
 * its successor with the slots and exits: blocks allocated by one thread are
 * freed by threads that did not exist yet, after their allocator exited.
 * Every block carries its size and a tag at both ends, checked when it is
 * freed or moved; damage makes the exit status 1. The output is deterministic.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHAINS = 4, SLOTS = 2000, OPS = 20000, EXCHANGE = 1024, LOCKS = 16 };

static void *exchange[EXCHANGE];
static pthread_mutex_t exchange_locks[LOCKS];
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int chains_done;
static long damaged;
static int generations;

struct chain {
    int id, generation;
    uint64_t rng;
    void *slots[SLOTS];
    unsigned long operations;
};

static uint64_t next(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

static size_t pick(uint64_t *s) {
    uint64_t p = next(s) % 100;
    if (p < 97) return 8 + next(s) % 1017;
    return 1024 + next(s) % (15 * 1024);
}

static void mark(unsigned char *p, size_t n, unsigned char tag) {
    uint32_t size = (uint32_t)n;
    memcpy(p, &size, 4);
    p[4] = tag;
    p[n - 1] = tag;
}

static void *make(size_t n, unsigned char tag) {
    if (n < 8) n = 8;
    unsigned char *p = malloc(n);
    if (!p) { fprintf(stderr, "larson: malloc(%zu) failed\n", n); exit(2); }
    mark(p, n, tag);
    return p;
}

static void check(void *q) {
    unsigned char *p = q;
    uint32_t size;
    memcpy(&size, p, 4);
    if (size < 8 || size > 16 * 1024 + 8 || p[size - 1] != p[4]) __atomic_fetch_add(&damaged, 1, __ATOMIC_RELAXED);
}

static void *run(void *arg) {
    struct chain *c = arg;
    for (int op = 0; op < OPS; ++op) {
        int i = (int)(next(&c->rng) % SLOTS);
        uint64_t kind = next(&c->rng) % 16;
        if (kind == 0) {
            int e = (int)(next(&c->rng) % EXCHANGE);
            pthread_mutex_t *l = &exchange_locks[e % LOCKS];
            check(c->slots[i]);
            pthread_mutex_lock(l);
            void *t = exchange[e];
            exchange[e] = c->slots[i];
            c->slots[i] = t;
            pthread_mutex_unlock(l);
            check(c->slots[i]);
        } else if (kind < 3) {
            check(c->slots[i]);
            size_t n = pick(&c->rng);
            unsigned char tag = ((unsigned char *)c->slots[i])[4];
            unsigned char *p = realloc(c->slots[i], n < 8 ? 8 : n);
            if (!p) { fprintf(stderr, "larson: realloc failed\n"); exit(2); }
            mark(p, n < 8 ? 8 : n, tag);
            c->slots[i] = p;
        } else {
            check(c->slots[i]);
            free(c->slots[i]);
            c->slots[i] = make(pick(&c->rng), (unsigned char)next(&c->rng));
        }
        ++c->operations;
    }
    if (++c->generation < generations) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, run, c) != 0) { fprintf(stderr, "larson: pthread_create failed\n"); exit(2); }
        pthread_attr_destroy(&a);
    } else {
        pthread_mutex_lock(&done_lock);
        ++chains_done;
        pthread_cond_signal(&done_cond);
        pthread_mutex_unlock(&done_lock);
    }
    return NULL;
}

int main(int argc, char **argv) {
    generations = argc > 1 ? atoi(argv[1]) : 40;
    if (generations <= 0) { fprintf(stderr, "usage: larson [GENERATIONS > 0]\n"); return 64; }
    uint64_t seed = 12345;
    for (int i = 0; i < LOCKS; ++i) pthread_mutex_init(&exchange_locks[i], NULL);
    for (int e = 0; e < EXCHANGE; ++e) exchange[e] = make(pick(&seed), (unsigned char)next(&seed));
    static struct chain chains[CHAINS];
    for (int t = 0; t < CHAINS; ++t) {
        chains[t].id = t;
        chains[t].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1) + 7;
        for (int i = 0; i < SLOTS; ++i) chains[t].slots[i] = make(pick(&chains[t].rng), (unsigned char)t);
    }
    for (int t = 0; t < CHAINS; ++t) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, run, &chains[t]) != 0) { fprintf(stderr, "larson: pthread_create failed\n"); return 2; }
        pthread_attr_destroy(&a);
    }
    pthread_mutex_lock(&done_lock);
    while (chains_done < CHAINS) pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
    unsigned long ops = 0;
    for (int t = 0; t < CHAINS; ++t) {
        ops += chains[t].operations;
        for (int i = 0; i < SLOTS; ++i) { check(chains[t].slots[i]); free(chains[t].slots[i]); }
    }
    for (int e = 0; e < EXCHANGE; ++e) { check(exchange[e]); free(exchange[e]); }
    printf("larson: %d chains of %d threads, %lu operations, %ld damaged\n", CHAINS, generations, ops, damaged);
    return damaged == 0 ? 0 : 1;
}
