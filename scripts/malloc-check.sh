#!/usr/bin/env bash
# Checks libgoheap-malloc.so as the C allocator of real programs (issue #12):
#
#   bash scripts/malloc-check.sh
#
# 1. link: the library needs only libc (and libpthread, libdl, the loader),
#    exports exactly the malloc family and goheap.h's functions, and binds
#    with LD_BIND_NOW (no undefined symbol left, no Swift runtime).
# 2. the C ABI suite (Malloc/tests/abi.c) and the C++ suite (cxx.cpp), each
#    run under LD_PRELOAD and linked directly (-lgoheap-malloc, rpath); the C
#    suite once more with GOHEAP_HUGE_THRESHOLD=1M for the huge-page path, and
#    both with GOHEAP_SCAVENGER=background.
# 3. error behaviour: part of the C suite (fatal_errors_abort_with_message:
#    double and invalid frees abort with "fatal error: goheap:" naming the
#    address; foreign blocks, glibc's own, go to glibc).
# 4. real programs, with and without the library, outputs compared: CPython's
#    regression tests (PYTHONMALLOC=malloc), a deterministic CPython workload,
#    sort on 50 MB, the C++ program, gcc and g++ compiling the test sources
#    (assembly compared), shell pipelines; and GOHEAP_SHOW_STATS=1's line.
#
# Builds the library first (scripts/build-malloc.sh), installs what it needs
# when missing (gcc, g++, binutils, python3.11 and its test suite; needs root
# or sudo), prints a PASS/FAIL line per check and a summary, and exits 1 if
# anything failed. Work files and logs: .build/malloc-check/.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
if ! command -v swiftc >/dev/null && [ -x /opt/swift/usr/bin/swiftc ]; then PATH=/opt/swift/usr/bin:$PATH; fi

# ------------------------------------------------------------ what it needs
bash scripts/install-deps.sh --only gcc g++ binutils python3.11 libpython3.11-testsuite
python=/usr/bin/python3.11

work=$root/.build/malloc-check
rm -rf "$work"
mkdir -p "$work"
lib=$root/.build/malloc/libgoheap-malloc.so
# Every program runs under a time limit (a hang must not hold CI to its end).
# timeout itself runs outside LD_PRELOAD: env sets it for the program only.
limit=(timeout -k 10 300)
results=()
failures=0

# check NAME COMMAND...: runs the command with its output in $work/NAME.log,
# and records PASS or FAIL (printing the log's end on failure).
check() {
    local name=$1
    shift
    local t0=$(date +%s)
    if "$@" >"$work/$name.log" 2>&1; then
        results+=("PASS  $name ($(( $(date +%s) - t0 )) s)")
        echo "PASS  $name ($(( $(date +%s) - t0 )) s)"
    else
        results+=("FAIL  $name ($(( $(date +%s) - t0 )) s, log: .build/malloc-check/$name.log)")
        failures=$((failures + 1))
        echo "FAIL  $name ($(( $(date +%s) - t0 )) s); the end of its log:"
        tail -n 40 "$work/$name.log" | sed 's/^/    /'
    fi
}

summary() {
    echo
    echo "== malloc-check summary ($(( $(date +%s) - start )) s)"
    printf '%s\n' "${results[@]}"
    if ((failures)); then
        echo "malloc-check: FAIL ($failures failed)"
        exit 1
    fi
    echo "malloc-check: PASS (${#results[@]} checks)"
}

# ------------------------------------------------------------ build

echo "== building libgoheap-malloc.so and the test programs"
check build bash scripts/build-malloc.sh
if [ ! -f "$lib" ]; then summary; fi

cflags=(-O2 -g -fno-builtin -Wall -Wextra -Werror -pthread -I Malloc/include -I Malloc/tests)
# --no-as-needed: the C++ program calls malloc only through libstdc++, and
# Debian's linker drops a library the objects themselves do not use.
linked=(-L "$(dirname "$lib")" -Wl,--push-state,--no-as-needed -lgoheap-malloc -Wl,--pop-state
        -Wl,-rpath,"$(dirname "$lib")")
