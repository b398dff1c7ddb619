/* check.h: the assertion framework of libgoheap-malloc's C and C++ tests.
 *
 * A test is a function registered with TEST(name); main() is RUN_TESTS():
 *
 *   TEST(calloc_zeroes) { char *p = calloc(1, 64); CHECK(p != NULL, "calloc(1, 64) returned NULL"); ... }
 *   int main(int argc, char **argv) { return RUN_TESTS(argc, argv); }
 *
 * CHECK(cond, fmt, ...) reports a failed condition with the test's name, the
 * file and line, the condition's text and a printf-style message, counts it
 * and goes on; REQUIRE(...) does the same and then leaves the test (for
 * checks the rest of the test depends on). A test that fails its checks does
 * not stop the others. Output goes straight to file descriptor 2 with
 * write(2): no stdio buffer is involved, so a message gets out even when the
 * allocator under test misbehaves, and a forked child's output is not
 * printed twice.
 *
 * The program's arguments are substrings: only tests whose name contains one
 * of them run (none: all). `--list` prints the names. The exit status is 0
 * when every check passed, 1 otherwise; the last line says which tests
 * failed.
 *
 * Tests run in registration order (the order of their definitions): they are
 * collected by constructors, which run in order within one file. */
#ifndef GOHEAP_CHECK_H
#define GOHEAP_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*check_test_fn)(void);

#define CHECK_MAX_TESTS 256
static struct { const char *name; check_test_fn fn; } check_tests[CHECK_MAX_TESTS];
static int check_test_count;
static const char *check_current = "(none)";
static long check_failures_in_test, check_total_checks;

static void check_register(const char *name, check_test_fn fn) {
    if (check_test_count < CHECK_MAX_TESTS) {
        check_tests[check_test_count].name = name;
        check_tests[check_test_count].fn = fn;
        check_test_count++;
    }
}

static void check_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void check_say(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    int off = 0;
    while (off < n) {
        ssize_t w = write(2, buf + off, (size_t)(n - off));
        if (w <= 0) break;
        off += (int)w;
    }
}

static void check_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void check_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Only the first 20 failures of a test are printed (a sweep can fail
     * thousands of times for one cause); all are counted. */
    if (check_failures_in_test < 20)
        check_say("FAIL %s (%s:%d): %s: %s\n", check_current, file, line, cond, msg);
    else if (check_failures_in_test == 20)
        check_say("FAIL %s: further failures of this test are counted, not printed\n", check_current);
    check_failures_in_test++;
}

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        check_total_checks++;                                                    \
        if (!(cond)) check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);         \
    } while (0)

#define REQUIRE(cond, ...)                                                       \
    do {                                                                         \
        check_total_checks++;                                                    \
        if (!(cond)) { check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); return; } \
    } while (0)

/* Registers `static void test_name(void)`; the body follows the macro. */
#define TEST(name)                                                               \
    static void test_##name(void);                                               \
    __attribute__((constructor)) static void check_register_##name(void) {       \
        check_register(#name, test_##name);                                      \
    }                                                                            \
    static void test_##name(void)

static double check_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int check_run(int argc, char **argv, const char *suite) {
    int ran = 0, failed = 0;
    char failed_names[2048] = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--list") == 0) {
            for (int t = 0; t < check_test_count; t++) check_say("%s\n", check_tests[t].name);
            return 0;
        }
    }
    double start = check_now();
    for (int t = 0; t < check_test_count; t++) {
        int selected = argc <= 1;
        for (int i = 1; i < argc && !selected; i++) selected = strstr(check_tests[t].name, argv[i]) != NULL;
        if (!selected) continue;
        check_current = check_tests[t].name;
        check_failures_in_test = 0;
        double t0 = check_now();
        check_tests[t].fn();
        ran++;
        if (check_failures_in_test) {
            failed++;
            check_say("FAILED %s (%ld failed checks, %.2f s)\n", check_tests[t].name, check_failures_in_test, check_now() - t0);
            if (strlen(failed_names) + strlen(check_tests[t].name) + 2 < sizeof failed_names) {
                strcat(failed_names, " ");
                strcat(failed_names, check_tests[t].name);
            }
        } else {
            check_say("ok     %s (%.2f s)\n", check_tests[t].name, check_now() - t0);
        }
    }
    if (ran == 0) {
        check_say("%s: no test matched the arguments\n", suite);
        return 1;
    }
    if (failed)
        check_say("%s: FAIL: %d of %d tests failed (%ld checks in all, %.1f s):%s\n", suite, failed, ran,
                  check_total_checks, check_now() - start, failed_names);
    else
        check_say("%s: PASS: %d tests, %ld checks, %.1f s\n", suite, ran, check_total_checks, check_now() - start);
    return failed ? 1 : 0;
}

#define RUN_TESTS(argc, argv) check_run((argc), (argv), (argv)[0])

#ifdef __cplusplus
}
#endif

#endif
