#!/usr/bin/env bash
# Boots a disposable emulated NUMA machine (QEMU with TCG, so no KVM and no
# nested virtualization are needed), runs one program in it and hands back the
# program's output and exit status. GoHeap uses it to check page placement on
# several nodes from a one-node build machine or CI runner.
#
# usage: scripts/numa-vm.sh [--nodes N] [--cpus-per-node C] [--mem-per-node MiB]
#            [--add FILE]... [--append 'KERNEL ARGS'] [--timeout SEC] [--verbose]
#            -- PROGRAM [ARGS...]
#
#   --nodes N            sockets, one NUMA node each (default 2)
#   --cpus-per-node C    CPUs per socket (default 2)
#   --mem-per-node MiB   memory per node (default 1024)
#   --add FILE           another file for /usr/local/bin in the guest (repeatable)
#   --append ARGS        extra kernel command line, e.g.
#                        'transparent_hugepage=madvise numa_balancing=disable'
#   --timeout SEC        host-side limit for the whole run (default 600)
#   --verbose            show the kernel's boot log too
#
# Exit status: the program's (128+n when a signal n ended it), 124 when the
# timeout hit, 125 when the guest never reported a status (kernel panic, QEMU
# refused an option), 2 for a usage error. The program's stdout and stderr come
# out together on stdout; one summary line with the timings goes to stderr.
#
# The guest is Debian's stock kernel and an initramfs built here: busybox,
# PROGRAM, the --add files, numactl, libnuma.so.1 (GoHeap loads it with
# dlopen) and the shared libraries ldd lists for all of them. Nothing else of
# the host is visible. The program runs in /tmp (a tmpfs) with /proc, /sys and
# /dev mounted. Link Swift programs with --static-swift-stdlib so that ldd
# lists only glibc's and the C++ runtime's libraries.
#
# Missing host packages are installed with apt-get (root or sudo):
# qemu-system-x86, linux-image-amd64, busybox-static, numactl, cpio, xz-utils.
# The kernel's compressed payload is unpacked once into
# ${GOHEAP_NUMA_VM_CACHE:-/var/tmp/goheap-numa-vm} and booted as an ELF image
# through its PVH entry point, which under TCG saves seconds per boot over
# letting the guest decompress a bzImage. GOHEAP_NUMA_VM_KERNEL picks another
# kernel image (a bzImage or an ELF vmlinux).
set -euo pipefail

me=numa-vm
usage() {
    sed -n '/^# usage:/,/^#   --verbose/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
fail() { echo "$me: $*" >&2; exit 2; }
number() { [[ $2 =~ ^[1-9][0-9]*$ ]] || fail "$1 wants a positive whole number, got '$2'"; }

nodes=2 per_node_cpus=2 per_node_mib=1024 limit=600 verbose=0 kernel_args="" extra=()
while (($#)); do
    case $1 in
        --nodes | --cpus-per-node | --mem-per-node | --timeout | --append | --add)
            (($# >= 2)) || fail "$1 needs a value"
            case $1 in
                --nodes) number "$1" "$2"; nodes=$2 ;;
                --cpus-per-node) number "$1" "$2"; per_node_cpus=$2 ;;
                --mem-per-node) number "$1" "$2"; per_node_mib=$2 ;;
                --timeout) number "$1" "$2"; limit=$2 ;;
                --append) kernel_args+=" $2" ;;
                --add) extra+=("$2") ;;
            esac
            shift 2 ;;
        --verbose) verbose=1; shift ;;
        -h | --help) usage ;;
        --) shift; break ;;
        -*) echo "$me: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