build_tests() {
    cc "${cflags[@]}" -o "$work/abi" Malloc/tests/abi.c -ldl &&
    cc "${cflags[@]}" -DGOHEAP_LINKED -o "$work/abi-linked" Malloc/tests/abi.c "${linked[@]}" -ldl &&
    c++ -std=c++17 "${cflags[@]}" -o "$work/cxx" Malloc/tests/cxx.cpp -ldl &&
    c++ -std=c++17 "${cflags[@]}" -o "$work/cxx-linked" Malloc/tests/cxx.cpp "${linked[@]}" -ldl &&
    # The linked programs must name the library. (No grep -q on a pipe:
    # with pipefail, readelf's SIGPIPE would fail the check.)
    [[ $(readelf -d "$work/abi-linked") == *"Shared library: [libgoheap-malloc.so]"* ]] &&
    [[ $(readelf -d "$work/cxx-linked") == *"Shared library: [libgoheap-malloc.so]"* ]]
}
check build-tests build_tests

# ------------------------------------------------------------ 1. link

echo "== 1. link check"
needed_only_libc() {
    local needed
    needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    echo "NEEDED: $(echo $needed)"
    local bad
    bad=$(echo "$needed" | grep -v -E '^(libc\.so\.6|libpthread\.so\.0|libdl\.so\.2|ld-linux-x86-64\.so\.2)$' || true)
    [ -z "$bad" ] || { echo "unexpected NEEDED entries: $bad"; return 1; }
    echo "$needed" | grep -q '^libc\.so\.6$' || { echo "libc.so.6 is not NEEDED"; return 1; }
}
check link-needed needed_only_libc

exports_exact() {
    # Defined (Ndx not UND) dynamic symbols with GLOBAL or WEAK binding; TLS
    # variables of the shims may show up with LOCAL binding and are ignored.
    readelf --dyn-syms -W "$lib" |
        awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && ($5 == "GLOBAL" || $5 == "WEAK") { sub(/@.*/, "", $8); print $8 }' |
        sort -u >"$work/exports.actual"
    { printf '%s\n' malloc free cfree calloc realloc reallocarray posix_memalign aligned_alloc memalign \
          valloc pvalloc malloc_usable_size malloc_trim mallinfo mallinfo2 mallopt malloc_stats
      # goheap.h's functions: every goheap_ name declared with a parameter list.
      grep -oE '\bgoheap_[a-z0-9_]+\(' Malloc/include/goheap.h | tr -d '(' ; } | sort -u >"$work/exports.expected"
    echo "expected $(wc -l <"$work/exports.expected") symbols, exported $(wc -l <"$work/exports.actual")"
    diff -u "$work/exports.expected" "$work/exports.actual" || { echo "(- missing, + unexpected)"; return 1; }
    # Nothing of Swift's runtime is wanted from outside.
    local und
    und=$(readelf --dyn-syms -W "$lib" | awk '$7 == "UND" && $8 != "" { print $8 }' | grep -iE 'swift|^\$s' || true)
    [ -z "$und" ] || { echo "undefined Swift symbols: $und"; return 1; }
}
check link-exports exports_exact

bind_now() {
    # Every symbol resolves at load (LD_BIND_NOW), and a program runs.
    "${limit[@]}" env LD_BIND_NOW=1 LD_PRELOAD="$lib" /bin/true &&
    [ "$("${limit[@]}" env LD_BIND_NOW=1 LD_PRELOAD="$lib" /bin/echo preloaded)" = preloaded ]
}
check link-bind-now bind_now

# ------------------------------------------------------------ 2, 3. the C and C++ suites

echo "== 2, 3. C ABI and C++ suites (preloaded and linked), error behaviour"
check abi-preload "${limit[@]}" env LD_PRELOAD="$lib" "$work/abi"
check abi-linked "${limit[@]}" "$work/abi-linked"
# The huge-page path (blocks of 1 MiB and more) with the tests that move
# blocks between paths.
check abi-huge-threshold "${limit[@]}" env GOHEAP_HUGE_THRESHOLD=1M LD_PRELOAD="$lib" "$work/abi" \
    goheap_serves posix_memalign aligned_alloc memalign valloc malloc_ calloc impossible realloc mallinfo \
    goheap_get_stats fatal
