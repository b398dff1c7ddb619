#!/usr/bin/env bash
# Heap profiles read back by Go's own pprof: a test program plants one
# allocation site that keeps far more memory live than any other
# (goheap-testhelper profile-planted), writes its profile through the API and
# through GOHEAP_MEMPROFILE at exit, and `go tool pprof -top` must list that
# function first, `-traces` must print its stacks, and `gomem profile` must
# write a profile pprof reads. Installs go1.19 (golang-1.19-go) when no `go`
# is on PATH. Usage: scripts/pprof-check.sh [build configuration, default debug]
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-debug}
if command -v go >/dev/null; then
    go=$(command -v go)
elif [ -x /usr/lib/go-1.19/bin/go ]; then
    go=/usr/lib/go-1.19/bin/go
else
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y golang-1.19-go >/dev/null
    go=/usr/lib/go-1.19/bin/go
fi
swift build -c "$config" --product goheap-testhelper >/dev/null
swift build -c "$config" --product gomem >/dev/null
bin=$(swift build -c "$config" --show-bin-path)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# pprof's cache and home must not be the user's.
export PPROF_TMPDIR="$dir" HOME="$dir"
fail() { echo "pprof-check: FAIL: $*" >&2; exit 1; }

top_entry() {  # profile [pprof options] -> the function of the first -top row
    local out
    out=$("$go" tool pprof -top "${@:2}" "$1" 2>"$dir/err") || { cat "$dir/err" >&2; fail "go tool pprof -top ${*:2} $1"; }
    echo "$out" | awk '/flat%/ { getline; for (i = 6; i <= NF; i++) printf "%s ", $i; print ""; exit }'
}

check_planted() {  # profile how
    local top other traces
    top=$(top_entry "$1")
    case "$top" in *plantedAllocationSite*) ;; *) fail "$2: top inuse_space entry is '$top'";; esac
    other=$(top_entry "$1" -sample_index=alloc_objects)
    case "$other" in *profileNoiseSite*) ;; *) fail "$2: top alloc_objects entry is '$other'";; esac
    traces=$("$go" tool pprof -traces "$1" 2>"$dir/err") || { cat "$dir/err" >&2; fail "$2: go tool pprof -traces"; }
    echo "$traces" | grep -q "plantedAllocationSite" || fail "$2: -traces does not show the planted site"
    echo "$traces" | grep -Eq "bytes: +8kB" || fail "$2: -traces does not show the 8 KiB objects"
    echo "pprof-check: $2: top entry $top"
}

"$bin/goheap-testhelper" profile-planted "$dir/api.pb.gz" >/dev/null
check_planted "$dir/api.pb.gz" "writeHeapProfile(to:)"
GOHEAP_MEMPROFILE="$dir/env.pb.gz" "$bin/goheap-testhelper" profile-planted >/dev/null
[ -s "$dir/env.pb.gz" ] || fail "GOHEAP_MEMPROFILE wrote nothing"
check_planted "$dir/env.pb.gz" "GOHEAP_MEMPROFILE"

"$bin/gomem" profile hot-pair --quick --rate 65536 -o "$dir/gomem.pb.gz" >/dev/null
# In a debug build the allocator's wrapper is not inlined into the loop.
top=$(top_entry "$dir/gomem.pb.gz" -sample_index=alloc_space)
case "$top" in *hotPair*|*GoHeapAllocator.alloc*) ;; *) fail "gomem profile hot-pair: top alloc_space entry is '$top'";; esac
"$go" tool pprof -traces "$dir/gomem.pb.gz" 2>/dev/null | grep -q "Workloads.hotPair" \
    || fail "gomem profile hot-pair: -traces does not show Workloads.hotPair"
echo "pprof-check: gomem profile hot-pair: top entry $top"
echo "pprof-check: ok"
