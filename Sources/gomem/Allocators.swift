// The allocators gomem bench compares. Each workload is a generic loop
// specialised per allocator type, so every allocator runs the same code and
// calls its own entry points directly (GoHeap through its Swift API, the C
// allocators through the functions dlopen found).
import GoHeap
#if canImport(Glibc)
import Glibc
#endif

protocol BenchAllocator: Sendable {
    var name: String { get }
    func alloc(_ n: Int) -> UnsafeMutableRawPointer
    func free(_ p: UnsafeMutableRawPointer)
}

struct GoHeapAllocator: BenchAllocator {
    let heap: Heap
    var name: String { "GoHeap" }
    @inline(__always) func alloc(_ n: Int) -> UnsafeMutableRawPointer { heap.allocate(byteCount: n) }
    @inline(__always) func free(_ p: UnsafeMutableRawPointer) { heap.deallocate(p) }
}

struct GlibcAllocator: BenchAllocator {
    var name: String { "glibc" }
    @inline(__always) func alloc(_ n: Int) -> UnsafeMutableRawPointer { malloc(n)! }
    @inline(__always) func free(_ p: UnsafeMutableRawPointer) { Glibc.free(p) }
}

typealias CMalloc = @convention(c) (Int) -> UnsafeMutableRawPointer?
typealias CFree = @convention(c) (UnsafeMutableRawPointer?) -> Void
typealias CMallocX = @convention(c) (Int, Int32) -> UnsafeMutableRawPointer?
typealias CFreeX = @convention(c) (UnsafeMutableRawPointer?, Int32) -> Void

/// mimalloc and tcmalloc: malloc/free-shaped entry points.
struct DLAllocator: BenchAllocator {
    let name: String
    let mallocFn: CMalloc
    let freeFn: CFree
    @inline(__always) func alloc(_ n: Int) -> UnsafeMutableRawPointer { mallocFn(n)! }
    @inline(__always) func free(_ p: UnsafeMutableRawPointer) { freeFn(p) }
}

/// jemalloc through its non-standard API, mallocx/dallocx.
struct JemallocAllocator: BenchAllocator {
    let mallocx: CMallocX
    let dallocx: CFreeX
    var name: String { "jemalloc" }
    @inline(__always) func alloc(_ n: Int) -> UnsafeMutableRawPointer { mallocx(n, 0)! }
    @inline(__always) func free(_ p: UnsafeMutableRawPointer) { dallocx(p, 0) }
}

/// One competitor, or the reason it is missing.
enum Competitor {
    case goheap(GoHeapAllocator)
    case glibc(GlibcAllocator)
    case dl(DLAllocator)
    case jemalloc(JemallocAllocator)

    var name: String {
        switch self {
        case .goheap(let a): return a.name
        case .glibc(let a): return a.name
        case .dl(let a): return a.name
        case .jemalloc(let a): return a.name
        }
    }
}

struct Skipped {
    let name: String
    let reason: String
}

/// Loads the competitors. dlopen with RTLD_LOCAL keeps each library's malloc
/// from replacing the process's: only the entry points looked up here use it.
func loadCompetitors(heap: Heap) -> ([Competitor], [Skipped]) {
    var found: [Competitor] = [.goheap(GoHeapAllocator(heap: heap)), .glibc(GlibcAllocator())]
    var skipped: [Skipped] = []
    func open(_ lib: String) -> UnsafeMutableRawPointer? { dlopen(lib, RTLD_NOW | RTLD_LOCAL) }
    var jemallocError = ""
    let jh = open("libjemalloc.so.2")
    if jh == nil, let e = dlerror() { jemallocError = String(cString: e) }
    if let h = jh, let m = dlsym(h, "mallocx"), let f = dlsym(h, "dallocx") {
        found.append(.jemalloc(JemallocAllocator(mallocx: unsafeBitCast(m, to: CMallocX.self),
                                                 dallocx: unsafeBitCast(f, to: CFreeX.self))))
    } else {
        skipped.append(Skipped(name: "jemalloc", reason: jemallocError.contains("static TLS")
            ? "libjemalloc.so.2 could not be loaded: \(jemallocError)"
            : "libjemalloc.so.2 not found (apt-get install libjemalloc-dev)"))
    }
    if let h = open("libmimalloc.so.2"), let m = dlsym(h, "mi_malloc"), let f = dlsym(h, "mi_free") {
        found.append(.dl(DLAllocator(name: "mimalloc", mallocFn: unsafeBitCast(m, to: CMalloc.self),
                                     freeFn: unsafeBitCast(f, to: CFree.self))))
    } else {
        skipped.append(Skipped(name: "mimalloc", reason: "libmimalloc.so.2 not found (apt-get install libmimalloc-dev)"))
    }
    if let h = open("libtcmalloc_minimal.so.4"), let m = dlsym(h, "tc_malloc"), let f = dlsym(h, "tc_free") {
        found.append(.dl(DLAllocator(name: "tcmalloc", mallocFn: unsafeBitCast(m, to: CMalloc.self),
                                     freeFn: unsafeBitCast(f, to: CFree.self))))
    } else {
        skipped.append(Skipped(name: "tcmalloc", reason: "libtcmalloc_minimal.so.4 not found (apt-get install libgoogle-perftools-dev)"))
    }
    return (found, skipped)
}