# Foreign blocks (glibc's own malloc reached through libc's handle, in the
# suite's goheap_owns_and_foreign_pointers) go to glibc: GOHEAP_VERBOSE's exit
# line counts the frees forwarded.
foreign_forwarded() {
    local out
    out=$("${limit[@]}" env GOHEAP_VERBOSE=1 LD_PRELOAD="$lib" "$work/abi" foreign 2>&1) || { echo "$out"; return 1; }
    echo "$out"
    [[ $out =~ goheap:\ ([0-9]+)\ frees\ of\ foreign\ pointers ]] && [ "${BASH_REMATCH[1]}" -ge 100 ] ||
        { echo "expected at least 100 frees forwarded to glibc"; return 1; }
}
check foreign-frees-forwarded foreign_forwarded
check cxx-preload "${limit[@]}" env EXPECT_GOHEAP=1 LD_PRELOAD="$lib" "$work/cxx"
check cxx-linked "${limit[@]}" env EXPECT_GOHEAP=1 "$work/cxx-linked"
# With the background scavenger thread (its allocations must not re-enter the
# heap: they once deadlocked every program), forks restarting it included.
check abi-background-scavenger "${limit[@]}" env GOHEAP_SCAVENGER=background LD_PRELOAD="$lib" "$work/abi"
check cxx-background-scavenger "${limit[@]}" env GOHEAP_SCAVENGER=background EXPECT_GOHEAP=1 LD_PRELOAD="$lib" "$work/cxx"

# ------------------------------------------------------------ 4. real programs

echo "== 4. real programs with and without the library"

# same NAME COMMAND...: runs the command without and with LD_PRELOAD (in
# $work/NAME.plain and NAME.goheap, stderr in .err); both must succeed and
# print the same bytes. check_same NAME COMMAND... is check NAME same NAME.
same() {
    local name=$1
    shift
    "${limit[@]}" "$@" >"$work/$name.plain" 2>"$work/$name.plain.err" ||
        { echo "without the library: exit $?"; cat "$work/$name.plain.err"; return 1; }
    "${limit[@]}" env LD_PRELOAD="$lib" "$@" >"$work/$name.goheap" 2>"$work/$name.goheap.err" ||
        { echo "with the library: exit $?"; cat "$work/$name.goheap.err"; return 1; }
    cmp "$work/$name.plain" "$work/$name.goheap" || { diff "$work/$name.plain" "$work/$name.goheap" | head -20; return 1; }
    echo "identical: $(wc -c <"$work/$name.plain") bytes"
}
check_same() { check "$1" same "$@"; }

# CPython's regression tests, PYTHONMALLOC=malloc so every object is a malloc
# block. Timings vary, so the outcomes (test id, result, skip or failure) are
# compared, from --junit-xml. The two runs go side by side: much of it waits.
py_modules=(test_dict test_list test_set test_unicode test_bytes test_json test_re test_collections
            test_threading test_itertools test_deque test_heapq test_array test_pickle test_struct
            test_tuple test_sort test_memoryview test_ordered_dict test_gc)
