#!/usr/bin/env bash
# CI check of GoHeap's page placement on emulated NUMA machines.
#
# usage: scripts/numa-ci.sh [--gomem PATH] [--timeout SEC]
#
#   --gomem PATH    use this gomem (linked with --static-swift-stdlib) instead
#                   of building one
#   --timeout SEC   limit for each guest run (default 900)
#
# 1. Builds gomem with the Swift standard library linked in
#    (swift build -c release --static-swift-stdlib --product gomem
#    --scratch-path .build-static), and checks with ldd that it needs only
#    glibc's and the C++ runtime's shared libraries, which the guest gets.
# 2. Runs `gomem numa --check --assert` in three guests (scripts/numa-vm.sh):
#      2 nodes x 2 CPUs, transparent_hugepage=always   numa_balancing=disable
#      2 nodes x 2 CPUs, transparent_hugepage=madvise  numa_balancing=disable
#      4 nodes x 1 CPU,  transparent_hugepage=always   numa_balancing=disable
#    printing each placement table, then one summary line per guest.
#
# Exits 0 when every guest's check passed, 1 otherwise (2 for a usage error).
# Logs: ${NUMA_CI_LOGS:-.build-static/numa-ci}/guest-N.log. On a 2-core
# machine the whole script takes about 2 minutes from a clean build directory
# plus about 15 s per guest; it needs about 2.5 GiB of free memory.
set -euo pipefail
cd "$(dirname "$0")/.."
me=numa-ci

gomem="" limit=900
while (($#)); do
    case $1 in
        --gomem) (($# >= 2)) || { echo "$me: --gomem needs a path" >&2; exit 2; }; gomem=$2; shift 2 ;;
        --timeout) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "$me: --timeout wants seconds" >&2; exit 2; }; limit=$2; shift 2 ;;
        -h | --help) sed -n '/^# usage:/,/^#   --timeout/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "$me: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.0f", a - b }'; }
began=$(now)

# --- 1. a gomem the guest can run ------------------------------------------------
build_seconds="-"
if [ -z "$gomem" ]; then
    echo "== $me: static build of gomem"
    t=$(now)
    swift build -c release --static-swift-stdlib --product gomem --scratch-path .build-static
    build_seconds=$(since "$t")
    gomem=.build-static/release/gomem
    echo "== $me: built in $build_seconds s"
fi
[ -x "$gomem" ] || { echo "$me: $gomem is not an executable" >&2; exit 2; }

allowed='^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|libdl\.so\.2|libpthread\.so\.0)$'
libs=$(ldd "$gomem" 2>&1 | awk '/not a dynamic executable/ { next } { print $1 }' | xargs -r -n1 basename | paste -sd' ' -)
unexpected=$(tr ' ' '\n' <<<"$libs" | grep -Ev "$allowed" | paste -sd' ' - || true)
if [ -n "$unexpected" ]; then
    echo "$me: $gomem needs shared libraries beyond glibc and the C++ runtime: $unexpected" >&2
    echo "$me: (build it with --static-swift-stdlib)" >&2
    exit 1
fi
echo "== $me: $gomem needs only $libs"

# --- 2. the guests ---------------------------------------------------------------
guests=(
    "--nodes 2 --cpus-per-node 2 --mem-per-node 1024|transparent_hugepage=always numa_balancing=disable"
    "--nodes 2 --cpus-per-node 2 --mem-per-node 1024|transparent_hugepage=madvise numa_balancing=disable"
    "--nodes 4 --cpus-per-node 1 --mem-per-node 512|transparent_hugepage=always numa_balancing=disable"
)
logs=${NUMA_CI_LOGS:-.build-static/numa-ci}
mkdir -p "$logs"
summary=() failed=0
for i in "${!guests[@]}"; do
    machine=${guests[$i]%%|*} kernel_args=${guests[$i]#*|}
    log=$logs/guest-$((i + 1)).log
    echo
    echo "== $me: guest $((i + 1))/${#guests[@]}: $machine --append '$kernel_args'"
    t=$(now)
    set +e
    # shellcheck disable=SC2086  # $machine is a list of options
    bash scripts/numa-vm.sh $machine --append "$kernel_args" --timeout "$limit" \
        -- "$gomem" numa --check --assert 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    seconds=$(since "$t")
    case $status in
        0) verdict="passed" ;;
        1) verdict="FAILED: placement (table above)" ;;
        124) verdict="FAILED: no result within $limit s" ;;
        125) verdict="FAILED: the guest reported no exit status (console tail above)" ;;
        *) verdict="FAILED: exit status $status" ;;
    esac
    if [ "$status" -ne 0 ]; then
        failed=1
        cases=$(sed -n 's/^placement check: .* failed: //p' "$log" | tail -n 1)
        [ -z "$cases" ] || verdict+=", cases $cases"
    fi
    summary+=("guest $((i + 1)) ($machine, $kernel_args): $verdict, $seconds s")
done

echo
echo "== $me: summary"
printf '%s\n' "${summary[@]}"
echo "static build: $build_seconds s; total: $(since "$began") s; logs in $logs"
exit "$failed"
