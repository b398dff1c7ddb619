// Writing a heap profile: the pprof profile.proto file `go tool pprof`
// reads, shaped like the heap profile Go writes (runtime/pprof, protomem.go).
//
// What it holds, as Go's does:
//   - four sample types: alloc_objects/count, alloc_space/bytes,
//     inuse_objects/count, inuse_space/bytes (pprof shows the last by
//     default); period_type space/bytes and period = the sampling rate;
//   - one sample per (call stack, object size), with a "bytes" label giving
//     the object size;
//   - counts scaled by the sampling probability, as Go's protomem does: a
//     site with n sampled objects of s bytes at rate r reports
//     n / (1 - exp(-s/r)) objects (and as many times s bytes). At rate 1
//     nothing is scaled.
//   - Location (address, mapping, function), Function (demangled name, the
//     mangled one as system_name) and Mapping entries (file, address range,
//     offset from /proc/self/maps), time_nanos, and the string table.
// GoHeap's own frames on top of each stack are dropped, as Go drops the
// runtime's, so the first frame is the caller of allocate.
//
// GOHEAP_MEMPROFILE=path turns profiling on for every heap the program
// creates (at GOHEAP_MEMPROFILERATE bytes, default 512 KiB) and writes the
// merged profile of the heaps alive at exit() to path. Outside Embedded mode
// only: it needs the Swift runtime's demangler and String.

#if !hasFeature(Embedded)
import CShims
#if canImport(Glibc)
import Glibc
#endif