py_outcomes() {
    "$python" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
for c in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    kinds = sorted(child.tag for child in c if child.tag in ("skipped", "failure", "error"))
    print(c.get("name"), c.get("result"), *kinds)
EOF
}
cpython_tests() {
    local dir=$work/cpython
    mkdir -p "$dir"
    # The tests' temporary files go to their own directory in each run.
    (cd "$dir" && timeout -k 10 600 env PYTHONMALLOC=malloc "$python" -m test --junit-xml "$dir/plain.xml" \
        "${py_modules[@]}" >"$dir/plain.out" 2>&1; echo $? >"$dir/plain.rc") &
    local bg=$!
    (cd "$dir" && timeout -k 10 600 env PYTHONMALLOC=malloc LD_PRELOAD="$lib" "$python" -m test \
        --junit-xml "$dir/goheap.xml" "${py_modules[@]}" >"$dir/goheap.out" 2>&1; echo $? >"$dir/goheap.rc")
    wait "$bg"
    tail -n 4 "$dir/goheap.out"
    [ "$(cat "$dir/plain.rc")" = 0 ] || { echo "without the library the tests failed:"; tail -n 30 "$dir/plain.out"; return 1; }
    [ "$(cat "$dir/goheap.rc")" = 0 ] || { echo "with the library the tests failed:"; grep -E '^(FAIL|ERROR):' "$dir/goheap.out" | head -30; tail -n 30 "$dir/goheap.out"; return 1; }
    py_outcomes "$dir/plain.xml" | sort >"$dir/plain.outcomes"
    py_outcomes "$dir/goheap.xml" | sort >"$dir/goheap.outcomes"
    diff "$dir/plain.outcomes" "$dir/goheap.outcomes" | head -20
    cmp -s "$dir/plain.outcomes" "$dir/goheap.outcomes" || { echo "outcomes differ"; return 1; }
    echo "same outcomes for $(wc -l <"$dir/goheap.outcomes") test cases in ${#py_modules[@]} modules"
}
check cpython-regrtest cpython_tests

check_same cpython-workload env PYTHONMALLOC=malloc PYTHONHASHSEED=0 "$python" Malloc/tests/pywork.py

# sort: 50 MB of lines, in memory with two threads, and in 16 MiB runs
# merged through temporary files, in the C and a UTF-8 locale.
make_sort_input() {
    "$python" - >"$work/sort.in" <<'EOF'
import random, sys
r = random.Random(7)
words = ["%x" % r.getrandbits(40) for _ in range(5000)]
out, n = [], 0
while n < 50 * 1024 * 1024:
    line = "%s %d %s %s\n" % (r.choice(words), r.randrange(10 ** 9), r.choice(words), "z" * r.randrange(0, 40))
    out.append(line)
    n += len(line)
sys.stdout.write("".join(out))
EOF
}
sort_both() {
    make_sort_input || return 1
    mkdir -p "$work/sort.tmp"
    same sort-numeric env LC_ALL=C sort --parallel=2 -k2,2n -k1,1 "$work/sort.in" &&
    same sort-merge env LC_ALL=C.UTF-8 sort -S 16M -T "$work/sort.tmp" "$work/sort.in"
    local rc=$?
    rm -f "$work/sort.in" "$work"/sort-*.plain "$work"/sort-*.goheap
    return $rc
}
check sort-50MB sort_both

check_same cxx-program "$work/cxx"

compile_both() {
    same gcc-abi gcc -O2 -g -fno-builtin -pthread -I Malloc/include -S -o - Malloc/tests/abi.c &&
    same gxx-cxx g++ -std=c++17 -O2 -pthread -I Malloc/include -S -o - Malloc/tests/cxx.cpp
}
check compilers compile_both

check_same shell-pipelines bash Malloc/tests/pipelines.sh
check_same shell-pipelines-background-scavenger env GOHEAP_SCAVENGER=background bash Malloc/tests/pipelines.sh

# GOHEAP_SHOW_STATS=1: the exit line, with mallocs > 0, proof that the
# library served the program (sort closes its stderr before exit; the
# library writes to a copy).
stats_line() {
    local p line
    for p in "sort $root/README.md" "$python -c print(sum(len(str(i))for(i)in(range(100000))))" "bash -c true|cat"; do
        line=$("${limit[@]}" env GOHEAP_SHOW_STATS=1 LD_PRELOAD="$lib" $p 2>&1 >/dev/null | grep '^goheap: stats:' | tail -n 1)
        echo "$p: $line"
        [[ $line =~ mallocs\ ([0-9]+), ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] || { echo "no stats line with mallocs > 0"; return 1; }
    done
}
check stats-line stats_line

summary
