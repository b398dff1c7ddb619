// Heap-profile scenarios for scripts/pprof-check.sh: a program whose heap
// profile has a known answer. One function, plantedAllocationSite, keeps far
// more memory live than anything else, so `go tool pprof -top` must list it
// first; the other sites allocate more often but keep less.
import GoHeap
#if canImport(Glibc)
import Glibc
#endif

@inline(never)
func plantedAllocationSite(_ heap: Heap, count: Int) -> [UInt] {
    var out: [UInt] = []
    out.reserveCapacity(count)
    for _ in 0..<count { out.append(UInt(bitPattern: heap.allocate(byteCount: 8192))) }
    return out
}

@inline(never)
func profileNoiseSite(_ heap: Heap, count: Int) {
    for _ in 0..<count {
        let p = heap.allocate(byteCount: 64)
        p.storeBytes(of: 1, as: UInt8.self)
        heap.deallocate(p)
    }
}

@inline(never)
func profileSmallerSite(_ heap: Heap, count: Int) -> [UInt] {
    var out: [UInt] = []
    out.reserveCapacity(count)
    for _ in 0..<count { out.append(UInt(bitPattern: heap.allocate(byteCount: 512))) }
    return out
}

/// 64 MiB live from the planted site, 4 MiB live from a smaller one, and
/// 32 MiB allocated and freed at once by a third, profiled at Go's default
/// rate; the profile goes to `path`, or (path nil) to GOHEAP_MEMPROFILE at
/// exit, from Heap.shared.
func runProfilePlanted(path: String?) {
    let h = path == nil ? Heap.shared : heap
    if path != nil { h.startHeapProfile() }
    let planted = plantedAllocationSite(h, count: 8192)
    profileNoiseSite(h, count: 512 * 1024)
    let smaller = profileSmallerSite(h, count: 8192)
    if let path {
        do { try h.writeHeapProfile(to: path) } catch {
            say("\(error)")
            exit(1)
        }
    }
    say("profile-planted: \(planted.count + smaller.count) blocks live")
}