/// Why a heap profile could not be written.
public struct HeapProfileError: Error, Sendable, CustomStringConvertible {
    public let path: String
    public let errno: Int32
    public var description: String {
        "could not write heap profile \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

extension Heap {
    /// This heap's profile in pprof's format (gzipped profile.proto): what
    /// `go tool pprof` reads. Empty of samples until profiling has run.
    public func heapProfile() -> [UInt8] {
        HeapProfileBuilder.build([(profiler.snapshot(), max(heapProfileRate, lastProfileRate))])
    }

    /// Writes ``heapProfile()`` to the file at `path` (created or truncated).
    public func writeHeapProfile(to path: String) throws(HeapProfileError) {
        try HeapProfileBuilder.writeFile(heapProfile(), to: path)
    }

    /// The rate samples were taken at, for scaling after profiling stopped.
    var lastProfileRate: Int { profiler.lastRate.load(ordering: .relaxed) }
}

/// Turns sampled records into a profile.proto message.
enum HeapProfileBuilder {
    /// One site after GoHeap's frames are dropped and equal sites merged.
    struct Site {
        var frames: [UInt]
        var size: Int
        var allocObjects = 0.0, allocBytes = 0.0, inUseObjects = 0.0, inUseBytes = 0.0
    }

    /// Scale factor for objects of `size` bytes sampled at `rate`.
    static func scale(size: Int, rate: Int) -> Double {
        if rate <= 1 || size <= 0 { return 1 }
        return 1 / -expm1(-Double(size) / Double(rate))
    }

    /// Sites of several heaps' records (each with its own rate), stacks
    /// symbolized with `symbols`.
    static func sites(_ inputs: [([HeapProfileRecord], Int)], symbols: ProfileSymbolizer) -> [Site] {
        var index: [[UInt]: [Int: Int]] = [:]
        var out: [Site] = []
        for (records, rate) in inputs {
            for r in records {
                // Everything up to the innermost caller of GoHeap goes: GoHeap
                // never calls back into its callers, so its frames are a prefix
                // (perhaps with an inlined helper of the standard library in it).
                var cut = 0
                for (i, pc) in r.stack.prefix(16).enumerated()
                where ProfileSymbolizer.isInternal(symbols.frame(pc &- 1).symbol) { cut = i + 1 }
                let frames = Array(r.stack.dropFirst(cut))
                let k = scale(size: r.objectSize, rate: rate)
                let i: Int
                if let j = index[frames]?[r.objectSize] { i = j } else {
                    i = out.count
                    out.append(Site(frames: frames, size: r.objectSize))
                    index[frames, default: [:]][r.objectSize] = i
                }
                out[i].allocObjects += Double(r.allocObjects) * k
                out[i].allocBytes += Double(r.allocBytes) * k
                out[i].inUseObjects += Double(r.inUseObjects) * k
                out[i].inUseBytes += Double(r.inUseBytes) * k
            }
        }
        return out
    }

    /// Executable mappings of this process from /proc/self/maps: start,
    /// limit, file offset, path.
    static func mappings() -> [(UInt, UInt, UInt, String)] {
        guard let f = fopen("/proc/self/maps", "r") else { return [] }
        defer { fclose(f) }
        var out: [(UInt, UInt, UInt, String)] = []
        var line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), f) != nil {
            let text = line.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.split(separator: " ", omittingEmptySubsequences: true)
            guard text.count >= 6, text[1].contains("x") else { continue }
            let range = text[0].split(separator: "-")
            guard range.count == 2, let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16),
                  let off = UInt(text[2], radix: 16) else { continue }
            var path = text[5...].joined(separator: " ")
            if path.hasSuffix("\n") { path.removeLast() }
            guard path.hasPrefix("/") else { continue }
            out.append((lo, hi, off, path))
        }
        return out
    }

    /// The gzipped profile of `inputs` (records and the rate they were sampled at).
    static func build(_ inputs: [([HeapProfileRecord], Int)], compress: Bool = true) -> [UInt8] {
        let symbols = ProfileSymbolizer()
        let sites = sites(inputs, symbols: symbols)
        let rate = inputs.map(\.1).max() ?? 0
        var strings: [String] = [""]
        var stringIndex: [String: Int64] = ["": 0]
        func str(_ s: String) -> Int64 {
            if let i = stringIndex[s] { return i }
            let i = Int64(strings.count)
            strings.append(s)
            stringIndex[s] = i
            return i
        }
        let maps = mappings()
        var mappingIDs: [Int: UInt64] = [:]  // index in maps -> id
        var locationIDs: [UInt: UInt64] = [:]
        var functionIDs: [String: UInt64] = [:]
        var p = ProtoWriter()
        // Profile.sample_type (1): ValueType { type = 1, unit = 2 }.
        for (type, unit) in [("alloc_objects", "count"), ("alloc_space", "bytes"),
                             ("inuse_objects", "count"), ("inuse_space", "bytes")] {
            let t = str(type), u = str(unit)
            p.message(1) { v in v.int(1, t); v.int(2, u) }
        }
        var locations = ProtoWriter()  // Profile.location (4), written after the samples
        var functions = ProtoWriter()  // Profile.function (5)
        var mappingMessages = ProtoWriter()  // Profile.mapping (3)
        let bytesKey = str("bytes")
        for site in sites {
            var ids: [UInt64] = []
            for pc in site.frames {
                // Return addresses: the call is the byte before.
                let addr = pc &- 1
                if let id = locationIDs[addr] { ids.append(id); continue }
                let id = UInt64(locationIDs.count + 1)
                locationIDs[addr] = id
                ids.append(id)
                let frame = symbols.frame(addr)
                var mappingID: UInt64 = 0
                if let m = maps.firstIndex(where: { $0.0 <= addr && addr < $0.1 }) {
                    if let mid = mappingIDs[m] { mappingID = mid } else {
                        mappingID = UInt64(mappingIDs.count + 1)
                        mappingIDs[m] = mappingID
                        let (lo, hi, off, path) = maps[m]
                        let file = str(path)
                        mappingMessages.message(3) { v in
                            v.uint(1, mappingID); v.uint(2, UInt64(lo)); v.uint(3, UInt64(hi))
                            v.uint(4, UInt64(off)); v.int(5, file); v.bool(7, true)
                        }
                    }
                }
                var functionID: UInt64 = 0
                if let name = frame.function {
                    if let fid = functionIDs[name] { functionID = fid } else {
                        functionID = UInt64(functionIDs.count + 1)
                        functionIDs[name] = functionID
                        let n = str(name), sys = str(frame.symbol ?? name)
                        let fid = functionID
                        functions.message(5) { v in v.uint(1, fid); v.int(2, n); v.int(3, sys) }
                    }
                }
                let fid = functionID
                locations.message(4) { v in
                    v.uint(1, id); v.uint(2, mappingID); v.uint(3, UInt64(addr))
                    if fid != 0 { v.message(4) { l in l.uint(1, fid) } }  // Line { function_id }
                }
            }
            // Sample { location_id = 1 (packed), value = 2 (packed), label = 3 }.
            let values = [site.allocObjects, site.allocBytes, site.inUseObjects, site.inUseBytes]
                .map { UInt64(bitPattern: Int64($0.rounded())) }
            p.message(2) { v in
                v.packed(1, ids)
                v.packed(2, values)
                v.message(3) { l in l.int(1, bytesKey); l.int(3, Int64(site.size)) }  // Label { key, num }
            }
        }
        p.bytes.append(contentsOf: mappingMessages.bytes)
        p.bytes.append(contentsOf: locations.bytes)
        p.bytes.append(contentsOf: functions.bytes)
        let space = str("space"), bytes = str("bytes")
        // Strings are final only now: string_table (6) goes last but for the scalars.
        for s in strings { p.string(6, s) }
        // An empty string must still be written: string_table[0] is "".
        if strings.count == 1 { p.bytesField(6, []) }
        p.int(9, goheap_wall_clock_ns())  // time_nanos
        p.message(11) { v in v.int(1, space); v.int(2, bytes) }  // period_type
        p.int(12, Int64(rate))  // period
        return Gzip.wrap(p.bytes, compress: compress)
    }

    static func writeFile(_ data: [UInt8], to path: String) throws(HeapProfileError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { throw HeapProfileError(path: path, errno: errno) }
        defer { close(fd) }
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { write(fd, $0.baseAddress! + off, data.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HeapProfileError(path: path, errno: errno)
            }
            off += n
        }
    }
}