(($#)) || usage
((nodes <= 64)) || fail "--nodes is at most 64 (QEMU's limit for distances), got $nodes"
program=$(command -v -- "$1" || true)
if [ -z "$program" ] || [ ! -f "$program" ] || [ ! -x "$program" ]; then fail "'$1' is not an executable file"; fi
program=$(readlink -f -- "$program")
shift
for f in "${extra[@]}"; do [ -f "$f" ] || fail "--add $f: no such file"; done

# --- host packages -----------------------------------------------------------
have_static_busybox() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[ -n "${GOHEAP_NUMA_VM_KERNEL:-}" ] || compgen -G '/boot/vmlinuz-*' >/dev/null || missing+=(linux-image-amd64)
have_static_busybox || missing+=(busybox-static)
command -v numactl >/dev/null || missing+=(numactl)
command -v cpio >/dev/null || missing+=(cpio)
command -v xz >/dev/null || missing+=(xz-utils)
if ((${#missing[@]})); then
    echo "$me: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the kernel ----------------------------------------------------------------
if [ -n "${GOHEAP_NUMA_VM_KERNEL:-}" ]; then
    kernel=$GOHEAP_NUMA_VM_KERNEL
else
    kernel=$(printf '%s\n' /boot/vmlinuz-* | sort -V | tail -n 1)
fi
[ -r "$kernel" ] || fail "cannot read the kernel image $kernel"
cache=${GOHEAP_NUMA_VM_CACHE:-/var/tmp/goheap-numa-vm}
is_elf() { [ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }
boot_image=$kernel
if ! is_elf "$kernel"; then
    elf=$cache/vmlinux-$(basename "$kernel")-$(stat -c %s-%Y "$kernel")
    if [ ! -s "$elf" ]; then
        # A bzImage carries the real kernel as an xz stream after its setup
        # code. Try each xz header in the file until one unpacks to an ELF.
        mkdir -p "$cache"
        for at in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$kernel" | cut -d: -f1 | head -n 4); do
            tail -c "+$((at + 1))" "$kernel" | xz -dc 2>/dev/null > "$elf.$$" || true
            if is_elf "$elf.$$"; then mv "$elf.$$" "$elf"; break; fi
        done
        rm -f "$elf.$$"
    fi
    # No xz payload (another compression): QEMU boots the bzImage itself.
    [ -s "$elf" ] && boot_image=$elf
fi

# --- the initramfs ---------------------------------------------------------------
scratch=$(mktemp -d "${TMPDIR:-/tmp}/goheap-numa-vm.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tree=$scratch/tree
mkdir -p "$tree"/{bin,sbin,usr/bin,usr/local/bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$tree/bin/busybox"

# put FILE DIR: FILE into DIR of the guest, with every library ldd finds for it
# at the same path as on the host.
put() {
    cp -L -- "$1" "$tree$2/"
    local lib
    for lib in $(ldd "$1" 2>/dev/null | grep -o '/[^ )]*' || true); do
        [ -e "$tree$lib" ] || cp -L --parents -- "$lib" "$tree"
    done
}
put "$program" /usr/local/bin
for f in "${extra[@]}"; do put "$(readlink -f -- "$f")" /usr/local/bin; done
put "$(command -v numactl)" /usr/bin
# (awk reads all of ldconfig's output: quitting early would kill ldconfig with SIGPIPE)
libnuma=$(/sbin/ldconfig -p | awk '$1 == "libnuma.so.1" && /x86-64/ && !found { found = $NF } END { print found }')
if [ -n "$libnuma" ]; then put "$libnuma" "$(dirname "$libnuma")"; fi
# The guest has no ld.so.cache: point the loader (and dlopen) at every library directory.
library_path=$(cd "$tree" && find . -name '*.so*' | sed 's|^\.||; s|/[^/]*$||' | sort -u | paste -sd: -)

# Markers carry a per-run token, so that no output of the program can fake them.
token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
quoted=""
for a in "$@"; do quoted+=" '${a//\'/\'\\\'\'}'"; done
cat > "$tree/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
export PATH=/usr/local/bin:/usr/bin:/bin:/sbin HOME=/tmp LD_LIBRARY_PATH=$library_path
cd /tmp
read up _ </proc/uptime
echo "<<$token start \$up>>"
/usr/local/bin/$(basename "$program")$quoted
status=\$?
read up _ </proc/uptime
echo "<<$token status \$status \$up>>"
sync
poweroff -f
EOF
chmod 755 "$tree/init"
# Left uncompressed: decompressing in the guest costs more under TCG than the copy.
(cd "$tree" && find . | cpio -o -H newc --quiet) > "$scratch/initramfs.cpio"

# --- the machine -------------------------------------------------------------------
topology=()
for ((n = 0; n < nodes; n++)); do
    first=$((n * per_node_cpus)) last=$((n * per_node_cpus + per_node_cpus - 1))
    topology+=(-object "memory-backend-ram,id=ram$n,size=${per_node_mib}M"
               -numa "node,nodeid=$n,cpus=$first-$last,memdev=ram$n")
done
for ((a = 0; a < nodes; a++)); do
    for ((b = 0; b < nodes; b++)); do
        ((a == b)) || topology+=(-numa "dist,src=$a,dst=$b,val=20")
    done
done
console_level=quiet
((verbose)) && console_level=""

began=$(date +%s.%N)
set +e
timeout -k 5 "$limit" qemu-system-x86_64 -accel tcg -cpu max -nodefaults -no-reboot \
    -display none -monitor none -serial stdio \
    -smp "$((nodes * per_node_cpus)),sockets=$nodes,cores=$per_node_cpus,threads=1" \
    -m "$((nodes * per_node_mib))M" "${topology[@]}" \
    -kernel "$boot_image" -initrd "$scratch/initramfs.cpio" \
    -append "console=ttyS0 $console_level panic=-1$kernel_args" </dev/null 2>&1 |
    tee "$scratch/console" |
    {
        # Pass on what the program prints, between the two markers.
        showing=$verbose
        while IFS= read -r line; do
            line=${line%$'\r'}
            case $line in
                *"<<$token start "*) showing=1 ;;
                *"<<$token status "*)
                    line=${line%%"<<$token status "*}
                    [ -z "$line" ] || printf '%s\n' "$line"
                    showing=$verbose ;;
                *) ((showing)) && printf '%s\n' "$line" ;;
            esac
        done
        true
    }
qemu_status=${PIPESTATUS[0]}
set -e

# --- status and timings ------------------------------------------------------------
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
wall=$(seconds "$(date +%s.%N)" "$began")
start_line=$(tr -d '\r' < "$scratch/console" | grep -ao "<<$token start [0-9.]*>>" | head -n 1 || true)
status_line=$(tr -d '\r' < "$scratch/console" | grep -ao "<<$token status [0-9]* [0-9.]*>>" | head -n 1 || true)
boot=$(echo "$start_line" | awk '{ print $3 }' | tr -d '>')
status=$(echo "$status_line" | awk '{ print $3 }')
ended=$(echo "$status_line" | awk '{ print $4 }' | tr -d '>')
ran="?"
[ -n "$ended" ] && [ -n "$boot" ] && ran=$(seconds "$ended" "$boot")
echo "$me: $nodes nodes x $per_node_cpus CPUs, $per_node_mib MiB/node:" \
     "boot ${boot:-?} s, program $ran s, wall $wall s" >&2
if [ -n "$status" ]; then exit "$status"; fi
if [ "$qemu_status" -eq 124 ] || [ "$qemu_status" -eq 137 ]; then
    echo "$me: no exit status within --timeout $limit s" >&2
    exit 124
fi
echo "$me: the guest ended without reporting an exit status (qemu exit $qemu_status); console tail:" >&2
tail -n 25 "$scratch/console" >&2
exit 125