/// GOHEAP_MEMPROFILE and GOHEAP_MEMPROFILERATE.
enum HeapProfileEnvironment {
    /// (path to write at exit or nil, rate or 0), read once.
    static let settings: (String?, Int) = {
        let path = getenv("GOHEAP_MEMPROFILE").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        var rate = path == nil ? 0 : Heap.defaultHeapProfileRate
        if let r = getenv("GOHEAP_MEMPROFILERATE").map({ String(cString: $0) }), !r.isEmpty {
            guard let v = Int(r), v >= 0 else {
                heapFatal("GOHEAP_MEMPROFILERATE=\(r): must be a whole number of bytes (0: off, 1: every allocation)")
            }
            rate = v
        }
        return (path, rate)
    }()
    nonisolated(unsafe) static var writerPID: pid_t = 0

    /// Called at the end of every heap's init.
    static func apply(to heap: Heap) {
        let (path, rate) = settings
        if rate > 0 { heap.startHeapProfile(rate: rate) }
        if path != nil { registerExitWriter }
    }

    static let registerExitWriter: Void = {
        writerPID = getpid()
        _ = goheap_atexit {
            // A forked child inherits the handler; only the process that asked writes.
            guard getpid() == HeapProfileEnvironment.writerPID, let path = HeapProfileEnvironment.settings.0 else { return }
            let heaps = registry.withLock { r in r.slots.compactMap { $0?.heap } }
            let inputs = heaps.map { ($0.profiler.snapshot(), max($0.heapProfileRate, $0.lastProfileRate)) }
            do {
                try HeapProfileBuilder.writeFile(HeapProfileBuilder.build(inputs), to: path)
            } catch {
                var text = "goheap: GOHEAP_MEMPROFILE: \(error)\n"
                text.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
            }
        }
    }()
}
#endif
